"""Device profiles: captured answers of a real device, redacted, served by the emulator.

`avctl capture` makes them (avctl.capture), `avctl emulate FAMILY --profile` serves them
(avctl.emulator.profiled), `avctl conformance` compares an emulator with a device. This package is
only the format and the redaction, so that every one of those can use it.
"""

from avctl.profile.model import (
    PROFILE_FORMAT,
    Exchange,
    Profile,
    Redaction,
    Skipped,
    find_profile,
    load_profile,
    request_key,
    save_profile,
    shipped_profiles,
)
from avctl.profile.scrub import Scrubber

__all__ = ["PROFILE_FORMAT", "Exchange", "Profile", "Redaction", "Scrubber", "Skipped", "find_profile",
           "load_profile", "request_key", "save_profile", "shipped_profiles"]
