"""The rules file: notification channels and alert rules, in YAML (format: docs/server.md).

Read with the bounded loader (`avctl.safeyaml`) keeping node marks, so every error starts with
``file:line:`` and says how to fix it (the inventory loader's `_Ctx` does the bookkeeping).

Secrets stay references here: a channel keeps ``env:VAR`` / ``file:PATH`` / ``secret:NAME`` (or a
literal URL, which is masked in every repr) and the dispatcher resolves them when it sends.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml

from avctl.errors import UsageError
from avctl.fleet.credentials import CredentialRef
from avctl.fleet.inventory import SELECT_KEYS, DeviceEntry, InventoryError, Selection, _Ctx
from avctl.safeyaml import YAMLLimitError
from avctl.safeyaml import compose as compose_yaml
from avctl.server.alerts.conditions import Condition, ConditionError, parse_condition, parse_duration
from avctl.server.model import DRIFT_READING, DeviceView
from avctl.transport.address import Address

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
CHANNEL_TYPES = ("webhook", "slack", "teams", "email")
TOP_KEYS = ("channels", "defaults", "rules")
MAX_RULES = 1000
MAX_CHANNELS = 100
#: a rules file is a few KB; this bounds what one reload may cost
MAX_RULES_FILE_BYTES = 1024 * 1024
MAX_SEND_TIMEOUT = 120.0
log = logging.getLogger(__name__)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ADDRESS_RE = re.compile(r"^[^\s<>@,;:\"]+@[^\s<>@,;:\"]+$")
_WEBHOOK_KEYS = ("type", "url", "allow_http", "timeout", "ca_file")
_EMAIL_KEYS = ("type", "host", "port", "starttls", "ssl", "allow_plaintext", "user", "password", "from", "to",
               "timeout", "ca_file")
_RULE_KEYS = ("name", "when", "severity", "scope", "notify", "description")
_SCOPE_KEYS = tuple(k for k in SELECT_KEYS if k != "group")
#: how a literal secret's warning ends
_SECRET_HINT = ": store it with 'avctl secrets set NAME' and write secret:NAME in its place"


class RulesError(InventoryError):
    """The rules file is malformed; the message starts with ``file:line:`` (like an inventory's)."""

    kind = "rules"


class _RulesCtx(_Ctx):
    def __init__(self, file: str, base_dir: Path) -> None:
        super().__init__(file)
        self.base_dir = base_dir

    def err(self, node: yaml.Node | None, message: str, hint: str | None = None) -> RulesError:
        line = node.start_mark.line + 1 if node is not None else None
        return RulesError(message, file=self.file, line=line, hint=hint)


# --- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookChannel:
    """A generic JSON, Slack- or Teams-compatible webhook. The URL is a secret (Slack's are)."""

    name: str
    type: Literal["webhook", "slack", "teams"]
    #: a literal URL or a reference (env:, file:, secret:); never shown
    url: str = field(repr=False)
    allow_http: bool = False
    timeout: float = 10.0
    #: a PEM file of CA certificates to trust instead of the system's (a private CA)
    ca_file: str | None = None


@dataclass(frozen=True)
class EmailChannel:
    name: str
    host: str
    port: int
    #: starttls | ssl | plain (plain only to a loopback host, or with allow_plaintext)
    security: Literal["starttls", "ssl", "plain"]
    sender: str
    to: tuple[str, ...]
    user: str | None = None
    #: a reference (env:, file:, secret:) or a literal; never shown
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    ca_file: str | None = None
    type: Literal["email"] = "email"


Channel = WebhookChannel | EmailChannel


@dataclass(frozen=True)
class Rule:
    name: str
    condition: Condition
    severity: Severity = "warning"
    scope: Selection = field(default_factory=Selection)
    notify: tuple[str, ...] = ()
    description: str = ""
    #: "file:line" of the rule, for messages
    source: str = ""

    def applies_to(self, view: DeviceView) -> bool:
        """Whether the device is in the rule's scope (the CLI's selection semantics)."""
        return not self.scope or self.scope.matches(as_entry(view))


def as_entry(view: DeviceView) -> DeviceEntry:
    # the selection matches inventory entries; a view carries the same facts (but no groups)
    return DeviceEntry(name=view.name, family=view.family, address=Address(view.address), site=view.site,
                       room=view.room, tags=view.tags)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    channels: Mapping[str, Channel] = field(default_factory=dict)
    path: Path | None = None
    #: non-fatal findings, each "file:line: message"
    warnings: tuple[str, ...] = ()

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)


# --- loading ------------------------------------------------------------------------------------


def load_rules(path: str | os.PathLike[str], *, known_readings: Collection[str] | None = None) -> RuleSet:
    """Load and check a rules file. ``known_readings``: reading ids any family reports (default:
    the Feedbacks of every installed family's spec); a rule on another reading gets a warning."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_RULES_FILE_BYTES + 1)
    except OSError as e:
        raise RulesError(f"cannot read the rules file: {e.strerror}", file=str(p)) from None
    if len(raw) > MAX_RULES_FILE_BYTES:
        raise RulesError(f"the rules file is larger than {MAX_RULES_FILE_BYTES // 1024} KiB", file=str(p))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RulesError("not UTF-8 text", file=str(p), line=raw.count(b"\n", 0, e.start) + 1,
                         hint="save the rules file as UTF-8") from None
    rules = parse_rules(text, file=str(p), path=p, known_readings=known_readings)
    for warning in rules.warnings:
        if warning.endswith(_SECRET_HINT):  # a literal secret: said once per load, where it is (never what)
            log.warning("%s", warning)
    return rules


def parse_rules(text: str, *, file: str = "<rules>", path: Path | None = None,
                known_readings: Collection[str] | None = None) -> RuleSet:
    ctx = _RulesCtx(file, path.parent if path is not None else Path.cwd())
    top = _top_level(ctx, text)
    warnings: list[str] = []
    channels = _channels(ctx, top["channels"][1], warnings) if "channels" in top else {}
    default_severity: Severity = "warning"
    default_notify: tuple[str, ...] = ()
    if "defaults" in top:
        for key, knode, v in ctx.mapping(top["defaults"][1], "defaults"):
            if key == "severity":
                default_severity = _severity(ctx, v, "defaults.severity")
            elif key == "notify":
                default_notify = _notify(ctx, v, "defaults.notify", channels)
            else:
                raise ctx.err(knode, f"defaults: unknown key {key!r}", hint="expected: severity, notify")
    rules: list[Rule] = []
    rnode = top["rules"][1] if "rules" in top else None
    if rnode is not None and not (isinstance(rnode, yaml.ScalarNode) and rnode.tag.endswith(":null")):
        if not isinstance(rnode, yaml.SequenceNode):
            raise ctx.err(rnode, "rules must be a list of rules ('- name: ...' items)")
        if len(rnode.value) > MAX_RULES:
            raise ctx.err(rnode, f"more than {MAX_RULES} rules")
        seen: dict[str, str] = {}
        for i, node in enumerate(rnode.value):
            rule = _rule(ctx, node, i, channels, default_severity, default_notify)
            if rule.name in seen:
                raise ctx.err(node, f"rules[{i}]: duplicate rule name {rule.name!r} (first at {seen[rule.name]})")
            seen[rule.name] = rule.source
            rules.append(rule)
    known = set(known_readings) if known_readings is not None else family_readings()
    warnings += [f"{r.source}: rule {r.name}: no built-in family reports the reading {r.condition.reading!r} "
                 "(a typo? it never fires on devices that do not report it)"
                 for r in rules if r.condition.reading is not None and r.condition.reading not in known]
    return RuleSet(tuple(rules), channels, path=path, warnings=tuple(warnings))


def family_readings() -> set[str]:
    """The reading ids (spec Feedbacks) of every installed family with a spec, and the server's own."""
    from avctl.families.registry import plugins  # loading specs costs: only when a rules file is read

    out: set[str] = {DRIFT_READING}
    for plugin in plugins():
        if plugin.spec is not None:
            out.update(f.id for f in plugin.load_spec().feedbacks)
    return out


def _top_level(ctx: _RulesCtx, text: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    try:
        root = compose_yaml(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem if isinstance(e, YAMLLimitError) else f"not valid YAML: {e.problem or e.context}"
        raise RulesError(str(problem), file=ctx.file, line=mark.line + 1 if mark else None) from None
    if root is None:
        return {}
    top: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, knode, v in ctx.mapping(root, "rules file"):
        if key not in TOP_KEYS:
            raise ctx.err(knode, f"unknown top-level key {key!r}", hint=f"expected one of: {', '.join(TOP_KEYS)}")
        top[key] = (knode, v)
    return top


def _name(ctx: _RulesCtx, node: yaml.Node, what: str) -> str:
    name = ctx.string(node, what)
    if not _NAME_RE.match(name):
        raise ctx.err(node, f"{what} {name[:60]!r} is not a valid name",
                      hint="letters, digits, '.', '_' and '-', starting with a letter or digit")
    return name


def _flag(ctx: _RulesCtx, node: yaml.Node, what: str) -> bool:
    value = ctx.value(node)
    if not isinstance(value, bool):
        raise ctx.err(node, f"{what} must be true or false")
    return value


def _seconds(ctx: _RulesCtx, node: yaml.Node, what: str) -> float:
    value = ctx.value(node)
    try:
        seconds = parse_duration(value, what) if isinstance(value, str) else float(value)
        if isinstance(value, bool):
            raise ValueError
        if not 0 < seconds <= MAX_SEND_TIMEOUT:
            raise ValueError
    except (ConditionError, ValueError, TypeError):
        raise ctx.err(node, f"{what} must be a duration from 1s to {MAX_SEND_TIMEOUT:g}s",
                      hint="e.g. 10s") from None
    return seconds


def _secret_ref(ctx: _RulesCtx, node: yaml.Node, what: str, *, url: bool) -> str:
    """A reference as written (env:, file:, secret:, keyring:) or, for URLs, a literal http(s) URL."""
    text = ctx.string(node, what)
    if url and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        return text
    try:
        ref = CredentialRef.parse(text)
    except UsageError as e:
        raise ctx.err(node, f"{what}: {e.message}", hint=e.hint) from None
    if url and ref.is_plaintext:
        raise ctx.err(node, f"{what} must be an https:// URL or a reference to one",
                      hint="env:VAR, file:PATH or secret:NAME (the URL is a secret: prefer a reference)")
    return text


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, channel: str, *, allow_http: bool) -> None:
    """A webhook URL is https (or http to a loopback host, or with allow_http); errors name the
    channel, never the URL (it is a secret)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        raise UsageError(f"channel {channel}: the webhook URL is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise UsageError(f"channel {channel}: the webhook URL must be an https:// URL")
    if parts.scheme == "http" and not (allow_http or is_loopback(host)):
        raise UsageError(f"channel {channel}: the webhook URL is plain http:// (the alert and the URL's token "
                         "would cross the network in clear)",
                         hint="use https://, or set allow_http: true on the channel if you must")


def _channels(ctx: _RulesCtx, node: yaml.Node, warnings: list[str]) -> dict[str, Channel]:
    entries = ctx.mapping(node, "channels")
    if len(entries) > MAX_CHANNELS:
        raise ctx.err(node, f"more than {MAX_CHANNELS} channels")
    out: dict[str, Channel] = {}
    for name, knode, v in entries:
        what = f"channels.{_name(ctx, knode, 'channel name')}"
        keys = {k: (kn, vn) for k, kn, vn in ctx.mapping(v, what)}
        if "type" not in keys:
            raise ctx.err(knode, f"{what}: no 'type'", hint=f"one of: {', '.join(CHANNEL_TYPES)}")
        kind = ctx.string(keys["type"][1], f"{what}.type")
        if kind not in CHANNEL_TYPES:
            raise ctx.err(keys["type"][1], f"{what}.type: unknown channel type {kind!r}",
                          hint=f"one of: {', '.join(CHANNEL_TYPES)}")
        allowed = _EMAIL_KEYS if kind == "email" else _WEBHOOK_KEYS
        for key, (kn, _) in keys.items():
            if key not in allowed:
                raise ctx.err(kn, f"{what}: unknown key {key!r} for a {kind} channel",
                              hint=f"expected: {', '.join(allowed)}")
        out[name] = _email(ctx, name, knode, keys) if kind == "email" else _webhook(ctx, name, kind, knode, keys)
        if kind == "email" and "password" in keys and CredentialRef.parse(
                ctx.string(keys["password"][1], what)).is_plaintext:
            warnings.append(f"{ctx.where(keys['password'][1])}: channel {name}: plaintext password in the rules "
                            f"file (channels.{name}.password){_SECRET_HINT}")
        elif kind != "email" and "://" in ctx.string(keys["url"][1], what):
            warnings.append(f"{ctx.where(keys['url'][1])}: channel {name}: the webhook URL (a secret: it carries the "
                            f"token) is written in the rules file (channels.{name}.url){_SECRET_HINT}")
    return out


def _webhook(ctx: _RulesCtx, name: str, kind: str, knode: yaml.Node,
             keys: dict[str, tuple[yaml.Node, yaml.Node]]) -> WebhookChannel:
    what = f"channels.{name}"
    if "url" not in keys:
        raise ctx.err(knode, f"{what}: no 'url'", hint="url: env:VAR, secret:NAME or https://...")
    unode = keys["url"][1]
    url = _secret_ref(ctx, unode, f"{what}.url", url=True)
    allow_http = _flag(ctx, keys["allow_http"][1], f"{what}.allow_http") if "allow_http" in keys else False
    if "://" in url:
        try:
            check_url(url, name, allow_http=allow_http)
        except UsageError as e:
            raise ctx.err(unode, e.message, hint=e.hint) from None
    timeout = _seconds(ctx, keys["timeout"][1], f"{what}.timeout") if "timeout" in keys else 10.0
    ca_file = _ca_file(ctx, keys["ca_file"][1], f"{what}.ca_file") if "ca_file" in keys else None
    typ: Literal["webhook", "slack", "teams"] = "slack" if kind == "slack" else "teams" if kind == "teams" \
        else "webhook"
    return WebhookChannel(name, typ, url, allow_http=allow_http, timeout=timeout, ca_file=ca_file)


def _ca_file(ctx: _RulesCtx, node: yaml.Node, what: str) -> str:
    path = Path(ctx.string(node, what)).expanduser()
    path = path if path.is_absolute() else ctx.base_dir / path
    if not path.is_file():
        raise ctx.err(node, f"{what}: no file {str(path)[:200]!r}", hint="a PEM file of CA certificates")
    return str(path)


def _email(ctx: _RulesCtx, name: str, knode: yaml.Node, keys: dict[str, tuple[yaml.Node, yaml.Node]]) -> EmailChannel:
    what = f"channels.{name}"
    for required in ("host", "from", "to"):
        if required not in keys:
            raise ctx.err(knode, f"{what}: no {required!r}", hint="an email channel needs host, from and to")
    hnode = keys["host"][1]
    host = ctx.string(hnode, f"{what}.host")
    if not host or any(c.isspace() or ord(c) < 32 for c in host):
        raise ctx.err(hnode, f"{what}.host is not a host name")
    starttls = _flag(ctx, keys["starttls"][1], f"{what}.starttls") if "starttls" in keys else False
    ssl = _flag(ctx, keys["ssl"][1], f"{what}.ssl") if "ssl" in keys else False
    if starttls and ssl:
        raise ctx.err(keys["ssl"][0], f"{what}: starttls and ssl are exclusive",
                      hint="ssl: true for port 465, starttls: true for port 587")
    plain_ok = _flag(ctx, keys["allow_plaintext"][1], f"{what}.allow_plaintext") if "allow_plaintext" in keys \
        else False
    security: Literal["starttls", "ssl", "plain"] = "ssl" if ssl else "starttls" if starttls else "plain"
    if security == "plain" and not (plain_ok or is_loopback(host)):
        raise ctx.err(hnode, f"{what}: mail to {host} would go unencrypted",
                      hint="set starttls: true (port 587) or ssl: true (port 465); allow_plaintext: true if you must")
    port = 465 if ssl else 587 if starttls else 25
    if "port" in keys:
        pv = ctx.value(keys["port"][1])
        if isinstance(pv, bool) or not isinstance(pv, int) or not 0 < pv < 65536:
            raise ctx.err(keys["port"][1], f"{what}.port must be a port number (1-65535)")
        port = pv
    sender = _mail_address(ctx, keys["from"][1], f"{what}.from")
    to = tuple(_mail_address(ctx, n, f"{what}.to") for n in _nodes(keys["to"][1]))
    if not to or len(to) > 50:
        raise ctx.err(keys["to"][1], f"{what}.to must list 1 to 50 addresses")
    user = ctx.string(keys["user"][1], f"{what}.user") if "user" in keys else None
    password = _secret_ref(ctx, keys["password"][1], f"{what}.password", url=False) if "password" in keys else None
    if password is not None and user is None:
        raise ctx.err(keys["password"][0], f"{what}: a password without a user", hint="add user: NAME")
    timeout = _seconds(ctx, keys["timeout"][1], f"{what}.timeout") if "timeout" in keys else 30.0
    ca_file = _ca_file(ctx, keys["ca_file"][1], f"{what}.ca_file") if "ca_file" in keys else None
    return EmailChannel(name, host, port, security, sender, to, user=user, password=password, timeout=timeout,
                        ca_file=ca_file)


def _nodes(node: yaml.Node) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else [node]


def _mail_address(ctx: _RulesCtx, node: yaml.Node, what: str) -> str:
    text = ctx.string(node, what)
    if len(text) > 254 or not _ADDRESS_RE.match(text):
        raise ctx.err(node, f"{what}: {text[:60]!r} is not an e-mail address", hint="write user@example.org")
    return text


def _severity(ctx: _RulesCtx, node: yaml.Node, what: str) -> Severity:
    text = ctx.string(node, what)
    for s in SEVERITIES:
        if text == s:
            return s
    raise ctx.err(node, f"{what}: unknown severity {text[:40]!r}", hint=f"one of: {', '.join(SEVERITIES)}")


def _notify(ctx: _RulesCtx, node: yaml.Node, what: str, channels: Mapping[str, Channel]) -> tuple[str, ...]:
    names = ctx.str_list(node, what)
    for n, name in zip(_nodes(node), names, strict=True):
        if name not in channels:
            raise ctx.err(n, f"{what}: unknown channel {name[:60]!r}",
                          hint=f"channels: {', '.join(channels) or 'none defined (add a channels: section)'}")
    return tuple(dict.fromkeys(names))


def _scope(ctx: _RulesCtx, node: yaml.Node, what: str) -> Selection:
    if isinstance(node, yaml.ScalarNode):
        exprs = [ctx.string(node, what)]
    else:
        exprs = []
        for key, knode, v in ctx.mapping(node, what):
            if key not in _SCOPE_KEYS:
                raise ctx.err(knode, f"{what}: cannot select on {key!r}",
                              hint=f"use one of: {', '.join(_SCOPE_KEYS)} (groups: tag the devices)")
            exprs.extend(f"{key}={v}" for v in ctx.str_list(v, f"{what}.{key}"))
    try:
        selection = Selection.parse(exprs)
    except UsageError as e:
        raise ctx.err(node, f"{what}: {e.message}", hint=e.hint) from None
    if any(t.key == "group" for t in selection.terms):
        raise ctx.err(node, f"{what}: rules cannot select on group", hint="tag the devices and select on tag")
    return selection


def _rule(ctx: _RulesCtx, node: yaml.Node, i: int, channels: Mapping[str, Channel], severity: Severity,
          notify: tuple[str, ...]) -> Rule:
    what = f"rules[{i}]"
    keys = {k: (kn, vn) for k, kn, vn in ctx.mapping(node, what)}
    for key, (kn, _) in keys.items():
        if key not in _RULE_KEYS:
            raise ctx.err(kn, f"{what}: unknown key {key!r}", hint=f"expected: {', '.join(_RULE_KEYS)}")
    for required in ("name", "when"):
        if required not in keys:
            raise ctx.err(node, f"{what}: no {required!r}", hint="a rule needs at least a name and a when")
    name = _name(ctx, keys["name"][1], f"{what}.name")
    what = f"rule {name}"
    wnode = keys["when"][1]
    when = ctx.value(wnode)
    if isinstance(when, bool) or not isinstance(when, str):
        raise ctx.err(wnode, f"{what}: when must be a condition text",
                      hint="quote it if it starts with a quote or holds ': '")
    try:
        condition = parse_condition(when)
    except ConditionError as e:
        raise ctx.err(wnode, f"{what}: {e.message}", hint=e.hint) from None
    return Rule(
        name=name, condition=condition,
        severity=_severity(ctx, keys["severity"][1], f"{what}.severity") if "severity" in keys else severity,
        scope=_scope(ctx, keys["scope"][1], f"{what}.scope") if "scope" in keys else Selection(),
        notify=_notify(ctx, keys["notify"][1], f"{what}.notify", channels) if "notify" in keys else notify,
        description=ctx.string(keys["description"][1], f"{what}.description")[:500] if "description" in keys else "",
        source=ctx.where(node),
    )


__all__ = [
    "SEVERITIES",
    "Channel",
    "EmailChannel",
    "Rule",
    "RuleSet",
    "RulesError",
    "Severity",
    "WebhookChannel",
    "check_url",
    "is_loopback",
    "load_rules",
    "parse_rules",
]
