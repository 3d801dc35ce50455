"""A rollout ring's gate, judged from counts: shared by the fleet runner and the Temporal workflow
(which must not import the runner's I/O modules)."""

from __future__ import annotations


def gate_message(ring: str, ok: int, ran: int, gate: float) -> str | None:
    """Why ring ``ring`` did not pass the gate (``ok`` of the ``ran`` devices that ran ended ok), or
    None. A ring where none ran cannot be judged, so it does not pass."""
    if not ran:
        return f"ring {ring}: no device ran, so the {gate:.0%} gate cannot be judged"
    rate = ok / ran
    if rate + 1e-9 < gate:
        return f"ring {ring}: {ok} of {ran} device(s) ok ({rate:.0%}), below the {gate:.0%} gate"
    return None
