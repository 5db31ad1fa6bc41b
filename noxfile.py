"""Development sessions of the torchstreamer workspace.

The test suite, as CI runs it (``.ci/run``; every session in its own fresh virtual environment):

    uvx nox -s lint typecheck tests-cpu isolated docs

Sessions (``uvx nox -l`` lists them):

- ``lint``: ``ruff format --check`` and ``ruff check`` over the repository.
- ``typecheck``: ``mypy --strict`` over every member's ``src`` (settings in ``pyproject.toml``),
  then over the noxfile and the root conftest.py.
- ``tests-cpu(newest)``, ``tests-cpu(lowest)``: every member's tests, the docstring examples of
  every module, and the Python examples of ``README.md``, ``docs/`` and the members' READMEs, on
  the newest torch and on the lowest torch the members declare (``torch>=2.5``: ``torch==2.5.*``).
- ``tests-cuda(newest)``, ``tests-cuda(lowest)``: the same with ``--device=cuda``, with IEEE
  float32 forced (no TF32, deterministic cuDNN); skipped on a machine without an NVIDIA GPU.
- ``isolated(core)``, ``isolated(layers)``, ``isolated(nets)``, ``isolated(contrib)``: one member
  built as a wheel and installed with only its declared dependencies (other members as wheels too),
  its tests run from a copy outside the repository: proves each member can be published alone.
- ``docs``: ``mkdocs build --strict``.
- ``build``: every distribution built into ``dist/`` (sdist and wheel), the wheels' contents
  checked, and each wheel installed with its dependencies alone in a fresh environment.
- ``bench``: the pytest-benchmark suite in ``benchmarks/`` against torch-streamer 0.0.2.

Extra arguments after ``--`` go to the tool a session runs, e.g.
``uvx nox -s "tests-cpu(newest)" -- -x -k conv``.

On a GPU machine without network access, build the wheels where there is network
(``uvx nox -s build``), carry ``dist/`` over and run the suite with the machine's own torch,
pytest and hypothesis (the handlers of each member are found through its installed entry points,
so the members are installed, not only put on ``PYTHONPATH``)::

    python -m pip install --no-deps --no-index --target /tmp/site dist/*.whl
    PYTHONPATH=/tmp/site python -m pytest packages --device=cuda

``--device`` comes from the repository's root ``conftest.py``; without it, the environment
variable ``TORCHSTREAMER_TEST_DEVICE`` (``cpu`` or ``cuda``) selects the device.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import tomllib
import zipfile
from pathlib import Path

import nox
from packaging.requirements import Requirement

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "typecheck", "tests-cpu", "isolated", "docs"]

PYTHON = "3.11"
ROOT = Path(__file__).parent
PACKAGES = ROOT / "packages"
# The members that hold code, by their short name, and the meta-distribution.
MEMBERS = {
    "core": "torchstreamer-core",
    "layers": "torchstreamer-layers",
    "nets": "torchstreamer-nets",
    "contrib": "torchstreamer-contrib",
}
META = "torch-streamer"
BASELINE_VARIABLE = "TORCHSTREAMER_BASELINE_PATH"
BASELINE = "torch-streamer==0.0.2"
# One intra-op thread in the test sessions unless told otherwise: streams mostly run small
# blocks, where a second thread does not help, and on a busy machine two threads on two cores
# run many times slower.
TEST_ENV = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def _project(distribution: str) -> dict[str, object]:
    with (PACKAGES / distribution / "pyproject.toml").open("rb") as file:
        project: dict[str, object] = tomllib.load(file)["project"]
    return project


def _requirements(distribution: str) -> list[Requirement]:
    dependencies = _project(distribution).get("dependencies", [])
    assert isinstance(dependencies, list)
    return [Requirement(text) for text in dependencies]


def _closure(distribution: str) -> list[str]:
    """The distribution and the workspace members it depends on, directly or not."""
    workspace = {*MEMBERS.values(), META}
    found: list[str] = []
    pending = [distribution]
    while pending:
        name = pending.pop()
        if name not in found:
            found.append(name)
            pending.extend(r.name for r in _requirements(name) if r.name in workspace)
    return found


def _lowest_torch() -> str:
    """``torch==X.*`` for the lower bound ``torch>=X`` that torchstreamer-core declares."""
    for requirement in _requirements(MEMBERS["core"]):
        if requirement.name == "torch":
            bounds = [spec.version for spec in requirement.specifier if spec.operator == ">="]
            if len(bounds) == 1:
                return f"torch=={bounds[0]}.*"
    raise RuntimeError("torchstreamer-core must declare its lowest torch as torch>=X")


TORCH = {"newest": [], "lowest": [_lowest_torch()]}


def _editable_members() -> list[str]:
    return [arg for name in MEMBERS.values() for arg in ("-e", str(PACKAGES / name))]


def _build_wheels(session: nox.Session, distributions: list[str], out_dir: Path) -> list[Path]:
    """Builds wheels of the distributions into ``out_dir``, afresh: installing from a source
    folder instead could reuse a cached build older than the sources."""
    for name in distributions:
        session.run(
            "uv", "build", "--wheel", "--quiet", "--out-dir", str(out_dir), "--package", name
        )
    wheels = sorted(out_dir.glob("*.whl"))
    if len(wheels) != len(distributions):
        session.error(f"expected {len(distributions)} wheels in {out_dir}, found {wheels}")
    return wheels


def _has_nvidia_gpu() -> bool:
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, check=False)
    except OSError:
        return False
    return listing.returncode == 0


def _print_versions(session: nox.Session) -> None:
    session.run(
        "python",
        "-c",
        "import sys, torch; print('python', sys.version.split()[0], '| torch', "
        "torch.__version__, '| cuda available:', torch.cuda.is_available())",
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Formatting and lint checks (ruff)."""
    session.install("--group", "lint")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".", *session.posargs)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every member's sources."""
    session.install(*_editable_members(), "--group", "typecheck")
    sources = [str(PACKAGES / name / "src") for name in MEMBERS.values()]
    session.run("mypy", *sources, *session.posargs)
    # the tooling runs on Python 3.11 (tomllib), the members on 3.10 and later
    session.run("mypy", "--python-version", PYTHON, "noxfile.py", "conftest.py")


def _tests(session: nox.Session, device: str, torch: str) -> None:
    if device == "cuda" and not _has_nvidia_gpu():
        session.skip("no NVIDIA GPU on this machine (nvidia-smi lists none)")
    session.install(*_editable_members(), "--group", "test", *TORCH[torch])
    _print_versions(session)
    session.run(
        "python",
        "-m",
        "pytest",
        "packages",
        "README.md",
        "docs",
        "--doctest-modules",
        "--markdown-docs",
        f"--device={device}",
        *session.posargs,
        env=TEST_ENV,
    )


@nox.session(name="tests-cpu", python=PYTHON)
@nox.parametrize("torch", list(TORCH), ids=list(TORCH))
def tests_cpu(session: nox.Session, torch: str) -> None:
    """Every test, docstring example and documentation example, on the CPU."""
    _tests(session, "cpu", torch)


@nox.session(name="tests-cuda", python=PYTHON)
@nox.parametrize("torch", list(TORCH), ids=list(TORCH))
def tests_cuda(session: nox.Session, torch: str) -> None:
    """The same on a CUDA device, IEEE float32; skipped without an NVIDIA GPU."""
    _tests(session, "cuda", torch)


# Run inside the isolated environment: torchstreamer must come from the installed wheels and
# workspace members that are not dependencies must be absent.
_ISOLATION_CHECK = """
import importlib.util, sys, sysconfig
from pathlib import Path
import torchstreamer
site = Path(sysconfig.get_paths()["purelib"]).resolve()
for path in torchstreamer.__path__:
    assert Path(path).resolve().is_relative_to(site), f"torchstreamer imported from {path}"
for module, expected in zip(sys.argv[1::2], sys.argv[2::2]):
    found = importlib.util.find_spec(module) is not None
    assert found == (expected == "yes"), f"{module}: installed={found}, expected {expected}"
print("isolated: torchstreamer from", site)
"""


@nox.session(python=PYTHON)
@nox.parametrize("member", list(MEMBERS), ids=list(MEMBERS))
def isolated(session: nox.Session, member: str) -> None:
    """One member's tests with only it and its declared dependencies installed, as wheels."""
    distribution = MEMBERS[member]
    needed = _closure(distribution)
    wheel_dir = Path(session.create_tmp()) / "wheels"
    shutil.rmtree(wheel_dir, ignore_errors=True)
    session.install(*map(str, _build_wheels(session, needed, wheel_dir)), "--group", "test")
    presence = [
        arg
        for short, name in MEMBERS.items()
        for arg in (f"torchstreamer.{short}", "yes" if name in needed else "no")
    ]
    _print_versions(session)
    # The tests run from a copy outside the repository: neither the repository's sources nor
    # its root conftest.py can be picked up; pytest's settings still come from pyproject.toml.
    with tempfile.TemporaryDirectory(prefix=f"torchstreamer-{member}-") as scratch:
        tests = Path(scratch) / "tests"
        shutil.copytree(PACKAGES / distribution / "tests", tests)
        with session.chdir(scratch):
            session.run("python", "-c", _ISOLATION_CHECK, *presence)
            session.run(
                "python",
                "-m",
                "pytest",
                str(tests),
                "-c",
                str(ROOT / "pyproject.toml"),
                "--rootdir",
                scratch,
                "--confcutdir",
                scratch,
                "-p",
                "no:cacheprovider",
                *session.posargs,
                env=TEST_ENV,
            )


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site, built with warnings as errors (site/)."""
    session.install("--group", "docs")
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


def _check_wheel(wheel: Path, distribution: str) -> None:
    """Checks what a wheel ships: only its own part of the ``torchstreamer`` package."""
    with zipfile.ZipFile(wheel) as archive:
        files = [
            name
            for name in archive.namelist()
            if ".dist-info/" not in name and not name.endswith("/")  # skip folder entries
        ]
    if distribution == META:
        assert not files, f"{wheel.name} must ship no modules, ships {files}"
        return
    short = distribution.removeprefix("torchstreamer-")
    if distribution == MEMBERS["core"]:
        own: tuple[str, ...] = (
            "torchstreamer/__init__.py",
            "torchstreamer/core/",
            "torchstreamer/testing/",
        )
        assert "torchstreamer/py.typed" in files, f"{wheel.name} lacks torchstreamer/py.typed"
    else:
        own = (f"torchstreamer/{short}/",)
        assert "torchstreamer/__init__.py" not in files, (
            f"{wheel.name} ships torchstreamer/__init__.py, which belongs to torchstreamer-core"
        )
        assert f"torchstreamer/{short}/py.typed" in files, f"{wheel.name} lacks py.typed"
    strays = [
        name for name in files if not name.startswith(own) and name != "torchstreamer/py.typed"
    ]
    assert not strays, f"{wheel.name} ships files outside {own}: {strays}"


def _handler_entry_points(distribution: str) -> list[str]:
    groups = _project(distribution).get("entry-points", {})
    assert isinstance(groups, dict)
    return list(groups.get("torchstreamer.handlers", {}))


# Run in an environment holding one wheel and its dependencies: every module imports, and the
# registry's entry points are exactly those the installed members declare, and all load.
_WHEEL_CHECK = """
import importlib, sys
from importlib.metadata import entry_points
for module in filter(None, sys.argv[1].split(",")):
    importlib.import_module(module)
points = entry_points(group="torchstreamer.handlers")
assert sorted(points.names) == sys.argv[2:], f"entry points {points.names}, expected {sys.argv[2:]}"
for point in points:
    assert list(point.load()()), f"entry point {point.name} lists no handlers"
"""


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Builds every distribution into dist/, checks the wheels and installs each one alone."""
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("uv", "build", "--all-packages", "--out-dir", str(dist))
    wheels = {}
    for distribution in [*MEMBERS.values(), META]:
        prefix = distribution.replace("-", "_") + "-"
        (wheel,) = [path for path in dist.glob("*.whl") if path.name.startswith(prefix)]
        _check_wheel(wheel, distribution)
        wheels[distribution] = wheel
    session.log("wheel contents: every member ships only its own sub-package")
    for distribution, wheel in wheels.items():
        # A fresh environment per wheel; the workspace members it needs are given as wheels,
        # since they are not on the package index yet; torch comes from the index.
        env_dir = Path(session.create_tmp()) / f"alone-{distribution}"
        session.run("uv", "venv", "--quiet", "--clear", "--python", PYTHON, str(env_dir))
        python = str(env_dir / "bin" / "python")
        closure = _closure(distribution)
        needed = [str(wheels[name]) for name in closure]
        session.run("uv", "pip", "install", "--quiet", "--python", python, *needed)
        session.run("uv", "pip", "check", "--python", python)
        modules = [f"torchstreamer.{short}" for short, name in MEMBERS.items() if name in closure]
        handlers = sorted(name for member in closure for name in _handler_entry_points(member))
        session.run(python, "-c", _WHEEL_CHECK, ",".join(modules), *handlers, external=True)
        session.log(f"{wheel.name}: installs alone; imports {modules}, handlers {handlers}")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks (pytest-benchmark), saved under .benchmarks/; see benchmarks/README.md."""
    session.install(*_editable_members(), "--group", "bench")
    # torch-streamer 0.0.2 shares its distribution name with our meta-distribution, so it is
    # unpacked beside the environment, not installed; the benchmarks import it under an alias.
    baseline = session.cache_dir / "torch-streamer-0.0.2"
    if not (baseline / "torchstreamer" / "__init__.py").exists():
        session.run(
            "uv", "pip", "install", "--quiet", "--no-deps", "--target", str(baseline), BASELINE
        )
    _print_versions(session)
    session.run(
        "python",
        "-m",
        "pytest",
        "benchmarks",
        "--benchmark-autosave",
        "--benchmark-storage",
        str(ROOT / ".benchmarks"),
        "--benchmark-columns",
        "min,median,iqr,rounds",
        *session.posargs,
        env={BASELINE_VARIABLE: str(baseline / "torchstreamer")},
    )
