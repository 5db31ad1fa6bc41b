"""The checks behind :mod:`torchstreamer.testing`."""

from __future__ import annotations

import contextlib
import copy
import io
import random
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from torchstreamer.core import BaseStream, Edges, create_stream

_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (2e-2, 2e-2),
}


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """The ``(atol, rtol)`` within which a stream must match its module, for unit-scale data.

    float64: 1e-10; float32: 1e-5 (a convolution over a different length sums in a different
    order, which moves the last bits); float16: 2e-3; bfloat16: 2e-2.
    """
    return _TOLERANCES.get(dtype, (1e-5, 1e-5))


def random_partition(length: int, rng: random.Random, *, block: int | None = None) -> list[int]:
    """Block sizes that add up to ``length``: a random mix of 0, 1, small and large blocks.

    Args:
        length: total samples.
        rng: the source of randomness.
        block: if given, mostly blocks of this size, with a few empty and odd ones between.
    """
    sizes: list[int] = []
    remaining = length
    while remaining > 0:
        choice = rng.random()
        if choice < 0.1:
            size = 0
        elif choice < 0.25:
            size = 1
        elif block is not None:
            size = block if choice < 0.85 else rng.randint(1, max(1, 2 * block))
        elif choice < 0.7:
            size = rng.randint(2, 8)
        else:
            size = rng.randint(1, max(1, remaining))
        size = min(size, remaining)
        sizes.append(size)
        remaining -= size
    return sizes


def stream_blocks(
    stream: BaseStream, x: Tensor, sizes: Sequence[int], *, final_empty: bool = False
) -> list[Tensor | None]:
    """Streams ``x`` in blocks of the given sizes, ``final=True`` on the last call.

    Args:
        stream: the stream.
        x: the whole signal, ``[C, T]`` or ``[B, C, T]``.
        sizes: block sizes adding up to ``T``.
        final_empty: end with an extra empty block carrying ``final=True`` instead of marking
            the last block final.

    Returns:
        what each call returned.
    """
    return [stream(block, final=final) for block, final in _blocks(x, sizes, final_empty)]


def _blocks(x: Tensor, sizes: Sequence[int], final_empty: bool) -> Iterator[tuple[Tensor, bool]]:
    calls = [*sizes, 0] if final_empty or not sizes else list(sizes)
    start = 0
    for index, size in enumerate(calls):
        yield x[..., start : start + size], index == len(calls) - 1
        start += size


def _run(
    stream: BaseStream, x: Tensor, sizes: Sequence[int], final_empty: bool = False
) -> tuple[list[Tensor | None], list[Tensor | None]]:
    """Streams like :func:`stream_blocks`; also returns a copy of each output taken at once."""
    outputs: list[Tensor | None] = []
    copies: list[Tensor | None] = []
    for block, final in _blocks(x, sizes, final_empty):
        y = stream(block, final=final)
        outputs.append(y)
        # taken now, so that a later call writing into a returned tensor shows as a change
        copies.append(None if y is None else y.clone())
    return outputs, copies


def assert_streams_exactly(
    module: nn.Module,
    x: Tensor,
    *,
    stream: BaseStream | None = None,
    edges: Edges = "pad",
    expected: Tensor | None = None,
    partitions: int = 8,
    block: int | None = None,
    seed: int = 0,
    atol: float | None = None,
    rtol: float | None = None,
) -> None:
    """Asserts that streaming ``x`` in any blocks gives ``module(x)``.

    Streams ``x`` through ``partitions`` random partitions (one block, one-sample blocks, empty
    blocks, a final empty block...), reusing one stream after each ``final=True`` as users do,
    and once more after a ``reset()`` in mid-stream. Before those, two runs switch between
    ``torch.inference_mode()`` and ``torch.no_grad()`` from one block to the next, both ways
    round: a stream must not keep state that inference mode makes read-only. Each result must
    be ``None`` or a non-empty tensor, must not be changed by later calls, and the
    concatenation must equal the expected output within the dtype's :func:`tolerance`. The
    input is checked to be left unmodified.

    Args:
        module: the module; its offline output ``module(x)`` is the reference.
        x: the signal, ``[C, T]`` or ``[B, C, T]``.
        stream: the stream to check. (Default: ``create_stream(module, edges=edges)``)
        edges: passed to ``create_stream`` when ``stream`` is not given. (Default: "pad")
        expected: the reference output, when it is not ``module(x)`` (e.g. for
            ``edges="valid"``). (Default: None)
        partitions: random partitions to try besides the fixed ones. (Default: 8)
        block: favour blocks of this size in the random partitions. (Default: None)
        seed: seed of the partitions. (Default: 0)
        atol: absolute tolerance. (Default: by dtype, see :func:`tolerance`)
        rtol: relative tolerance. (Default: by dtype, see :func:`tolerance`)

    Raises:
        AssertionError: naming the partition and the first differing sample.
    """
    if stream is None:
        stream = create_stream(module, edges=edges)
    if expected is None:
        with torch.no_grad():
            expected = module(x)
    default_atol, default_rtol = tolerance(x.dtype)
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    length = x.shape[-1]
    rng = random.Random(seed)
    plans: list[tuple[list[int], bool]] = [
        ([length], False),
        ([1] * length, False),
        ([0, *([1] * min(length, 3)), max(length - 3, 0), 0], True),
    ]
    plans += [
        (random_partition(length, rng, block=block), rng.random() < 0.3) for _ in range(partitions)
    ]
    original = x.clone()
    half = [length // 2, length - length // 2]
    runs = 0
    if length >= 2:
        # first, while the stream has made no state yet
        runs = _check_inference_mode(stream, x, half, original, expected, atol, rtol)
    for run, (sizes, final_empty) in enumerate(plans, start=runs + 1):
        with torch.no_grad():
            outputs, copies = _run(stream, x, sizes, final_empty)
        where = f"blocks {_short(sizes)}" + _nth_run(run)
        _check_outputs(outputs, copies, x, original, expected, where, atol, rtol)
    if length >= 2:
        with torch.no_grad():
            stream(x[..., : length // 2])
            stream.reset()
            outputs, copies = _run(stream, x, half)
        where = f"blocks [{length // 2}], reset(), then blocks {half}"
        _check_outputs(outputs, copies, x, original, expected, where, atol, rtol)


def _check_inference_mode(
    stream: BaseStream,
    x: Tensor,
    half: list[int],
    original: Tensor,
    expected: Tensor,
    atol: float,
    rtol: float,
) -> int:
    """A stream must go on whether or not a block comes under ``torch.inference_mode()``.

    State made in inference mode cannot be updated in place outside it, so a stream that
    started (or once ran) in inference mode must not keep such state for later blocks.
    Returns how many runs of the stream this took.
    """
    modes = (("inference mode", "no_grad"), ("no_grad", "inference mode"))
    for run, (first, then) in enumerate(modes, start=1):
        where = f"blocks {half}, the first under {first}, the second under {then}"
        where += _nth_run(run)
        outputs: list[Tensor | None] = []
        copies: list[Tensor | None] = []
        try:
            for index, (block, final) in enumerate(_blocks(x, half, False)):
                mode = first if index == 0 else then
                context = torch.inference_mode() if mode == "inference mode" else torch.no_grad()
                with context:
                    y = stream(block, final=final)
                    outputs.append(y)
                    copies.append(None if y is None else y.clone())
        except RuntimeError as error:
            stream.reset()
            raise AssertionError(f"{where}: the stream raised {error}") from error
        _check_outputs(outputs, copies, x, original, expected, where, atol, rtol)
    return len(modes)


def _nth_run(run: int) -> str:
    return f"; run {run} of the same stream, the earlier ones passed" if run > 1 else ""


def assert_resumes_from_snapshots(
    module: nn.Module,
    x: Tensor,
    cut: int,
    *,
    stream: BaseStream | None = None,
    expected: Tensor | None = None,
    atol: float | None = None,
    rtol: float | None = None,
) -> None:
    """Asserts that a stream forked or saved in mid-stream resumes exactly where it was.

    Streams ``x[..., :cut]``, then takes two snapshots of the stream: a fork with
    ``copy.deepcopy`` and a copy through ``torch.save`` and ``torch.load``. The stream and both
    snapshots are then each given the rest, ``x[..., cut:]`` with ``final=True``; each must
    complete the output to ``module(x)``, and none may disturb another.

    Args:
        module: the module; its offline output ``module(x)`` is the reference.
        x: the signal, ``[C, T]`` or ``[B, C, T]``.
        cut: samples streamed before the snapshots are taken.
        stream: the stream to check. (Default: ``create_stream(module)``)
        expected: the reference output, when it is not ``module(x)``. (Default: None)
        atol: absolute tolerance. (Default: by dtype, see :func:`tolerance`)
        rtol: relative tolerance. (Default: by dtype, see :func:`tolerance`)

    Raises:
        AssertionError: naming the snapshot that went astray and the first differing sample.
    """
    if stream is None:
        stream = create_stream(module)
    with torch.no_grad():
        if expected is None:
            expected = module(x)
        head = stream(x[..., :cut])
        head_copy = None if head is None else head.clone()
        fork = copy.deepcopy(stream)
        saved = io.BytesIO()
        torch.save(stream, saved)
        saved.seek(0)
        loaded = torch.load(saved, weights_only=False)
        resumed = [
            ("the stream itself", stream),
            ("its deepcopy", fork),
            ("its copy through torch.save", loaded),
        ]
        # every tail before any comparison: a snapshot sharing state would disturb the others
        tails = [(name, snapshot(x[..., cut:], final=True)) for name, snapshot in resumed]
    default_atol, default_rtol = tolerance(x.dtype)
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    original = x.clone()
    for name, tail in tails:
        where = f"{name}, resumed after the first {cut} samples"
        _check_outputs([head, tail], [head_copy, None], x, original, expected, where, atol, rtol)


def _check_outputs(
    outputs: list[Tensor | None],
    copies: list[Tensor | None],
    x: Tensor,
    original: Tensor,
    expected: Tensor,
    where: str,
    atol: float,
    rtol: float,
) -> None:
    # checked first: a changed input makes every later comparison misleading
    if not _unchanged(x, original):
        raise AssertionError(f"the stream modified its input tensor in place ({where})")
    for index, y in enumerate(outputs):
        if y is not None and y.shape[-1] == 0:
            raise AssertionError(f"call {index} returned a zero-length tensor ({where})")
    got = [y for y in outputs if y is not None]
    if not got:
        if expected.shape[-1] == 0:
            return
        raise AssertionError(
            f"the stream returned nothing; module(x) has {expected.shape[-1]} samples ({where})"
        )
    result = torch.cat(got, dim=-1)
    for index, (y, taken) in enumerate(zip(outputs, copies, strict=True)):
        if y is not None and taken is not None and not _unchanged(y, taken):
            raise AssertionError(
                f"the output of call {index} changed after it was returned: it shares memory "
                f"with the stream's state ({where})"
            )
    if result.shape[:-1] != expected.shape[:-1]:
        raise AssertionError(
            f"stream output has shape {list(result.shape)}, module(x) has "
            f"{list(expected.shape)} ({where})"
        )
    if result.dtype != expected.dtype or result.device != expected.device:
        raise AssertionError(
            f"stream output is {result.dtype} on {result.device}, module(x) is "
            f"{expected.dtype} on {expected.device} ({where})"
        )
    common = min(result.shape[-1], expected.shape[-1])
    _first_difference(result[..., :common], expected[..., :common], atol, rtol, where)
    if result.shape[-1] != expected.shape[-1]:
        raise AssertionError(
            f"the stream produced {result.shape[-1]} samples, module(x) has "
            f"{expected.shape[-1]} (the first {common} agree; {where})"
        )


def _unchanged(tensor: Tensor, copy: Tensor) -> bool:
    # torch.equal would call a NaN changed: NaN is a legitimate output of some modules
    same = torch.isclose(tensor, copy, rtol=0, atol=0, equal_nan=True)
    return tensor.shape == copy.shape and bool(same.all())


def _first_difference(got: Tensor, want: Tensor, atol: float, rtol: float, where: str) -> None:
    got64 = got.detach().double()
    want64 = want.detach().double()
    bad = ~torch.isclose(got64, want64, atol=atol, rtol=rtol, equal_nan=True)
    if not bool(bad.any()):
        return
    positions = bad.nonzero()
    first = positions[positions[:, -1].argmin()].tolist()
    sample = first[-1]
    index = tuple(first)
    axes = ", ".join(
        f"{name} {value}"
        for name, value in zip(("batch", "channel")[-(len(index) - 1) :], index, strict=False)
    )
    raise AssertionError(
        f"stream output differs from module(x) first at sample {sample} "
        f"(of {want.shape[-1]}; {axes}): got {got64[index].item():.9g}, expected "
        f"{want64[index].item():.9g}; {int(bad.sum())} samples differ beyond "
        f"atol={atol:g}, rtol={rtol:g} ({where})"
    )


def _short(sizes: Sequence[object]) -> str:
    shown = list(sizes)
    if len(shown) <= 12:
        return str(shown)
    return f"[{', '.join(map(str, shown[:10]))}, ... {len(shown) - 10} more]"


def determined_outputs(
    module: nn.Module,
    x: Tensor,
    prefix: int,
    *,
    continuations: int = 4,
    extra: int | None = None,
    seed: int = 0,
) -> int:
    """How many leading outputs of ``module`` the first ``prefix`` samples of ``x`` determine.

    Feeds ``x[..., :prefix]`` followed by several random continuations (each at least
    ``extra`` samples long) and by none, and counts the leading outputs that agree across all
    of them, which is the number a minimal-latency stream must have emitted after that prefix.

    Random continuations make a dependent output differ with probability 1 for smooth
    modules; outputs that saturate (a ReLU's zeros, a max pool's maximum already reached) can
    agree by chance, so give such modules inputs that keep them off their flat parts.

    Args:
        module: the module.
        x: the signal whose prefix is used.
        prefix: samples of ``x`` known so far.
        continuations: random continuations to compare. (Default: 4)
        extra: the shortest continuation. (Default: ``x.shape[-1]``, at least 16)
        seed: seed of the continuations. (Default: 0)
    """
    generator = torch.Generator().manual_seed(seed)
    extra = max(16, x.shape[-1]) if extra is None else extra
    head = x[..., :prefix]
    results = []
    for index in range(continuations):
        size = extra + index * 3
        tail = torch.randn(*x.shape[:-1], size, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            results.append(module(torch.cat([head, tail.to(x)], dim=-1)))
    # the empty continuation too: an output that exists only if the signal goes on (after a
    # crop such as a TCN's chomp) is not determined yet
    try:
        with torch.no_grad():
            results.append(module(head))
    except RuntimeError:
        pass  # too short for the module: no signal ends here, so no output can be missing
    # a continuation moves a dependent output by O(1); tolerance absorbs the rounding of
    # offline kernels that sum in another order for another length
    atol, rtol = tolerance(x.dtype)
    reference = results[0]
    agree = torch.ones(reference.shape[-1], dtype=torch.bool, device=reference.device)
    for other in results[1:]:
        common = min(other.shape[-1], reference.shape[-1])
        agree[common:] = False
        if common == 0:
            continue
        same = torch.isclose(other[..., :common], reference[..., :common], atol=atol, rtol=rtol)
        agree[:common] &= same.reshape(-1, common).all(dim=0)
    if bool(agree.all()):
        return int(agree.numel())
    return int((~agree).nonzero()[0].item())


def assert_minimal_latency(
    module: nn.Module,
    x: Tensor,
    *,
    stream: BaseStream | None = None,
    edges: Edges = "pad",
    prefixes: Sequence[int] | None = None,
    seed: int = 0,
) -> None:
    """Asserts that after each prefix a stream has emitted exactly what the prefix determines.

    Streams ``x`` one sample at a time (without ``final``) and compares the number of samples
    emitted after each prefix with :func:`determined_outputs` of the offline module. Too few
    means the stream holds back outputs longer than needed; too many means it emitted an output
    before its inputs were known. Where the stream states its :meth:`~BaseStream.demand`, the
    bound is checked too: no output may be determined before that many more samples arrived.
    The random continuations are at least twice the stream's receptive field long (where it
    reports one), so that they reach every input an output may depend on, including the
    inputs whose mere existence decides an output at the right edge of a strided network.

    Args:
        module: the module.
        x: the signal, ``[C, T]`` or ``[B, C, T]``.
        stream: the stream to check. (Default: ``create_stream(module, edges=edges)``)
        edges: passed to ``create_stream`` when ``stream`` is not given. (Default: "pad")
        prefixes: prefix lengths to check. (Default: every length from 0 to ``T``)
        seed: seed of the random continuations. (Default: 0)

    Raises:
        AssertionError: naming the first prefix where the counts disagree, or where the
            stream's demand exceeds what the next outputs need.
    """
    if stream is None:
        stream = create_stream(module, edges=edges)
    length = x.shape[-1]
    wanted = sorted(set(range(length + 1) if prefixes is None else prefixes))
    known: dict[int, int] = {}
    extra = max(16, length)
    # a stream that does not report its timing gets the default continuations
    with contextlib.suppress(AttributeError):
        extra = max(extra, 2 * int(stream.receptive_field))

    def determined(prefix: int) -> int:
        if prefix not in known:
            known[prefix] = determined_outputs(module, x, prefix, extra=extra, seed=seed)
        return known[prefix]

    emitted = 0
    fed = 0
    stream.reset()
    with torch.no_grad():
        for prefix in wanted:
            # an empty first block lets outputs of pure padding out before any input arrives
            if prefix > fed or prefix == 0:
                y = stream(x[..., fed:prefix])
                emitted += 0 if y is None else y.shape[-1]
                fed = prefix
            if emitted != determined(prefix):
                stream.reset()
                raise AssertionError(
                    f"after {prefix} input samples the stream had emitted {emitted} outputs, "
                    f"but the input determines exactly {determined(prefix)}"
                )
            for outputs in (1, 2, 3):
                need = stream.demand(outputs)
                before = prefix + need - 1  # the longest prefix the bound says is too short
                if need > 0 and before <= length and determined(before) >= emitted + outputs:
                    stream.reset()
                    raise AssertionError(
                        f"after {prefix} input samples the stream says {outputs} more outputs "
                        f"need at least {need} more samples, but {before - prefix} more "
                        "determine them"
                    )
    stream.reset()
