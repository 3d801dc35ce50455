"""Polling: the engine that watches every device (see `avctl.server.poll.engine`)."""

from avctl.server.poll.engine import PollEngine, PollRunner
from avctl.server.poll.schedule import FAMILY_MIN_INTERVAL, PollSettings

__all__ = ["FAMILY_MIN_INTERVAL", "PollEngine", "PollRunner", "PollSettings"]
