import os

from hypothesis import HealthCheck, settings

# Numba compiles on first use: no per-example deadline; keep runs short on 2 cores.
settings.register_profile(
    "longtail", deadline=None, max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", 60)),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("longtail")
