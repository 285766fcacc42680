"""Suite-wide settings: hypothesis runs without per-example deadlines (a loaded 2-core CI machine
makes timings noisy; speed is measured in bench/, not here)."""

from hypothesis import settings

settings.register_profile("headroom", deadline=None)
settings.load_profile("headroom")
