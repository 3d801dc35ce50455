"""The dashboard's pieces without a browser: forms from action schemas, "copy as CLI", the change
feed behind live pages, the login's return address."""

from __future__ import annotations

import asyncio
import shlex
import threading

import pytest

from avctl.errors import ValidationError
from avctl.families import builtin_spec
from avctl.server.live import ChangeFeed
from avctl.server.web.cli_text import cli_command
from avctl.server.web.forms import PREFIX, form_fields, parse_form
from avctl.server.web.pages.login import safe_next


def test_form_fields_follow_the_schema() -> None:
    spec = builtin_spec("videoos")
    fields = {f.name: f for f in form_fields(spec.action("audio_volume_set"))}
    volume = fields["volume"]
    assert (volume.widget, volume.minimum, volume.maximum, volume.step, volume.required) == \
        ("number", 0, 100, "1", True)
    muted = {f.name: f for f in form_fields(spec.action("audio_muted_set"))}["muted"]
    assert (muted.widget, muted.choices) == ("select", ("true", "false"))


def test_secret_parameters_are_password_fields() -> None:
    spec = builtin_spec("solstice")
    secret = [f for a in spec.actions.values() for f in form_fields(a) if f.widget == "password"]
    assert secret, "the Solstice spec has secret parameters (admin password, keys)"


def test_parse_form_converts_and_validates() -> None:
    action = builtin_spec("videoos").action("audio_volume_set")
    assert parse_form(action, {PREFIX + "volume": "42", "csrf": "x"}) == {"volume": 42}
    with pytest.raises(ValidationError) as bad:
        parse_form(action, {PREFIX + "volume": "142"})
    assert bad.value.param == "volume"
    with pytest.raises(ValidationError, match="required"):
        parse_form(action, {PREFIX + "volume": ""})


def test_cli_command_quotes_and_masks() -> None:
    text = cli_command("fleet", "run", "x", options=[("--select", "site=hq,room=Board Room"), ("--yes", True),
                                                     ("--skip", None)],
                       params={"name": "a b", "pin": "1234", "on": True}, secret={"pin"})
    assert "1234" not in text
    assert shlex.split(text) == ["avctl", "fleet", "run", "x", "--select", "site=hq,room=Board Room", "--yes",
                                 "name=a b", "pin=***", "on=true"]


def test_safe_next_stays_on_this_server() -> None:
    assert safe_next("/devices?select=site%3Dhq") == "/devices?select=site%3Dhq"
    for bad in ("//evil.example/", "https://evil.example/", "\\\\evil", "/\\evil.example", None, ""):
        assert safe_next(bad) == "/"


async def test_change_feed_wakes_a_waiter_published_from_another_thread() -> None:
    feed = ChangeFeed()
    seen = feed.versions()
    waiter = asyncio.create_task(feed.changed(seen, timeout=60))
    await asyncio.sleep(0)
    threading.Thread(target=feed.publish, args=("alerts",)).start()
    assert await waiter == {"alerts": 1}
    # nothing new: the wait ends at its timeout with nothing
    assert await feed.changed(feed.versions(), timeout=0.01) == {}
    with pytest.raises(ValueError, match="unknown topic"):
        feed.publish("nope")
