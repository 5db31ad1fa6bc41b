"""Entry-point discovery, with a real distribution written to a directory put on sys.path."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

from torchstreamer.core import create_stream, register_streamer


class Marker(nn.Module):
    pass


def write_distribution(
    root: Path, name: str, points: dict[str, str], modules: dict[str, str]
) -> None:
    """Writes a minimal installed distribution: a dist-info directory and its modules."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = [f"{point} = {target}" for point, target in points.items()]
    (info / "entry_points.txt").write_text("[torchstreamer.handlers]\n" + "\n".join(lines) + "\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: ModuleType
) -> Iterator[tuple[Path, str]]:
    """A fresh directory on sys.path, a unique module prefix, and undiscovered handlers."""
    prefix = f"ts_plugin_{uuid.uuid4().hex[:8]}"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_discovered", False)
    yield tmp_path, prefix
    for name in [name for name in sys.modules if name.startswith(prefix)]:
        del sys.modules[name]


MODULES_SOURCE = """
    from torch import nn

    class Thing(nn.Module):
        def forward(self, x):
            return x + 1
"""

HANDLERS_SOURCE = """
    from torchstreamer.core import BaseStream, Handler
    from {prefix}_modules import Thing

    loads = 0

    class ThingStream(BaseStream):
        def __init__(self, module):
            super().__init__()
            self.module = module

        def step(self, x, final=False):
            return self.module(x) if x.size(-1) else None

    def handlers():
        global loads
        loads += 1
        return [Handler(Thing, ThingStream)]

    def raising():
        raise RuntimeError("plug-in failed to start")

    def not_handlers():
        return [object()]

    def bad_type():
        return [Handler(int, ThingStream)]

    def not_callable():
        return [Handler(Thing, "ThingStream")]

    def not_iterable():
        return None
"""


def plugin(site: tuple[Path, str], points: dict[str, str]) -> type[nn.Module]:
    root, prefix = site
    write_distribution(
        root,
        f"{prefix}_dist",
        {point: target.format(prefix=prefix) for point, target in points.items()},
        {
            f"{prefix}_modules": MODULES_SOURCE,
            f"{prefix}_handlers": HANDLERS_SOURCE.format(prefix=prefix),
        },
    )
    importlib.invalidate_caches()
    thing: type[nn.Module] = importlib.import_module(f"{prefix}_modules").Thing
    return thing


def test_entry_points_are_discovered_lazily_on_first_use(
    site: tuple[Path, str], registry: ModuleType
) -> None:
    thing = plugin(site, {"things": "{prefix}_handlers:handlers"})
    handlers_module = f"{site[1]}_handlers"
    register_streamer(Marker, lambda module: None)  # the registry in use, not yet discovering
    assert handlers_module not in sys.modules
    assert not registry._discovered

    with warnings.catch_warnings():
        # other installed distributions may be mid-construction; they must not matter here
        warnings.simplefilter("ignore", RuntimeWarning)
        stream = create_stream(thing())
    assert type(stream).__name__ == "ThingStream"
    assert registry._discovered
    plugin_module = sys.modules[handlers_module]
    x = torch.randn(3, 4)
    torch.testing.assert_close(stream(x), x + 1)

    create_stream(thing())
    assert plugin_module.loads == 1


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        ("{prefix}_missing_module:handlers", "ModuleNotFoundError"),
        ("{prefix}_handlers:no_such_function", "AttributeError"),
        ("{prefix}_handlers:raising", "plug-in failed to start"),
        ("{prefix}_handlers:not_handlers", "Handler"),
        ("{prefix}_handlers:bad_type", "nn.Module subclass"),
        ("{prefix}_handlers:not_callable", "callable"),
        ("{prefix}_handlers:not_iterable", "NoneType"),
    ],
)
def test_a_broken_entry_point_warns_and_spares_the_others(
    site: tuple[Path, str], registry: ModuleType, broken: str, error: str
) -> None:
    # the broken entry point is listed, and loaded, before the good one
    thing = plugin(site, {"a_broken": broken, "z_good": "{prefix}_handlers:handlers"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stream = create_stream(thing())
    assert type(stream).__name__ == "ThingStream"
    ours = [w for w in caught if "'a_broken'" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert ours[0].category is RuntimeWarning
    assert error in str(ours[0].message)
    assert ours[0].filename == __file__, "the warning should point at the caller of create_stream"
    # the broken distribution added nothing, and discovery is not retried on every call
    assert len(registry._installed[thing]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_stream(thing())
