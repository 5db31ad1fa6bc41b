"""The handlers this distribution registers with the core registry (entry point)."""

from torchstreamer.core import Handler

from .audio import Resample, ResampleStream

__all__ = ["handlers"]


def handlers() -> list[Handler]:
    """Every handler of torchstreamer-contrib."""
    return [Handler(Resample, ResampleStream)]
