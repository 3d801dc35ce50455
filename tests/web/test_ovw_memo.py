"""The overview's memo: a small fleet's summary is always fresh; a large fleet's is served once
more after a change while the next is computed in the background, never older than MAX_STALE."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from avctl.server.live import ChangeFeed
from avctl.server.model import Principal
from avctl.server.web.pages.overview import MAX_STALE_SECONDS, SLOW_SUMMARY_SECONDS, _Memo

USER = Principal(1, "ann", "viewer")


@dataclass
class FakeCtx:
    changes: ChangeFeed = field(default_factory=ChangeFeed)
    inventory_value: object = field(default_factory=object)

    def inventory(self) -> object:
        return self.inventory_value


class Summaries:
    """A summary function that takes `took` seconds of the memo's clock and counts its calls;
    `gate` (when set) holds a background computation until the test releases it."""

    def __init__(self, clock: list[float], took: float) -> None:
        self.clock, self.took, self.calls = clock, took, 0
        self.gate: threading.Event | None = None
        self.started = threading.Event()

    def __call__(self, ctx: Any, user: Principal) -> dict[str, Any]:
        self.calls += 1
        n = self.calls
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        self.clock[0] += self.took
        return {"n": n}


def memo_for(took: float) -> tuple[_Memo, Summaries, list[float]]:
    clock = [1000.0]
    summaries = Summaries(clock, took)
    return _Memo(summaries, clock=lambda: clock[0]), summaries, clock


def wait_idle(memo: _Memo) -> None:
    for thread in threading.enumerate():
        if thread.name == "avctl-overview":
            thread.join(30)


def test_a_small_fleet_is_always_computed_fresh() -> None:
    memo, _summaries, _ = memo_for(SLOW_SUMMARY_SECONDS / 10)
    ctx = FakeCtx()
    assert memo.get(ctx, USER) == {"n": 1}  # type: ignore[arg-type]
    assert memo.get(ctx, USER) == {"n": 1}  # type: ignore[arg-type]  # nothing changed: reused
    ctx.changes.publish("state")
    assert memo.get(ctx, USER) == {"n": 2}  # type: ignore[arg-type]


def test_a_large_fleet_gets_the_last_summary_while_the_next_is_computed() -> None:
    memo, summaries, _clock = memo_for(SLOW_SUMMARY_SECONDS * 3)
    ctx = FakeCtx()
    assert memo.get(ctx, USER) == {"n": 1}  # type: ignore[arg-type]
    summaries.gate = threading.Event()
    summaries.started.clear()
    ctx.changes.publish("state")
    assert memo.get(ctx, USER) == {"n": 1}  # type: ignore[arg-type]  # at once, one summary behind
    assert summaries.started.wait(30)  # ... and the next one is being computed
    assert memo.get(ctx, USER) == {"n": 1}  # type: ignore[arg-type]  # one computation at a time
    assert summaries.calls == 2
    summaries.gate.set()
    wait_idle(memo)
    summaries.gate = None
    assert memo.get(ctx, USER) == {"n": 2}  # type: ignore[arg-type]  # the newer one, no new computation
    assert summaries.calls == 2


def test_a_stale_summary_is_never_older_than_max_stale() -> None:
    memo, _summaries, clock = memo_for(SLOW_SUMMARY_SECONDS * 3)
    ctx = FakeCtx()
    memo.get(ctx, USER)  # type: ignore[arg-type]
    clock[0] += MAX_STALE_SECONDS
    ctx.changes.publish("alerts")
    assert memo.get(ctx, USER) == {"n": 2}  # type: ignore[arg-type]  # too old to serve: computed first
    # another scope, another inventory: never the summary of someone else's sites or of an old fleet
    assert memo.get(ctx, Principal(2, "bob", "viewer", frozenset({"hq"}))) == {"n": 3}  # type: ignore[arg-type]
    ctx.inventory_value = object()
    assert memo.get(ctx, USER) == {"n": 4}  # type: ignore[arg-type]
