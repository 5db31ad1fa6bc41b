"""Hypothesis profiles shared by the test suites of every distribution."""

from __future__ import annotations

import os

__all__ = ["load_hypothesis_profile"]


def load_hypothesis_profile() -> str:
    """Registers the ``ci`` and ``thorough`` hypothesis profiles and loads one.

    ``ci`` (the default) keeps property tests quick enough for every commit; ``thorough``
    explores far more cases and is run before a release. The environment variable
    ``HYPOTHESIS_PROFILE`` picks one. Needs the ``hypothesis`` package.

    Returns:
        the name of the loaded profile.
    """
    from hypothesis import HealthCheck, settings

    suppressed = [HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile(
        "ci", max_examples=25, deadline=None, suppress_health_check=suppressed
    )
    settings.register_profile(
        "thorough", max_examples=600, deadline=None, suppress_health_check=suppressed
    )
    name = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    settings.load_profile(name)
    return name
