"""Hypothesis profiles of the fuzz suite (issue 8, part 4).

``sybar-fuzz-ci`` (the default): 100 examples per property, the whole folder in about 20 s.
``sybar-fuzz-long``: selected by ``SYBAR_FUZZ=long``, 20,000 examples per property::

    SYBAR_FUZZ=long .venv/bin/python -m pytest -q --timeout 3600 tests/fuzz/

The modules read the profile by name (``FUZZ`` in fuzzing.py), so no other test in the session changes
its own hypothesis settings. Deadlines are off (a shared CI machine stalls at random); hangs are
caught by pytest-timeout, and every property feeds bounded inputs whose decoders must refuse
oversized length fields before allocating for them.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.large_base_example]

settings.register_profile("sybar-fuzz-ci", max_examples=100, deadline=None, suppress_health_check=_QUIET,
                          print_blob=True)
settings.register_profile("sybar-fuzz-long", max_examples=20_000, deadline=None, suppress_health_check=_QUIET,
                          print_blob=True)
