"""Redaction of captured answers: identifying values become consistent placeholders.

What counts as identifying (a profile is meant to be shared in a bug report or a pull request):
serial numbers, MAC addresses, IP addresses, host and domain names, e-mail and SIP addresses, the
names of rooms, systems, users and call parties, and every secret: values under a sensitive key
(``password``, ``token``, ``session id``...) and whatever the family's spec marks secret.

Placeholders keep the value's form where a client may parse it (a MAC stays a MAC, from the range
RFC 7042 reserves for documentation; an IPv4 address one of RFC 5737's; a host name ends in
``.example.invalid``), and the same value gets the same placeholder everywhere in the profile, also
where it appears inside a longer string (a serial in a URL). Placeholders are recognised again, so
capturing an emulator that serves a profile gives back the same profile.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from avctl.profile.model import Redaction
from avctl.redact import SENSITIVE_KEY_RE
from avctl.spec.model import Spec

_MAC = re.compile(r"(?<![0-9A-Fa-f:-])([0-9A-Fa-f]{2})([:-])(?:[0-9A-Fa-f]{2}\2){4}[0-9A-Fa-f]{2}(?![0-9A-Fa-f:-])")
_MAC_BARE = re.compile(r"^[0-9A-Fa-f]{12}$")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])|"
                   r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:)+:(?:[0-9A-Fa-f]{1,4}:?)*(?![0-9A-Fa-f:])")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_HOST = re.compile(r"^(?=.{4,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_URL_HOST = re.compile(r"(?<=://)(?:[^/@\s]*@)?([A-Za-z0-9.-]+)")

#: keys whose values name the device's room, the system, people or call parties
_NAME_KEY = re.compile(
    r"(system|device|display|host|room|friendly|owner|site|building|user|login|remote|far|party|caller|"
    r"callee|contact|organi[sz]er|wifi)[_. -]?(name|number|uri|address)$|"
    r"^(label|subject|location|ssid|user|user_?id|owner|callerid|display)$|extension$|sip[_. -]?(address|uri)|"
    r"phone[_. -]?number|meeting[_. -]?(subject|title)|^(room|site|floor|building)$",
    re.IGNORECASE)
#: Poly UC's sipStatus names each line's SIP user "Name" (capitalised; a lower-case "name" elsewhere
#: names a parameter or an app, which must stay)
_LINE_USER_KEY = "Name"
_SERIAL_KEY = re.compile(r"serial|^sn$|hardware[_. -]?id|device[_. -]?id$|uuid$|^guid$|licen[cs]e[_. -]?key",
                         re.IGNORECASE)
_MAC_KEY = re.compile(r"mac([_. -]?address)?$|^mac|bssid", re.IGNORECASE)
_HOST_KEY = re.compile(r"host|server|domain|fqdn|proxy|registrar|gateway|dns|ntp|url|uri|address|"
                       r"provision|syslog|ldap|outbound|address", re.IGNORECASE)
#: keys whose values describe the network but identify no one (a netmask, a prefix length)
_HARMLESS_KEY = re.compile(r"mask|prefix|subnet[_. -]?length", re.IGNORECASE)
#: names that look identifying but are the device's make and model (kept: they are the point)
_MODEL_KEY = re.compile(r"model|vendor|manufacturer|product|firmware|version|type", re.IGNORECASE)

_PLACEHOLDER = re.compile(
    r"^(REDACTED-[a-z]+-\d+|[a-z]+-\d+(\.example\.invalid)?|[a-z]+-\d+@example\.invalid|X0*\d+)$")
_PLACEHOLDER_IN_TEXT = r"REDACTED-[a-z]+-\d+|[a-z]+-\d+(?:@|\.)example\.invalid"
#: values that say nothing about anyone (a setting's state, an unknown): never replaced
_COMMON = frozenset({"", "n/a", "na", "none", "null", "unknown", "true", "false", "yes", "no", "on", "off",
                     "enabled", "disabled", "enable", "disable", "auto", "default", "0", "1", "-"})
_DOC_MAC = re.compile(r"^00[:-]?00[:-]?5e[:-]?00[:-]?53[:-]?[0-9a-f]{2}$", re.IGNORECASE)
_DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
                                                "2001:db8::/32")]
#: values too short or too common to replace inside other text (they would mangle it)
_MIN_EMBEDDED = 6


@dataclass
class Scrubber:
    """Replaces identifying values with placeholders and remembers what it did (`report`)."""

    secret_keys: frozenset[str] = frozenset()
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    _where: dict[str, list[str]] = field(default_factory=dict)
    _kind_of: dict[str, str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def for_spec(cls, spec: Spec) -> Scrubber:
        """A scrubber that also treats the spec's secret parameters and variables as secret keys."""
        keys = {p.wire_name.lower() for a in spec.actions.values() for p in a.params if p.secret}
        keys |= {v.id.rsplit(".", 1)[-1].lower() for v in spec.variables if v.secret and not v.is_pattern}
        return cls(secret_keys=frozenset(keys))

    # -- walking --

    def scrub(self, value: Any, where: str, key: str = "") -> Any:
        """`value` with every identifying part replaced; `where` names it in the report."""
        if isinstance(value, dict):
            # a name/value pair ({"name": "admin.password", "value": ...}, Poly UC's {"Value": ...}
            # under the parameter's name) is judged by the name it carries
            named = str(value["name"]) if isinstance(value.get("name"), str) else key
            secure = value.get("isSecure") is True
            return {k: self._member(k, v, f"{where}/{_escape(str(k))}", named, secure) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub(v, f"{where}/{i}", key) for i, v in enumerate(value)]
        if isinstance(value, str):
            return self._text(value, where, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and self._is_secret_key(key):
            return self._placeholder("secret", str(value), where)
        return value

    def _member(self, key: str, value: Any, where: str, named: str, secure: bool) -> Any:
        if str(key).lower() == "value":
            if secure and value not in (None, ""):
                return self._placeholder("secret", str(value), where)
            return self.scrub(value, where, named)
        return self.scrub(value, where, str(key))

    def scrub_query(self, query: Iterable[tuple[str, str]], where: str) -> tuple[tuple[str, str], ...]:
        return tuple((k, self._text(v, f"{where}?{k}", k)) for k, v in query)

    def finish(self, value: Any, where: str | None = None) -> Any:
        """Second pass: each value already replaced is replaced again wherever it appears inside
        another string (a serial in a URL, a room name in a description). With `where`, each
        place is added to the report as the first pass does."""
        whole = {orig: ph for (_, orig), ph in self._by_value.items()}
        pairs = sorted(((orig, ph) for (_, orig), ph in self._by_value.items() if len(orig) >= _MIN_EMBEDDED),
                       key=lambda p: -len(p[0]))
        if not whole:
            return value
        # placeholders already in the text are matched first and kept, so an original that is part
        # of a placeholder ("example" in "host-1.example.invalid") is never replaced inside it
        pattern = re.compile("(" + _PLACEHOLDER_IN_TEXT + ")" + "".join("|" + re.escape(orig) for orig, _ in pairs))
        table = dict(pairs)

        def note(placeholder: str, at: str | None) -> str:
            if at is not None:
                places = self._where.setdefault(placeholder, [])
                if at not in places:
                    places.append(at)
            return placeholder

        def text(item: str, at: str | None) -> str:
            if len(item) >= 3 and item in whole:
                return note(whole[item], at)
            return pattern.sub(lambda m: m.group(0) if m.group(1) else note(table[m.group(0)], at), item)

        def walk(item: Any, at: str | None) -> Any:
            if isinstance(item, dict):
                return {text(k, None) if isinstance(k, str) else k: walk(v, _below(at, str(k)))
                        for k, v in item.items()}
            if isinstance(item, list):
                return [walk(v, _below(at, str(i))) for i, v in enumerate(item)]
            if isinstance(item, str):
                return text(item, at)
            return item

        return walk(value, where)

    def report(self) -> list[Redaction]:
        return [Redaction(self._kind_of[ph], ph, tuple(where)) for ph, where in self._where.items()]

    # -- one string --

    def _is_secret_key(self, key: str) -> bool:
        key = key.rsplit(".", 1)[-1]
        return bool(key) and (bool(SENSITIVE_KEY_RE.search(key)) or key.lower() in self.secret_keys)

    def _text(self, text: str, where: str, key: str) -> str:
        if text.strip().lower() in _COMMON or _PLACEHOLDER.match(text):
            return text
        key = key.rsplit(".", 1)[-1]  # a configuration parameter is judged by its last part
        if self._is_secret_key(key):
            return self._placeholder("secret", text, where)
        if key == _LINE_USER_KEY:
            return self._placeholder("name", text, where)
        if key and _MODEL_KEY.search(key) and not _SERIAL_KEY.search(key) and not _MAC_KEY.search(key):
            return text
        if key and _SERIAL_KEY.search(key) and any(c.isdigit() for c in text):
            return self._placeholder("serial", text, where)
        if key and _MAC_KEY.search(key) and (_MAC_BARE.match(text) or _MAC.fullmatch(text)):
            return self._placeholder("mac", text, where)
        if key and _NAME_KEY.search(key):
            if "@" in text:
                return self._identity(text, where)
            if _HOST.match(text):
                return self._placeholder("host", text, where)
            if not _looks_like_address(text):
                return self._placeholder("name", text, where)
        if key and _HARMLESS_KEY.search(key):
            return text
        if key and _HOST_KEY.search(key) and _HOST.match(text):
            return self._placeholder("host", text, where)
        return self._embedded(text, where)

    def _embedded(self, text: str, where: str) -> str:
        text = _MAC.sub(lambda m: self._placeholder("mac", m.group(0), where), text)
        text = _EMAIL.sub(lambda m: self._identity(m.group(0), where), text)
        text = _IPV4.sub(lambda m: self._address(m.group(0), where), text)
        text = _IPV6.sub(lambda m: self._address(m.group(0), where), text)
        return _URL_HOST.sub(lambda m: m.group(0).replace(m.group(1), self._url_host(m.group(1), where)), text)

    def _identity(self, text: str, where: str) -> str:
        scheme, _, rest = text.rpartition(":") if text.lower().startswith(("sip:", "sips:", "tel:")) else ("", "", text)
        if _PLACEHOLDER.match(rest):
            return text
        return (scheme + ":" if scheme else "") + self._placeholder("user", rest, where)

    def _address(self, text: str, where: str) -> str:
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            return text
        if addr.is_unspecified or any(addr in net for net in _DOC_NETS) or text.startswith("255."):
            return text
        return self._placeholder("address" if addr.version == 4 else "address6", text, where)

    def _url_host(self, host: str, where: str) -> str:
        if _HOST.match(host) and not _PLACEHOLDER.match(host):
            return self._placeholder("host", host, where)
        return host

    def _placeholder(self, kind: str, original: str, where: str) -> str:
        if kind == "mac" and _DOC_MAC.match(original):
            return original
        known = self._by_value.get((kind, original))
        if known is None:
            self._counts[kind] = number = self._counts.get(kind, 0) + 1
            known = _make(kind, original, number)
            self._by_value[(kind, original)] = known
            self._kind_of[known] = kind
        self._where.setdefault(known, [])
        if where not in self._where[known]:
            self._where[known].append(where)
        return known


def _make(kind: str, original: str, n: int) -> str:
    if kind == "mac":
        sep = "" if _MAC_BARE.match(original) else original[2]
        octets = ["00", "00", "5e", "00", "53", f"{n % 256:02x}"]
        text = sep.join(octets)
        return text.upper() if original.isupper() or original.upper() == original else text
    if kind == "address":
        nets = ("192.0.2", "198.51.100", "203.0.113")
        return f"{nets[(n - 1) // 254 % 3]}.{(n - 1) % 254 + 1}"
    if kind == "address6":
        return f"2001:db8::{n:x}"
    if kind == "serial":
        return "X" + str(n).rjust(max(len(original), 6) - 1, "0")
    if kind == "host":
        return f"host-{n}.example.invalid"
    if kind == "user":
        return f"user-{n}@example.invalid"
    if kind == "secret":
        return f"REDACTED-secret-{n}"
    return f"{kind}-{n}"


def _looks_like_address(text: str) -> bool:
    return bool(_IPV4.fullmatch(text) or _MAC.fullmatch(text))


def _below(at: str | None, key: str) -> str | None:
    return None if at is None else f"{at}/{_escape(key)}"


def _escape(key: str) -> str:
    """A JSON Pointer segment (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")
