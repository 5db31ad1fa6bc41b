"""Audio utilities: band-limited sample-rate conversion, offline and streamed."""

from .resample import Resample
from .resample_stream import ResampleStream

__all__ = ["Resample", "ResampleStream"]
