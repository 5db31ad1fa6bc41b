"""How the ``torchstreamer`` command finds the model it is given and the reference it checks.

A MODEL is ``package.module:factory`` (a callable returning an ``nn.Module``, or the module
object itself) or a file saved with ``torch.save(module)``. TorchScript archives are refused: a
scripted module no longer has the Python classes (``nn.Conv1d``...) that the registry picks
streams by.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .stream import BaseStream

__all__ = [
    "MEMBERS",
    "CliError",
    "LoadedModel",
    "input_channels",
    "load_model",
    "missing_members",
    "unpadded",
]

# the distributions that bring built-in handlers, and the package each ships
MEMBERS: dict[str, str] = {
    "torchstreamer-layers": "torchstreamer.layers",
    "torchstreamer-nets": "torchstreamer.nets",
}

_FILE_SUFFIXES = (".pt", ".pth", ".pkl", ".ts", ".jit", ".bin")


class CliError(Exception):
    """A problem the user can fix: its message is the one line the command prints."""


@dataclass(frozen=True)
class LoadedModel:
    """A model and how the command names it."""

    module: nn.Module
    label: str


def missing_members() -> list[str]:
    """The member distributions with built-in handlers that are not installed."""
    return [dist for dist, package in MEMBERS.items() if not _importable(package)]


def _importable(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except ImportError:
        return False


def load_model(spec: str) -> LoadedModel:
    """Loads the model a MODEL argument names.

    Args:
        spec: ``package.module:factory`` (dotted attributes allowed after the colon) or the
            path of a file saved with ``torch.save(module)``.

    Returns:
        the module (not yet in eval mode) and a label for the report.

    Raises:
        CliError: with a one-line reason and what to do, for every way this can fail.
    """
    path = Path(spec)
    if path.is_file():
        return LoadedModel(_load_file(path), spec)
    if spec.lower().endswith(_FILE_SUFFIXES) or (os.sep in spec and ":" not in spec):
        raise CliError(f"no such file: {spec}")
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise CliError(
            f"MODEL must be package.module:factory or a file saved with torch.save(module), "
            f"got {spec!r}"
        )
    target = _import_attribute(module_name, attribute)
    return LoadedModel(_as_module(target, spec), spec)


def _import_attribute(module_name: str, attribute: str) -> object:
    try:
        target: object = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (module_name + ".").startswith(error.name + "."):
            raise CliError(
                f"no module named {error.name!r}: check the spelling, and install it or run "
                "from the directory that holds it (the current directory is searched)"
            ) from error
        raise CliError(f"importing {module_name} failed: {_one_line(error)}") from error
    except Exception as error:  # the user's module may raise anything while importing
        raise CliError(f"importing {module_name} failed: {_one_line(error)}") from error
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as error:
            raise CliError(
                f"{module_name} has no attribute {attribute!r}: name a function or class that "
                "returns the model, or the model itself"
            ) from error
    return target


def _as_module(target: object, spec: str) -> nn.Module:
    if isinstance(target, nn.Module):
        return target
    if not callable(target):
        raise CliError(
            f"{spec} is a {type(target).__name__}, not an nn.Module or a callable that returns one"
        )
    try:
        result = target()
    except Exception as error:  # the factory is the user's code
        raise CliError(f"calling {spec}() failed: {_one_line(error)}") from error
    if not isinstance(result, nn.Module):
        raise CliError(
            f"{spec}() returned a {type(result).__name__}, not an nn.Module: the factory must "
            "return the model"
        )
    return result


def _load_file(path: Path) -> nn.Module:
    if _is_torchscript(path):
        raise CliError(
            f"{path} is a TorchScript archive: a scripted module has lost the Python classes "
            "(nn.Conv1d...) that streams are chosen by; pass the model as "
            "package.module:factory or save it with torch.save(module)"
        )
    try:
        # a pickled module can only be loaded in full; unpickling runs code from the file,
        # which is why the command's help says to load only files you trust
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # unpickling fails in many ways: missing classes, bad files
        raise CliError(
            f"cannot load {path}: {_one_line(error)} (the classes of a saved module must be "
            "importable: run from the directory of the code that defines them)"
        ) from error
    if not isinstance(loaded, nn.Module):
        what = "a state dict" if isinstance(loaded, dict) else f"a {type(loaded).__name__}"
        raise CliError(
            f"{path} holds {what}, not an nn.Module: save the module itself with "
            "torch.save(module), or pass package.module:factory"
        )
    return loaded


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def input_channels(module: nn.Module, stream: BaseStream) -> int | None:
    """The input channels of a model: the stream's, else the first convolution's, else None."""
    if stream.in_channels > 0:
        return stream.in_channels
    for layer in module.modules():
        if isinstance(layer, (nn.Conv1d, nn.ConvTranspose1d)) and layer.in_channels > 0:
            return int(layer.in_channels)
    return None


def unpadded(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose layers ignore their padding: the reference of edges="valid".

    Convolutions, transposed convolutions (``output_padding`` too), pools (``ceil_mode`` too)
    and padding layers of ``torch.nn`` lose their padding; the copy shares nothing with the
    original. Padding written into a ``forward`` (``F.pad``) is out of reach.
    """
    copied = copy.deepcopy(module)
    for layer in copied.modules():
        if isinstance(layer, nn.Conv1d):
            layer.padding = (0,)
            layer.padding_mode = "zeros"
        elif isinstance(layer, nn.ConvTranspose1d):
            layer.padding = (0,)
            layer.output_padding = (0,)
        elif isinstance(layer, (nn.AvgPool1d, nn.MaxPool1d)):
            layer.padding = 0
            layer.ceil_mode = False
        elif isinstance(layer, nn.LPPool1d):
            layer.ceil_mode = False
        elif isinstance(
            layer,
            (nn.ConstantPad1d, nn.ReflectionPad1d, nn.ReplicationPad1d, nn.CircularPad1d),
        ):
            layer.padding = (0, 0)
    return copied


def _one_line(error: BaseException) -> str:
    """``Type: first line of the message``: enough to act on, short enough for one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
