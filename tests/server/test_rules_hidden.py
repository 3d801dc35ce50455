"""The rules editor never shows a secret written in the rules file: it shows a placeholder, a save
that leaves it keeps the secret, and a save that moves, copies or re-routes it writes nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from avctl.server.alerts import RulesError
from avctl.server.alerts.edit import read_for_editor, replace_rules_file
from avctl.server.alerts.hidden import mask
from avctl.server.alerts.rules import EmailChannel, WebhookChannel, load_rules, parse_rules

SECRETS = ("sekrit-hook-1", "sekrit-slack-2", "hunter2-mail-3", "sekrit-teams-4")
RULES = """\
channels:
  ops: {type: webhook, url: 'https://hooks.example/T0/sekrit-hook-1?x=1'}
  slack:
    type: slack
    url: https://hooks.slack.com/services/T0/B0/sekrit-slack-2
  mail:
    type: email
    host: smtp.example.org
    starttls: true
    user: av
    password: &pw hunter2-mail-3
    from: av@example.org
    to: ops@example.org
  teams: {type: teams, url: "https://example.webhook.office.com/sekrit-teams-4"}
  safe: {type: webhook, url: env:OPS_HOOK}
  safe-mail: {type: email, host: 127.0.0.1, user: u, password: secret:mail-pw, from: a@b.c, to: d@e.f}
rules:
  - name: down
    when: offline for 5m
    notify: [ops, slack, mail, teams]
"""


def shown_nothing_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert "hunter2" not in text and "sekrit" not in text


def rules_file(tmp_path: Path, text: str = RULES) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_the_editor_shows_placeholders_and_references_never_a_secret(tmp_path: Path) -> None:
    shown = read_for_editor(rules_file(tmp_path))
    assert shown.text is not None and shown.problem is None
    shown_nothing_secret(shown.text + repr(shown.hidden))
    assert [(h.number, h.key, h.line) for h in shown.hidden] == [
        (1, "channels.ops.url", 2), (2, "channels.slack.url", 5), (3, "channels.mail.password", 11),
        (4, "channels.teams.url", 14)]
    assert 'url: "<hidden secret #2>"' in shown.text
    assert 'password: &pw "<hidden secret #3>"' in shown.text  # the anchor stays: an alias still finds it
    assert "url: env:OPS_HOOK" in shown.text and "password: secret:mail-pw" in shown.text


@pytest.mark.parametrize("value", ["plain:hunter2-x", "12345", "'zz:hunter2-x'"])
def test_every_literal_password_is_hidden(value: str) -> None:
    text = f"channels:\n  m: {{type: email, host: 127.0.0.1, user: u, password: {value}, from: a@b.c, to: d@e.f}}\n"
    masked = mask(text)
    assert len(masked.hidden) == 1 and value.strip("'") not in masked.text


def test_saving_the_shown_text_keeps_the_file_byte_for_byte(tmp_path: Path) -> None:
    path = rules_file(tmp_path)
    shown = read_for_editor(path)
    assert shown.text is not None
    replace_rules_file(path, shown.text.replace("\n", "\r\n"), shown.digest)
    assert path.read_text() == RULES


def test_an_edit_elsewhere_keeps_every_secret(tmp_path: Path) -> None:
    path = rules_file(tmp_path)
    shown = read_for_editor(path)
    assert shown.text is not None
    edited = shown.text.replace("  slack:\n    type: slack\n    url: \"<hidden secret #2>\"\n",
                                "  slack: {type: slack, url: \"<hidden secret #2>\", timeout: 5s}\n")
    edited += "  - name: certs\n    when: cert_days_left < 30\n"
    done = replace_rules_file(path, edited, shown.digest)
    assert [r.name for r in done.rules.rules] == ["down", "certs"]
    slack, ops, mail = (done.rules.channels[n] for n in ("slack", "ops", "mail"))
    assert isinstance(slack, WebhookChannel) and slack.url == "https://hooks.slack.com/services/T0/B0/sekrit-slack-2"
    assert isinstance(ops, WebhookChannel) and ops.url == "https://hooks.example/T0/sekrit-hook-1?x=1"
    assert isinstance(mail, EmailChannel) and mail.password == "hunter2-mail-3"
    written = path.read_text()
    # a plain value moved into {...} is quoted (it would read differently there); the rest is as it was
    assert 'slack: {type: slack, url: "https://hooks.slack.com/services/T0/B0/sekrit-slack-2", timeout: 5s}' in written
    assert "password: &pw hunter2-mail-3\n" in written
    assert "\"<hidden" not in written


def test_a_placeholder_replaced_by_a_reference_drops_the_secret(tmp_path: Path) -> None:
    path = rules_file(tmp_path)
    shown = read_for_editor(path)
    assert shown.text is not None
    replace_rules_file(path, shown.text.replace('"<hidden secret #1>"', "secret:ops-hook"), shown.digest)
    written = path.read_text()
    assert "sekrit-hook-1" not in written and "url: secret:ops-hook" in written
    assert "sekrit-slack-2" in written  # the others are kept


@pytest.mark.parametrize(("edit", "line", "words"), [
    (lambda t: t.replace('#1>"', '#1 >"'), 2, "placeholder was changed"),
    (lambda t: t.replace('"<hidden secret #1>"', '"<hidden secret #1>x"'), 2, "placeholder was changed"),
    (lambda t: t.replace("when: offline for 5m", 'when: offline for 5m\n    description: "<hidden secret #2>"'),
     20, "used twice"),
    (lambda t: t.replace('"<hidden secret #2>"', "env:X").replace(
        "when: offline for 5m", 'when: offline for 5m\n    description: "<hidden secret #2>"'), 20, "was moved"),
    (lambda t: t.replace('url: "<hidden secret #1>"', "url: X1").replace('url: "<hidden secret #2>"', 'url: "<hidden '
     'secret #1>"').replace("url: X1", 'url: "<hidden secret #2>"'), 2, "was moved"),
    (lambda t: t.replace("host: smtp.example.org", "host: mail.attacker.example"), 11, "host changed"),
    (lambda t: t.replace("user: av", "user: someone"), 11, "user changed"),
    (lambda t: t.replace('"<hidden secret #4>"', '"<hidden secret #9>"'), 14, "no hidden secret #9"),
    (lambda t: t.replace("notify: [ops", "description: *pw\n    notify: [ops"), 11, "was moved"),
], ids=["changed", "extended", "copied", "moved", "swapped", "host", "user", "unknown", "aliased"])
def test_a_save_that_moves_or_reroutes_a_secret_writes_nothing(tmp_path: Path, edit: object, line: int,
                                                              words: str) -> None:
    path = rules_file(tmp_path)
    shown = read_for_editor(path)
    assert shown.text is not None and callable(edit)
    with pytest.raises(RulesError) as caught:
        replace_rules_file(path, edit(shown.text), shown.digest)
    assert caught.value.line == line and words in caught.value.message, caught.value.message
    shown_nothing_secret(caught.value.message + (caught.value.hint or ""))
    assert path.read_text() == RULES


def test_a_kept_secret_the_loader_refuses_is_told_without_its_value(tmp_path: Path) -> None:
    path = rules_file(tmp_path, "channels:\n  m:\n    type: email\n    host: 127.0.0.1\n    user: u\n"
                                "    password: 'zz:hunter2-x'\n    from: a@b.c\n    to: d@e.f\n")
    shown = read_for_editor(path)
    assert shown.text is not None
    with pytest.raises(RulesError) as caught:
        replace_rules_file(path, shown.text, shown.digest)
    assert caught.value.line == 6 and "hidden secret #1 at channels.m.password" in caught.value.message
    assert "zz" not in caught.value.message + (caught.value.hint or "")


def test_a_file_that_is_not_yaml_is_not_shown_nor_replaced(tmp_path: Path) -> None:
    broken = "channels:\n  m: {type: email, password: !!int hunter2}\n  x: [\n"
    path = rules_file(tmp_path, broken)
    shown = read_for_editor(path)
    assert shown.text is None and shown.problem is not None and shown.problem.line == 2
    assert "hunter2" not in shown.problem.message
    with pytest.raises(RulesError, match="not replaced from here") as caught:
        replace_rules_file(path, "rules: []\n", shown.digest)
    assert "hunter2" not in caught.value.message and path.read_text() == broken


def test_loading_logs_each_literal_secret_by_key_and_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = rules_file(tmp_path)
    with caplog.at_level(logging.WARNING, logger="avctl.server.alerts.rules"):
        load_rules(path, known_readings=())
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 4
    for where, key in (("2", "ops.url"), ("5", "slack.url"), ("11", "mail.password"), ("14", "teams.url")):
        assert any(m.startswith(f"{path}:{where}: ") and f"channels.{key}" in m for m in logged), (where, logged)
    shown_nothing_secret(" ".join(logged))
    assert parse_rules(RULES).warnings  # parsing alone (the editor's check) logs nothing
    assert len(caplog.records) == 4
