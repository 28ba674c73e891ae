"""Suite-wide settings: no test may depend on how fast this machine is."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Hypothesis fails an example that runs longer than its deadline (200 ms by default) and
# a test whose data takes too long to generate: wall-clock limits that a loaded machine
# breaks. Speed is measured in bench/, not asserted here.
settings.register_profile("callstream", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("callstream")
