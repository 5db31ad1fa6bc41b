"""torchstreamer-contrib: streams for well-known model families and audio utilities.

Its handlers are registered with the core registry through an entry point, so
``torchstreamer.create_stream`` picks them up; its public names are also available from the
top-level package (``torchstreamer.ResampleStream``).
"""

from .audio import Resample, ResampleStream

__all__ = ["Resample", "ResampleStream"]
