"""Every password-like parameter of every built-in spec is marked ``secret``.

A parameter that is not marked is stored in job records and shown in audit rows and outputs as
given; the redactor's key rule catches most of it, but the mark is what the runner and ``avctl
call`` use to mask values and to warn when one is typed on the command line.
"""

from __future__ import annotations

from avctl.families import builtin_spec, family_names
from avctl.fleet.credentials import SENSITIVE_KEY_RE

#: names that match SENSITIVE_KEY_RE but are not secrets (each with the reason)
#: (family, action id, parameter name) -> why; empty today: every match is a real secret
NOT_SECRET: dict[tuple[str, str, str], str] = {}


def test_every_sensitive_parameter_of_every_builtin_spec_is_marked_secret() -> None:
    unmarked = []
    checked = 0
    for family in family_names():
        for action in builtin_spec(family).actions.values():
            for p in action.params:
                sensitive = SENSITIVE_KEY_RE.search(p.name) or SENSITIVE_KEY_RE.search(p.wire_name)
                if not sensitive or (family, action.id, p.name) in NOT_SECRET:
                    continue
                checked += 1
                if not p.secret:
                    unmarked.append(f"{family} {action.id} {p.name}")
    assert checked >= 10  # the walk really saw the password parameters
    assert unmarked == [], "parameters with password-like names not marked 'secret: true':\n" + "\n".join(unmarked)
