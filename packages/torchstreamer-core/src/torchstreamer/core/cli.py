"""The ``torchstreamer`` command: check that a model streams exactly, and describe its streams.

Usage::

    torchstreamer check [MODEL] [--block 160] [--length N] [--channels C] [--sample-rate HZ]
                        [--device cpu] [--dtype float32] [--edges pad] [--partitions 8]
                        [--seed 0] [--threads N] [--debug]
    torchstreamer describe [MODEL] [--edges pad] [--feed N] [--channels C] [--sample-rate HZ]
    torchstreamer --version

(``python -m torchstreamer.core.cli`` is the same command.)

MODEL is ``package.module:factory``, where ``factory`` is a callable returning an ``nn.Module``
(a class, a function) or the module object itself, or the path of a file saved with
``torch.save(module)``. The current directory is searched for ``package``. Unpickling a saved
module runs code from the file: load only files you trust. TorchScript archives are refused,
because a scripted module has lost the Python classes that the registry chooses streams by.
Without MODEL, both commands use :func:`seed_sequential`. The model is put in eval mode.

``check`` builds the model's stream through the registry, streams a random signal through many
block partitions (the whole signal, one-sample blocks, random blocks that favour ``--block``,
blocks of exactly ``--block``) and compares every result with the offline output
``module(signal)``. It prints the stream's receptive field, rate and lookahead (in
milliseconds too with ``--sample-rate``), then what streaming in blocks of ``--block`` costs
against one offline call. Exit status: 0 when the stream is exact; 1 when it is not (the first
differing sample is named) or fails while streaming; 2 when the check cannot run (the model
cannot be loaded or streamed, a bad option).

``describe`` prints one row per stream in the model's stream: its path, type, receptive field,
rate, lookahead and the samples it holds (after ``--feed`` samples of random input).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

import torch
from torch import Tensor, nn

from torchstreamer.testing import tolerance

from ._cli_check import Cost, check_exactness, measure_cost
from ._cli_model import (
    CliError,
    LoadedModel,
    input_channels,
    load_model,
    missing_members,
    unpadded,
)
from ._cli_report import fields, micro, samples
from .describe import describe
from .errors import NotStreamableError, StreamError
from .registry import Edges, create_stream
from .stream import BaseStream
from .timing import Timing

__all__ = ["main", "seed_sequential"]

DEFAULT_MODEL = "torchstreamer.core.cli:seed_sequential"
_DISTRIBUTIONS = (
    "torchstreamer-core",
    "torchstreamer-layers",
    "torchstreamer-nets",
    "torchstreamer-contrib",
    "torch-streamer",
    "torch",
)
_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def seed_sequential() -> nn.Sequential:
    """The Sequential network of torch-streamer's README, with weights drawn from seed 0.

    One channel in and out, 128 inside; two stride-2 convolutions and a pool, then two
    stride-2 transposed convolutions, so it emits one output per two inputs. In eval mode.
    The default MODEL of the ``torchstreamer`` command (``torchstreamer.core.cli:seed_sequential``).

    Example:
        >>> net = seed_sequential()
        >>> net(torch.randn(1, 1, 64)).shape
        torch.Size([1, 1, 32])
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv1d(1, 128, 1),
            nn.GELU(),
            nn.Conv1d(128, 128, 2, stride=2),
            nn.GELU(),
            nn.Conv1d(128, 128, 2, stride=2),
            nn.AvgPool1d(2),
            nn.ConvTranspose1d(128, 128, 2, stride=2),
            nn.GELU(),
            nn.ConvTranspose1d(128, 128, 2, stride=2),
            nn.GELU(),
            nn.Conv1d(128, 1, 1),
        )
    return net.eval()


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command with the given arguments (default: ``sys.argv[1:]``).

    Returns:
        the exit status: 0 success (an exact stream), 1 a stream that is not exact, 2 a check
        that could not run (the reason is one line on stderr; ``--debug`` adds the traceback).
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version and usage errors end here
        return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 2
    run: Callable[[argparse.Namespace], int] = args.run
    threads = torch.get_num_threads()
    saved_path = list(sys.path)
    # as `python -m` does, so that MODEL can name a module of the current directory
    sys.path.insert(0, os.getcwd())
    try:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        return run(args)
    except (CliError, StreamError) as error:
        if args.debug:
            traceback.print_exception(type(error), error, error.__traceback__)
        print(f"torchstreamer: error: {_single_line(str(error))}", file=sys.stderr)
        return 2
    finally:
        sys.path[:] = saved_path
        torch.set_num_threads(threads)


def _check(args: argparse.Namespace) -> int:
    device = _device(args.device)
    dtype = _DTYPES[args.dtype]
    loaded = _load(args.model)
    module = loaded.module.eval().to(device=device, dtype=dtype)
    stream = _stream(module, args.edges)
    timing = _timing(stream)
    channels = _channels(args.channels, module, stream)
    length = args.length if args.length is not None else _default_length(timing)
    x = _signal(channels, length, seed=args.seed, dtype=dtype, device=device)
    reference = module if args.edges == "pad" else unpadded(module)
    with _ieee_float32(device), torch.no_grad():
        expected = _offline(reference, x)
        print(f"torchstreamer check {loaded.label}")
        print(_header(module, stream, x, args))
        print("timing")
        print(_fields(_timing_rows(timing, args.sample_rate)), flush=True)
        cost: Cost | None = None
        try:
            failure = check_exactness(
                reference,
                stream,
                x,
                expected,
                partitions=args.partitions,
                block=args.block,
                seed=args.seed,
            )
            if failure is None:
                cost = measure_cost(module, stream, x, expected, block=args.block)
                failure = cost.mismatch
        except StreamError:
            raise
        except Exception as error:  # a stream that crashes is reported like one that is wrong
            if args.debug:
                traceback.print_exc()
            failure = f"the stream raised {type(error).__name__}: {_single_line(str(error))}"
    print("exactness")
    if failure is not None or cost is None:
        print(_fields([("result", f"NOT EXACT: {failure}")]))
        return 1
    atol, rtol = tolerance(dtype)
    print(
        _fields(
            [
                ("result", f"exact, within atol={atol:g}, rtol={rtol:g}"),
                (
                    "partitions",
                    f"whole signal, one-sample blocks, {_plural(args.partitions, 'random one')} "
                    f"favouring blocks of {args.block}, blocks of {args.block}",
                ),
            ]
        )
    )
    print(f"cost ({_threads(device)}; one timed run each, after a warm-up)")
    print(_fields(_cost_rows(cost, length, args.sample_rate)))
    return 0


def _describe(args: argparse.Namespace) -> int:
    loaded = _load(args.model)
    module = loaded.module.eval()
    stream = _stream(module, args.edges)
    if args.feed:
        channels = _channels(args.channels, module, stream)
        parameter = next((p for p in module.parameters() if p.is_floating_point()), None)
        dtype = torch.get_default_dtype() if parameter is None else parameter.dtype
        device = torch.device("cpu") if parameter is None else parameter.device
        x = _signal(channels, args.feed, seed=args.seed, dtype=dtype, device=device)
        with torch.no_grad():
            stream(x)
    print(f"torchstreamer describe {loaded.label}")
    print(describe(stream, buffered=True))
    timing = _timing(stream)
    if timing is not None:
        print(_fields(_timing_rows(timing, args.sample_rate), indent=0))
    return 0


def _load(spec: str | None) -> LoadedModel:
    if spec is not None:
        return load_model(spec)
    missing = missing_members()
    if missing:
        raise CliError(
            f"the default model needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed: pip install {' '.join(missing)}"
            " (or name a MODEL whose stream handlers are installed)"
        )
    return LoadedModel(seed_sequential(), DEFAULT_MODEL)


def _stream(module: nn.Module, edges: Edges) -> BaseStream:
    try:
        return create_stream(module, edges=edges)
    except NotStreamableError as error:
        missing = [name for name in missing_members() if name not in str(error)]
        if missing:
            raise CliError(
                f"{_single_line(str(error))} (not installed: {', '.join(missing)})"
            ) from error
        raise
    except StreamError:
        raise
    except Exception as error:  # a handler's constructor may reject the module in its own way
        raise CliError(
            f"building the stream of {type(module).__name__} failed: {type(error).__name__}: "
            f"{_single_line(str(error))}"
        ) from error


def _fields(rows: list[tuple[str, str]], *, indent: int = 2) -> str:
    # one width for every block of the report, so that the values line up
    return fields(rows, indent=indent, width=len("receptive field"))


def _timing(stream: BaseStream) -> Timing | None:
    try:
        return stream.timing()
    except NotImplementedError:
        return None


def _channels(given: int | None, module: nn.Module, stream: BaseStream) -> int:
    if given is not None:
        return given
    channels = input_channels(module, stream)
    if channels is None:
        raise CliError(
            "cannot tell how many input channels the model takes (its stream accepts any "
            "number and it has no Conv1d or ConvTranspose1d): pass --channels"
        )
    return channels


def _default_length(timing: Timing | None) -> int:
    return 16000 if timing is None else max(16000, 4 * timing.receptive_field)


def _signal(
    channels: int, length: int, *, seed: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """Unit-scale noise, drawn in float64 so that every dtype sees the same signal."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, channels, length, generator=generator, dtype=torch.float64)
    return x.to(device=device, dtype=dtype)


def _offline(reference: nn.Module, x: Tensor) -> Tensor:
    try:
        expected = reference(x)
    except Exception as error:  # the user's forward: wrong channels, too short a signal...
        raise CliError(
            f"module(x) failed on a {list(x.shape)} {_dtype_name(x.dtype)} input: "
            f"{type(error).__name__}: {_single_line(str(error))} (check --channels and --length)"
        ) from error
    if not isinstance(expected, Tensor):
        raise CliError(f"module(x) returned a {type(expected).__name__}, not a tensor")
    return expected


def _header(module: nn.Module, stream: BaseStream, x: Tensor, args: argparse.Namespace) -> str:
    parameters = sum(p.numel() for p in module.parameters())
    return _fields(
        [
            ("model", f"{type(module).__name__}, {_plural(parameters, 'parameter')}, eval mode"),
            ("stream", f"{stream.stream_name}, edges={args.edges}"),
            ("input", f"{list(x.shape)} {_dtype_name(x.dtype)} on {x.device}, seed {args.seed}"),
        ]
    )


def _timing_rows(timing: Timing | None, sample_rate: float | None) -> list[tuple[str, str]]:
    if timing is None:
        unknown = "? (the stream does not report its timing)"
        return [("receptive field", unknown), ("rate", unknown), ("lookahead", unknown)]
    return [
        ("receptive field", samples(timing.receptive_field, sample_rate)),
        ("rate", f"{timing.rate} (output samples per input sample)"),
        ("lookahead", samples(timing.lookahead, sample_rate)),
    ]


def _cost_rows(cost: Cost, length: int, sample_rate: float | None) -> list[tuple[str, str]]:
    offline_share = cost.offline * cost.block / length
    rows = [
        (
            "streaming",
            f"{micro(cost.per_block)} per block of {cost.block} samples "
            f"({cost.blocks} blocks, {micro(cost.streaming)} in all)",
        ),
        (
            "offline",
            f"{micro(cost.offline)} for one call on {length} samples "
            f"({micro(offline_share)} per {cost.block} samples)",
        ),
        ("ratio", f"streaming costs {cost.streaming / cost.offline:.3g} times offline"),
    ]
    if sample_rate is not None:
        duration = cost.block / sample_rate
        factor = cost.per_block / duration
        rows.append(
            (
                "real time",
                f"a block of {micro(duration)} takes {micro(cost.per_block)}: real-time factor "
                f"{factor:.3g} ({'keeps up' if factor < 1 else 'falls behind'})",
            )
        )
    return rows


def _threads(device: torch.device) -> str:
    threads = torch.get_num_threads()
    text = _plural(threads, "intra-op thread")
    return f"{text}, {device}, TF32 off" if device.type == "cuda" else text


@contextmanager
def _ieee_float32(device: torch.device) -> Iterator[None]:
    """Turns TF32 off on CUDA: its rounding would hide or fake differences of float32 streams."""
    if device.type != "cuda":
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as error:
        raise CliError(f"--device {name!r} is not a device: {_single_line(str(error))}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CliError(
            f"--device {name}: CUDA is not available to torch {torch.__version__}; use --device cpu"
        )
    return device


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _single_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _versions() -> str:
    lines = []
    for distribution in _DISTRIBUTIONS:
        try:
            lines.append(f"{distribution} {version(distribution)}")
        except PackageNotFoundError:
            lines.append(f"{distribution} (not installed)")
    return "\n".join(lines)


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _count(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of Hz, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchstreamer",
        description="Check that a PyTorch model streams exactly, and describe its streams.",
        # raw: --version prints one distribution a line
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "MODEL is package.module:factory (a callable returning an nn.Module, or the\n"
            "module itself) or a file saved with torch.save(module); only load files you\n"
            "trust, unpickling runs their code. Default MODEL:\n"
            f"{DEFAULT_MODEL}. Exit status: 0 success, 1 not exact, 2 error."
        ),
    )
    parser.add_argument("--version", action="version", version=_versions())
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "model", nargs="?", metavar="MODEL", help=f"the model (default: {DEFAULT_MODEL})"
    )
    common.add_argument(
        "--edges",
        choices=("pad", "valid"),
        default="pad",
        help="pad: stream module(x) with its padding; valid: ignore the padding, as "
        "torch-streamer 0.0.2 did, checked against a copy of the model whose layers have no "
        "padding (default: pad)",
    )
    common.add_argument(
        "--channels",
        type=_positive,
        metavar="C",
        help="input channels (default: the stream's, else the first Conv1d/ConvTranspose1d's)",
    )
    common.add_argument(
        "--sample-rate", type=_rate, metavar="HZ", help="also show times in milliseconds"
    )
    common.add_argument(
        "--seed", type=_count, default=0, metavar="N", help="seed of the input (default: 0)"
    )
    common.add_argument("--threads", type=_positive, metavar="N", help="torch intra-op threads")
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")

    check = commands.add_parser(
        "check",
        parents=[common],
        help="verify that MODEL streams exactly and report its timing and cost",
        description="Stream random input through random block partitions, compare with the "
        "offline output, and report receptive field, rate, lookahead and the cost per block. "
        "Exit status 0: exact; 1: not exact; 2: the check could not run.",
    )
    check.add_argument(
        "--block",
        type=_positive,
        default=160,
        metavar="SAMPLES",
        help="block size to time and check (default: 160)",
    )
    check.add_argument(
        "--length",
        type=_positive,
        metavar="SAMPLES",
        help="signal length (default: 16000, or 4 receptive fields if that is more)",
    )
    check.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1... (default: cpu)")
    check.add_argument(
        "--dtype", choices=tuple(_DTYPES), default="float32", help="(default: float32)"
    )
    check.add_argument(
        "--partitions",
        type=_count,
        default=8,
        metavar="N",
        help="random block partitions (default: 8)",
    )
    check.set_defaults(run=_check)

    show = commands.add_parser(
        "describe",
        parents=[common],
        help="print a table of MODEL's streams",
        description="Print one row per stream: path, type, receptive field, rate, lookahead "
        "and the samples it holds.",
    )
    show.add_argument(
        "--feed",
        type=_count,
        default=0,
        metavar="SAMPLES",
        help="stream this many random samples first, to see what is held (default: 0)",
    )
    show.set_defaults(run=_describe)
    return parser


if __name__ == "__main__":
    sys.exit(main())
