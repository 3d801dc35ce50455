"""The rules file: the shipped example loads; every mistake is reported as file:line with a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from avctl.server.alerts.conditions import Condition, parse_condition
from avctl.server.alerts.rules import EmailChannel, RulesError, WebhookChannel, load_rules, parse_rules
from avctl.server.model import DeviceView

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "rules.yaml"


def view(state: str = "online", **readings: object) -> DeviceView:
    return DeviceView(name="hq-101", family="videoos", site="hq", room="101", tags=frozenset({"lobby"}),
                      address="127.0.0.1:9", state=state, since=0.0, readings=readings)  # type: ignore[arg-type]


def test_the_example_rules_file_loads() -> None:
    rules = load_rules(EXAMPLE, known_readings={"firmware", "in_call", "cert_days_left", "sip_registered"})
    assert [r.name for r in rules.rules] == ["device-offline", "lobby-not-online", "login-rejected",
                                             "firmware-baseline", "cert-expiring", "sip-down", "long-call"]
    assert rules.warnings == ()
    assert {n: c.type for n, c in rules.channels.items()} == {
        "ops-webhook": "webhook", "av-slack": "slack", "av-teams": "teams", "av-mail": "email"}
    offline = rules.rule("device-offline")
    assert offline is not None and offline.condition.hold == 300 and offline.severity == "critical"
    assert offline.notify == ("ops-webhook", "av-slack", "av-mail")
    cert = rules.rule("cert-expiring")
    assert cert is not None and cert.notify == ("ops-webhook",) and cert.severity == "warning"  # the defaults
    mail = rules.channels["av-mail"]
    assert isinstance(mail, EmailChannel) and mail.security == "starttls" and mail.port == 587
    lobby = rules.rule("lobby-not-online")
    assert lobby is not None and lobby.applies_to(view()) and not lobby.applies_to(
        DeviceView(name="x", family="videoos", site="hq", room=None, tags=frozenset(), address="h",
                   state="online", since=0.0))


def test_a_reading_no_family_declares_is_a_warning_not_an_error() -> None:
    rules = load_rules(EXAMPLE, known_readings={"firmware", "in_call"})
    assert len(rules.warnings) == 2
    assert all(w.startswith(f"{EXAMPLE}:") for w in rules.warnings)
    assert "cert_days_left" in rules.warnings[0] and "sip_registered" in rules.warnings[1]


def test_the_built_in_families_declare_their_feedbacks() -> None:
    rules = parse_rules("rules:\n  - {name: fw, when: 'firmware != \"1.0\"'}\n  - {name: x, when: bogus_reading}\n")
    assert len(rules.warnings) == 1 and "bogus_reading" in rules.warnings[0]


def test_secrets_never_show_in_a_channel_repr() -> None:
    rules = parse_rules(
        "channels:\n  hook: {type: slack, url: 'https://hooks.example/services/T0/B0/sekrit-token'}\n"
        "  mail: {type: email, host: 127.0.0.1, user: u, password: 'hunter2-pw', from: a@b.c, to: d@e.f}\n")
    assert "sekrit" not in repr(rules.channels) and "hunter2" not in repr(rules.channels)
    hook = rules.channels["hook"]
    assert isinstance(hook, WebhookChannel) and hook.url.endswith("sekrit-token")
    # a literal Slack URL is a secret written in clear: warned about (without quoting it)
    slack_url, password = rules.warnings
    assert slack_url.startswith("<rules>:2: channel hook:") and "secret:NAME" in slack_url
    assert password.startswith("<rules>:3: channel mail: plaintext password")
    assert "sekrit" not in slack_url + password and "hunter2" not in slack_url + password


@pytest.mark.parametrize(("text", "line", "words"), [
    ("rules:\n  - name: a\n    when: offline for 5 fortnights\n", 3, "not a duration"),
    ("rules:\n  - name: a\n    when: offline for\n", 3, "empty"),
    ("rules:\n  - name: a\n    when: offline for 400d\n", 3, "not a usable duration"),
    ("rules:\n  - name: a\n    when: firmware != 10.1.0\n", 3, "cannot read"),
    ("rules:\n  - name: a\n    when: firmware =~ 'x'\n", 3, "cannot read"),
    ("rules:\n  - name: a\n    when: firmware < 'beta'\n", 3, "numbers or versions"),
    ("rules:\n  - name: a\n    when: sip_registered > false\n", 3, "cannot compare"),
    ("rules:\n  - name: a\n    when: in_call == yes\n", 3, "not a value"),
    ("rules:\n  - name: a\n    when: not sleeping\n", 3, "not a device state"),
    ("rules:\n  - name: a\n    when: online\n", 3, "not online"),
    ("rules:\n  - name: a\n    when: offline\n    severity: urgent\n", 4, "unknown severity"),
    ("rules:\n  - name: a\n    when: offline\n    notify: [pager]\n", 4, "unknown channel"),
    ("rules:\n  - name: a\n    when: offline\n  - name: a\n    when: error\n", 4, "duplicate rule name"),
    ("rules:\n  - name: a\n    when: offline\n    scope: {group: lobby}\n", 4, "cannot select on 'group'"),
    ("rules:\n  - name: a\n    when: offline\n    scope: {colour: red}\n", 4, "cannot select"),
    ("rules:\n  - name: a\n    when: offline\n    sevrity: info\n", 4, "unknown key 'sevrity'"),
    ("rules:\n  - name: a\n", 2, "no 'when'"),
    ("rules:\n  - name: a\n    when: [offline]\n", 3, "condition text"),
    ("alerts: []\n", 1, "unknown top-level key"),
    ("rules: {a: 1}\n", 1, "must be a list"),
    ("rules:\n  - name: a\n    when: offline: now\n", 3, "not valid YAML"),
    ("channels:\n  h: {type: pager}\n", 2, "unknown channel type"),
    ("channels:\n  h: {type: webhook, url: 'http://hooks.example/x'}\n", 2, "plain http://"),
    ("channels:\n  h: {type: webhook, url: 'ftp://hooks.example/x'}\n", 2, "https:// URL"),
    ("channels:\n  h: {type: webhook, url: 'vault:x'}\n", 2, "unknown credential scheme"),
    ("channels:\n  h:\n    type: webhook\n", 2, "no 'url'"),
    ("channels:\n  h:\n    type: webhook\n    url: env:H\n    ca_file: nowhere.pem\n", 5, "no file"),
    ("channels:\n  m: {type: email, host: smtp.example, from: a@b.c, to: [d@e.f]}\n", 2, "unencrypted"),
    ("channels:\n  m: {type: email, host: 127.0.0.1, from: a@b.c, to: [not-an-address]}\n", 2, "not an e-mail"),
    ("channels:\n  m: {type: email, host: 127.0.0.1, from: a@b.c, to: d@e.f, port: 99999}\n", 2, "port"),
    ("channels:\n  m: {type: email, host: 127.0.0.1, from: a@b.c, to: d@e.f, password: env:X}\n", 2, "without a user"),
])
def test_mistakes_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text(text)
    with pytest.raises(RulesError) as err:
        load_rules(f, known_readings=())
    assert str(err.value).startswith(f"{f}:{line}: "), str(err.value)
    assert words in str(err.value)
    assert err.value.line == line


def test_a_webhook_url_is_never_quoted_in_an_error(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("channels:\n  h: {type: slack, url: 'http://hooks.example/services/T0/sekrit'}\n")
    with pytest.raises(RulesError) as err:
        load_rules(f)
    assert "sekrit" not in str(err.value) and "channel h" in str(err.value)


def test_plain_http_is_fine_to_loopback_or_when_asked() -> None:
    rules = parse_rules("channels:\n  a: {type: webhook, url: 'http://127.0.0.1:8080/x'}\n"
                        "  b: {type: webhook, url: 'http://hooks.example/x', allow_http: true}\n")
    assert set(rules.channels) == {"a", "b"}


def test_an_empty_file_has_no_rules() -> None:
    assert parse_rules("").rules == ()


def test_binary_or_huge_files_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_bytes(b"rules:\n  - name: \xff\n")
    with pytest.raises(RulesError, match=r":2: not UTF-8"):
        load_rules(f)
    f.write_bytes(b"#" * (1024 * 1024 + 1))
    with pytest.raises(RulesError, match="larger than"):
        load_rules(f)


# --- conditions -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "state", "readings", "holds"), [
    ("offline", "offline", {}, True),
    ("offline", "online", {}, False),
    ("not online", "auth_failed", {}, True),
    ("not online", "disabled", {}, False),  # a disabled device raises nothing
    ("offline for 5m", "offline", {}, True),  # the time is the engine's business
    ('firmware != "10.1.0"', "online", {"firmware": "10.0.2"}, True),
    ('firmware != "10.1.0"', "online", {"firmware": "10.1.0"}, False),
    ('firmware != "10.1.0"', "offline", {"firmware": "10.0.2"}, None),  # stale reading: unknown
    ('firmware != "10.1.0"', "online", {}, None),  # not reported: unknown
    ('firmware < "10.1.0"', "online", {"firmware": "9.12.0"}, True),  # a version, not text
    ('firmware < "10.1.0"', "online", {"firmware": "10.1.0"}, False),
    ('firmware < "10.1.0"', "online", {"firmware": "10.1.0-beta"}, None),
    ("cert_days_left < 30", "online", {"cert_days_left": 12}, True),
    ("cert_days_left < 30", "online", {"cert_days_left": 30.0}, False),
    ("cert_days_left < 30", "online", {"cert_days_left": "12"}, None),  # wrong type: unknown
    ("cert_days_left < 30", "online", {"cert_days_left": True}, None),
    ("cert_days_left < 30", "online", {"cert_days_left": float("nan")}, None),
    ("sip_registered == false", "online", {"sip_registered": False}, True),
    ("sip_registered == false", "online", {"sip_registered": 0}, None),
    ("in_call", "online", {"in_call": True}, True),
    ("in_call for > 4h", "online", {"in_call": False}, False),
    ("volume >= -10", "online", {"volume": -10}, True),
])
def test_conditions(text: str, state: str, readings: dict[str, object], holds: bool | None) -> None:
    assert parse_condition(text).evaluate(view(state, **readings))[0] is holds


def test_for_is_parsed_into_seconds() -> None:
    assert parse_condition("in_call for > 4h").hold == 14400
    assert parse_condition("offline for 1h30m").hold == 5400
    assert parse_condition("error").hold == 0
    assert parse_condition("not online for 90s") == Condition(
        "not online for 90s", states=frozenset({"online"}), negate=True, hold=90)
