"""``import torchstreamer as pts``: the lazy facade over every installed distribution."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

import torchstreamer as pts
import torchstreamer.core

# The facade's promise, written out independently of its table: where each name lives.
MEMBERS = {
    "torchstreamer.core": "torchstreamer-core",
    "torchstreamer.layers": "torchstreamer-layers",
    "torchstreamer.nets": "torchstreamer-nets",
    "torchstreamer.contrib": "torchstreamer-contrib",
}
# torch-streamer 0.0.2's public names must keep working after the switch.
COMPATIBLE = {
    "BaseStream": "torchstreamer.core",
    "register_streamer": "torchstreamer.core",
    "create_stream": "torchstreamer.core",
    "Conv1dStream": "torchstreamer.layers",
    "ConvTranspose1dStream": "torchstreamer.layers",
    "Pool1dStream": "torchstreamer.layers",
    "Elementwise1dStream": "torchstreamer.layers",
    "Sequential1dStream": "torchstreamer.nets",
    "Residual1dStream": "torchstreamer.nets",
    "Residual1d": "torchstreamer.nets",
}
# the facade exposes exactly what core exports
CORE_NAMES = set(torchstreamer.core.__all__)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_the_table_places_every_name_in_a_member() -> None:
    for name, (module, distribution) in pts._PUBLIC.items():
        assert MEMBERS[module] == distribution, name
    for name, module in COMPATIBLE.items():
        assert pts._PUBLIC[name][0] == module, name
    assert {n for n, (m, _) in pts._PUBLIC.items() if m == "torchstreamer.core"} == CORE_NAMES


def test_all_lists_the_names_of_installed_members() -> None:
    expected = {name for name, (module, _) in pts._PUBLIC.items() if installed(module)}
    assert isinstance(pts.__all__, list)
    assert pts.__all__ == sorted(expected)
    assert set(pts.__all__) >= CORE_NAMES


@pytest.mark.parametrize("name", sorted(CORE_NAMES))
def test_core_names_resolve(name: str) -> None:
    value = getattr(pts, name)
    assert value is getattr(importlib.import_module("torchstreamer.core"), name)
    assert pts.__dict__[name] is value, "a resolved name is kept, not looked up again"


@pytest.mark.parametrize("name", sorted(set(pts._PUBLIC) - CORE_NAMES))
def test_member_names_resolve(name: str) -> None:
    module_name, distribution = pts._PUBLIC[name]
    if not installed(module_name):
        pytest.skip(f"{distribution} is not installed")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        pytest.skip(f"{module_name} does not import yet (under construction?): {error!r}")
    if not hasattr(module, name):
        pytest.skip(f"{module_name} does not define {name} yet (under construction?)")
    assert getattr(pts, name) is getattr(module, name)


def test_dir_lists_the_public_names() -> None:
    listed = dir(pts)
    assert set(pts.__all__) <= set(listed)
    assert listed == sorted(listed)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'torchstreamer' has no attribute 'Nope'"):
        pts.Nope  # noqa: B018
    assert not hasattr(pts, "conv1dstream")


@pytest.mark.parametrize(
    ("name", "module", "distribution"),
    [
        ("Conv1dStream", "torchstreamer.layers", "torchstreamer-layers"),
        ("Sequential1dStream", "torchstreamer.nets", "torchstreamer-nets"),
        ("Timing", "torchstreamer.core", "torchstreamer-core"),
    ],
)
def test_a_name_of_a_missing_distribution_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, name: str, module: str, distribution: str
) -> None:
    monkeypatch.delitem(pts.__dict__, name, raising=False)
    monkeypatch.setitem(sys.modules, module, None)  # what Python does for an absent module
    with pytest.raises(ImportError, match=f"pip install {distribution}") as caught:
        getattr(pts, name)
    assert f"torchstreamer.{name} is part of the {distribution} distribution" in str(caught.value)
    assert caught.value.name == module


@pytest.mark.parametrize("missing", ["torch", "torchaudio", "torchstreamer.cor"])
def test_a_missing_dependency_is_not_blamed_on_the_member(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    # the member is installed, but something it imports is not: that error must come through
    def import_module(name: str) -> Any:
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)

    monkeypatch.delitem(pts.__dict__, "TimeBuffer", raising=False)
    monkeypatch.setattr(
        pts, "importlib", types.SimpleNamespace(import_module=import_module, util=importlib.util)
    )
    with pytest.raises(ModuleNotFoundError) as caught:
        pts.TimeBuffer  # noqa: B018
    assert caught.value.name == missing
    assert "pip install" not in str(caught.value)


def test_without_members_the_facade_lists_core_only() -> None:
    # a fresh interpreter in which the other members are absent, as when core is installed alone
    script = textwrap.dedent(
        """
        import sys
        sys.modules["torchstreamer.layers"] = None
        sys.modules["torchstreamer.nets"] = None
        sys.modules["torchstreamer.contrib"] = None
        import torchstreamer as pts
        assert "torch" not in sys.modules, "importing the facade must stay cheap"
        print(",".join(pts.__all__))
        print("Conv1dStream" in dir(pts))
        try:
            pts.Conv1dStream
        except ImportError as error:
            print(error)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    names, in_dir, message = result.stdout.strip().splitlines()
    assert set(names.split(",")) == CORE_NAMES
    assert in_dir == "False"
    assert "pip install torchstreamer-layers" in message


def test_the_namespace_line_comes_first() -> None:
    source = Path(pts.__file__ or "").read_text()
    body = ast.parse(source).body
    assert isinstance(body[0], ast.Expr)
    assert isinstance(body[0].value, ast.Constant), "the module docstring comes first"
    statement = ast.get_source_segment(source, body[1])
    assert statement == '__path__ = __import__("pkgutil").extend_path(__path__, __name__)'
