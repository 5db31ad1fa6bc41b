"""The ``torchstreamer`` command, run in-process through ``main`` and once as a program.

Models come from ``cli_models.py`` beside this file. Tests that stream real layers need
torchstreamer-layers and torchstreamer-nets and skip without them; the rest use streams of
their own, registered for one test, so they run with the core alone.
"""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
import warnings
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from torchstreamer.core import BaseStream, create_stream
from torchstreamer.core._cli_report import Progress, fields
from torchstreamer.core.cli import main, seed_sequential

HERE = Path(__file__).parent


@pytest.fixture
def models(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The module of test models, importable by the command as ``cli_models``."""
    monkeypatch.syspath_prepend(str(HERE))
    return importlib.import_module("cli_models")


@pytest.fixture
def gain_streams(registry: ModuleType, models: ModuleType) -> Any:
    """An empty registry in which ``cli_models.Gain`` has its exact stream."""
    registry.register_streamer(models.Gain, models.GainStream)
    return registry


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("torchstreamer: error: ")
    for word in words:
        assert word in lines[0]


def needs_members() -> None:
    pytest.importorskip("torchstreamer.layers", reason="needs torchstreamer-layers")
    pytest.importorskip("torchstreamer.nets", reason="needs torchstreamer-nets")


class TestCheck:
    def test_the_default_model_is_exact_and_reported(
        self, capsys: pytest.CaptureFixture[str], device: torch.device
    ) -> None:
        needs_members()
        status, out, _ = run(
            capsys, "check", "--length", "256", "--partitions", "2", "--sample-rate", "16000",
            "--device", str(device),
        )  # fmt: skip
        assert status == 0, out
        assert f"[1, 1, 256] float32 on {device.type}" in out
        # the seed network by hand: three stride-2 stages read 8 inputs per pooled sample,
        # the two transposed convolutions double twice; output 0 waits for input 7
        assert "receptive field  8 samples (0.5 ms at 16000 Hz)" in out
        assert "rate             1/2 (output samples per input sample)" in out
        assert "lookahead        7 samples (0.438 ms at 16000 Hz)" in out
        assert "exact, within atol=1e-05" in out
        assert "per block of 160 samples (2 blocks" in out
        assert "intra-op thread" in out
        assert "real-time factor" in out

    def test_a_factory_of_a_module_on_the_path(
        self, capsys: pytest.CaptureFixture[str], gain_streams: Any
    ) -> None:
        status, out, err = run(
            capsys, "check", "cli_models:gain", "--channels", "2", "--length", "64"
        )
        assert (status, err) == (0, "")
        assert "input            [1, 2, 64] float32 on cpu, seed 0" in out
        assert "receptive field  1 sample\n" in out
        assert "per block of 160 samples (1 blocks" in out

    def test_on_the_test_device(
        self, capsys: pytest.CaptureFixture[str], gain_streams: Any, device: torch.device
    ) -> None:
        status, out, _ = run(
            capsys, "check", "cli_models:gain", "--channels", "3", "--length", "64",
            "--device", str(device),
        )  # fmt: skip
        assert status == 0, out
        assert f"[1, 3, 64] float32 on {device.type}" in out

    def test_a_module_object_in_float64(
        self,
        capsys: pytest.CaptureFixture[str],
        gain_streams: Any,
        models: ModuleType,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(models, "THE_GAIN", models.Gain(), raising=False)
        status, out, _ = run(
            capsys, "check", "cli_models:THE_GAIN", "--channels", "1", "--length", "40",
            "--dtype", "float64", "--block", "7",
        )  # fmt: skip
        assert status == 0
        assert "float64" in out
        assert "exact, within atol=1e-10" in out
        assert "per block of 7 samples (6 blocks" in out

    def test_a_stream_that_drops_a_sample_fails_at_that_sample(
        self, capsys: pytest.CaptureFixture[str], registry: ModuleType, models: ModuleType
    ) -> None:
        registry.register_streamer(models.Gain, models.DroppingGainStream)
        status, out, _ = run(
            capsys, "check", "cli_models:gain", "--channels", "1", "--length", "32"
        )
        assert status == 1
        assert "NOT EXACT" in out
        assert f"first at sample {models.DroppingGainStream.DROPPED} " in out
        assert "cost" not in out

    def test_a_saved_module_file(
        self, capsys: pytest.CaptureFixture[str], gain_streams: Any, models: ModuleType,
        tmp_path: Path,
    ) -> None:  # fmt: skip
        path = tmp_path / "gain.pt"
        torch.save(models.Gain(), path)
        status, out, _ = run(capsys, "check", str(path), "--channels", "1", "--length", "16")
        assert status == 0
        assert f"torchstreamer check {path}" in out

    def test_edges_valid_is_checked_against_the_module_without_padding(
        self, capsys: pytest.CaptureFixture[str], models: ModuleType
    ) -> None:
        needs_members()
        for edges in ("valid", "pad"):
            status, out, _ = run(
                capsys, "check", "cli_models:padded", "--edges", edges, "--length", "50",
                "--partitions", "2", "--block", "9",
            )  # fmt: skip
            assert status == 0, out
            assert f"edges={edges}" in out


class TestErrors:
    def test_a_missing_module(self, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, err = run(capsys, "check", "no_such_package_xyz.models:build")
        assert (status, out) == (2, "")
        assert_one_line_error(err, "no module named 'no_such_package_xyz'")

    def test_a_missing_attribute(
        self, capsys: pytest.CaptureFixture[str], models: ModuleType
    ) -> None:
        status, _, err = run(capsys, "describe", "cli_models:nothing_here")
        assert status == 2
        assert_one_line_error(err, "has no attribute 'nothing_here'")

    @pytest.mark.parametrize(
        ("spec", "reason"),
        [
            ("cli_models:not_a_module", "returned a list, not an nn.Module"),
            ("cli_models:NOT_A_FACTORY", "is a int, not an nn.Module"),
            ("cli_models:broken", "RuntimeError: the weights are missing"),
            ("models.pt", "no such file"),
            ("cli_models", "MODEL must be package.module:factory"),
        ],
    )
    def test_a_model_that_is_not_a_module(
        self, capsys: pytest.CaptureFixture[str], models: ModuleType, spec: str, reason: str
    ) -> None:
        status, _, err = run(capsys, "check", spec)
        assert status == 2
        assert_one_line_error(err, reason)

    def test_an_unstreamable_model(
        self, capsys: pytest.CaptureFixture[str], models: ModuleType
    ) -> None:
        status, out, err = run(capsys, "check", "cli_models:group_norm")
        assert (status, out) == (2, "")
        assert_one_line_error(err, "register_streamer")

    def test_debug_shows_the_traceback(
        self, capsys: pytest.CaptureFixture[str], models: ModuleType
    ) -> None:
        status, _, err = run(capsys, "check", "cli_models:group_norm", "--debug")
        assert status == 2
        assert "Traceback (most recent call last)" in err
        assert "NotStreamableError" in err
        assert err.strip().splitlines()[-1].startswith("torchstreamer: error: ")

    def test_channels_that_cannot_be_inferred(
        self, capsys: pytest.CaptureFixture[str], gain_streams: Any
    ) -> None:
        status, _, err = run(capsys, "check", "cli_models:gain")
        assert status == 2
        assert_one_line_error(err, "pass --channels")

    def test_channels_the_model_does_not_take(
        self, capsys: pytest.CaptureFixture[str], registry: ModuleType, fir_stream: Any
    ) -> None:
        registry.register_streamer(torch.nn.Conv1d, fir_stream)
        status, _, err = run(capsys, "check", "cli_models:fir", "--channels", "5")
        assert status == 2
        assert_one_line_error(err, "module(x) failed on a [1, 5, 16000] float32 input")

    def test_a_torchscript_file_is_refused(
        self, capsys: pytest.CaptureFixture[str], models: ModuleType, tmp_path: Path
    ) -> None:
        path = tmp_path / "gain.ts"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(torch.jit.script(models.Gain()), str(path))
        status, _, err = run(capsys, "check", str(path))
        assert status == 2
        assert_one_line_error(err, "TorchScript archive", "package.module:factory")

    def test_a_state_dict_file_is_refused(
        self, capsys: pytest.CaptureFixture[str], models: ModuleType, tmp_path: Path
    ) -> None:
        path = tmp_path / "weights.pt"
        torch.save(models.Gain().state_dict(), path)
        status, _, err = run(capsys, "describe", str(path))
        assert status == 2
        assert_one_line_error(err, "holds a state dict, not an nn.Module")

    @pytest.mark.parametrize(
        "args",
        [
            ["check", "--block", "0"],
            ["check", "--length", "ten"],
            ["check", "--dtype", "int32"],
            ["check", "--sample-rate", "-1"],
            ["check", "--edges", "same"],
            ["frobnicate"],
            [],
        ],
    )
    def test_bad_options_exit_with_status_2(
        self, capsys: pytest.CaptureFixture[str], args: list[str]
    ) -> None:
        status, out, err = run(capsys, *args)
        assert (status, out) == (2, "")
        assert "usage: torchstreamer" in err

    def test_a_device_that_is_not_one(self, capsys: pytest.CaptureFixture[str]) -> None:
        status, _, err = run(capsys, "check", "--device", "toaster")
        assert status == 2
        assert_one_line_error(err, "--device 'toaster' is not a device")


class TestDescribe:
    def test_one_row_per_stream_with_what_it_holds(
        self, capsys: pytest.CaptureFixture[str], registry: ModuleType, fir_stream: Any
    ) -> None:
        registry.register_streamer(torch.nn.Conv1d, fir_stream)
        status, out, _ = run(capsys, "describe", "cli_models:fir", "--feed", "10")
        assert status == 0
        lines = out.splitlines()
        assert lines[0] == "torchstreamer describe cli_models:fir"
        # a kernel of 4 after 10 samples: the last 3 wait for the next block
        assert lines[1].split() == ["path", "stream", "receptive_field", "rate", "lookahead",
                                    "buffered"]  # fmt: skip
        assert lines[2].split() == [".", "FirStream", "4", "1", "3", "3"]
        assert lines[3].split() == ["receptive", "field", "4", "samples"]

    def test_the_default_model(self, capsys: pytest.CaptureFixture[str]) -> None:
        needs_members()
        status, out, _ = run(capsys, "describe", "--sample-rate", "8000")
        assert status == 0
        streams = [m for m in create_stream(seed_sequential()).modules()]
        count = sum(isinstance(m, BaseStream) for m in streams)
        table = out.splitlines()[1:]
        assert table[0].split()[0] == "path"
        rows = table[1 : 1 + count]
        assert [row.split()[-1] for row in rows] == ["0"] * count  # nothing held yet
        assert table[1 + count].split()[:2] == ["receptive", "field"]
        assert "(1 ms at 8000 Hz)" in out


class TestProgramAndVersion:
    def test_version_names_the_distributions(self, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, _ = run(capsys, "--version")
        assert status == 0
        assert f"torchstreamer-core {version('torchstreamer-core')}\n" in out
        assert out.endswith(f"torch {version('torch')}\n")

    def test_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, _ = run(capsys, "check", "--help")
        assert status == 0
        assert "--sample-rate HZ" in out

    def test_the_console_script(self, tmp_path: Path) -> None:
        needs_members()
        script = Path(sys.executable).with_name("torchstreamer")
        command = (
            [str(script)] if script.exists() else [sys.executable, "-m", "torchstreamer.core.cli"]
        )
        result = subprocess.run(
            [*command, "check", "--length", "256", "--partitions", "1"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "exact, within" in result.stdout

    def test_python_dash_m(self, tmp_path: Path) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "torchstreamer.core.cli", "describe", "nowhere_xyz:build"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
            check=False,
        )
        assert (result.returncode, result.stdout) == (2, "")
        assert_one_line_error(result.stderr, "no module named 'nowhere_xyz'")


class TestReport:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    def test_the_progress_bar_draws_on_a_terminal_and_erases_itself(self) -> None:
        terminal = self.Terminal()
        with Progress("work", 4, stream=terminal, delay=0.0) as progress:
            progress.advance(2)
        written = terminal.getvalue()
        assert "\rwork [###############...............]  50%" in written
        assert written.endswith("\r\x1b[2K")

    def test_no_progress_bar_off_a_terminal(self) -> None:
        piped = io.StringIO()
        with Progress("work", 4, stream=piped, delay=0.0) as progress:
            progress.advance(4)
        assert piped.getvalue() == ""

    def test_fields_align_to_a_common_width(self) -> None:
        assert fields([("a", "1"), ("bcd", "2")], width=5) == "  a      1\n  bcd    2"
