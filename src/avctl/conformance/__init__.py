"""The conformance suite (`avctl conformance`): one set of checks per family, run against the
emulator and a real device (read-only) side by side, reporting where they differ."""

from avctl.conformance.checks import Check, Outcome, Target, checks_for
from avctl.conformance.run import CheckResult, Report, run_conformance
from avctl.conformance.shape import ShapeDiff

__all__ = ["Check", "CheckResult", "Outcome", "Report", "ShapeDiff", "Target", "checks_for", "run_conformance"]
