"""How `avctl serve` is configured: command-line options over an optional YAML file over defaults.

The file (``avctl serve --config server.yaml``; every key optional)::

    inventory: fleet.yaml
    db: postgresql://avctl@db.example/avctl      # default: $AVCTL_HOME/avctl.db (SQLite)
    listen: 0.0.0.0:8443
    tls: {cert: /etc/avctl/cert.pem, key: /etc/avctl/key.pem}   # default: self-signed
    http: false                                  # plain HTTP (only on a loopback address)
    insecure_http: false                         # plain HTTP beyond loopback, only by name
    public_url: https://avctl.example.net        # behind a TLS reverse proxy: its origin is trusted
                                                 # for browser requests, and cookies are Secure
    rules: rules.yaml                            # alert rules and notification channels
    poll:
      interval: 60s                              # per device; a family's minimum still applies
      concurrency: 200                           # polls in flight, in all
      per_site: 20                               # polls in flight per site (0: no limit)
      timeout: 10s                               # per request
      backoff: 10m                               # an unreachable device: polled at most this far apart
    retention: {raw: 7d, events: 90d}
    config_drift: {every: 6h}                    # check configuration drift this often (default: never)
    schedules: true                              # run the schedules (avctl schedule; default: true)

Errors name the file and line and say how to fix them, before anything starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from avctl.durations import parse_duration as parse_duration
from avctl.errors import UsageError
from avctl.safeyaml import compose


@dataclass(frozen=True)
class PollConfig:
    interval: float = 60.0
    concurrency: int = 200
    per_site: int = 0
    timeout: float = 10.0
    #: an unreachable device's polls back off (interval x 2^failures) up to this many seconds
    backoff: float = 600.0


@dataclass(frozen=True)
class RetentionConfig:
    raw: float = 7 * 86400.0
    events: float = 90 * 86400.0


@dataclass(frozen=True)
class ServerConfig:
    inventory: str | None = None
    db: str | None = None
    listen: str = "127.0.0.1:8443"
    tls_cert: str | None = None
    tls_key: str | None = None
    http: bool = False
    insecure_http: bool = False
    #: the origin users reach the server at through a TLS reverse proxy (scheme://host[:port])
    public_url: str | None = None
    rules: str | None = None
    poll: PollConfig = field(default_factory=PollConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    #: seconds between configuration drift checks (None: the server runs none)
    drift_every: float | None = None
    #: run the schedules of the database (`avctl.server.schedules`)
    schedules: bool = True
    #: where fleet jobs run: "local" (this process) or "temporal" (site workers, docs/temporal.md)
    engine: str = "local"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    def merged(self, options: Mapping[str, Any]) -> ServerConfig:
        """This config with the command line's options on top (None: not given)."""
        top = {k: v for k, v in options.items() if v is not None and k in _TOP}
        poll = {k: v for k, v in options.items() if v is not None and k in _POLL}
        return replace(self, **top, poll=replace(self.poll, **poll))


_TOP = {f.name for f in fields(ServerConfig)} - {"poll", "retention"}
ENGINES = ("local", "temporal")
_POLL = {f.name for f in fields(PollConfig)}


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise UsageError(f"--listen {listen!r} is not HOST:PORT", hint="e.g. 127.0.0.1:8443 or 0.0.0.0:8443")
    return host.strip("[]"), int(port)


def check_public_url(url: str) -> str:
    """``https://host[:port]``, without a path: the origin browsers send."""
    m = re.match(r"^(https?)://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?/?$", url)
    if not m:
        raise UsageError(f"public_url {url!r} is not an origin", hint="e.g. https://avctl.example.net or "
                                                                     "https://avctl.example.net:8443")
    return url.rstrip("/")


def load_config(path: str | Path) -> ServerConfig:
    """The server's YAML file -> ServerConfig; paths in it are relative to the file's folder."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read server config {p}: {exc}") from None
    try:
        node = compose(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{p}: {exc}".replace("\n", " "), hint="fix the YAML syntax") from None
    if node is None:
        return ServerConfig()
    return _Reader(p).config(node)


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def err(self, node: yaml.Node, message: str, hint: str | None = None) -> UsageError:
        return UsageError(f"{self.path}:{node.start_mark.line + 1}: {message}", hint=hint)

    def mapping(self, node: yaml.Node, what: str, keys: set[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.err(node, f"{what} must be a mapping")
        out: dict[str, yaml.Node] = {}
        for k, v in node.value:
            key = str(k.value)
            if key not in keys:
                raise self.err(k, f"unknown key {key!r} in {what}", hint=f"known keys: {', '.join(sorted(keys))}")
            out[key] = v
        return out

    def scalar(self, node: yaml.Node, what: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.err(node, f"{what} must be a single value")
        return yaml.SafeLoader("").construct_object(node)

    def path_value(self, node: yaml.Node, what: str) -> str:
        value = self.scalar(node, what)
        if not isinstance(value, str) or not value:
            raise self.err(node, f"{what} must be a file name")
        return str((self.path.parent / value).resolve())

    def text(self, node: yaml.Node, what: str) -> str:
        value = self.scalar(node, what)
        if not isinstance(value, str) or not value:
            raise self.err(node, f"{what} must be text")
        return value

    def duration(self, node: yaml.Node, what: str) -> float:
        try:
            return parse_duration(self.scalar(node, what), what)
        except UsageError as exc:
            raise self.err(node, exc.message, exc.hint) from None

    def count(self, node: yaml.Node, what: str, low: int) -> int:
        value = self.scalar(node, what)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.err(node, f"{what} must be a whole number of at least {low}")
        return value

    def config(self, node: yaml.Node) -> ServerConfig:
        keys = {"inventory", "db", "listen", "tls", "http", "insecure_http", "public_url", "rules", "poll",
                "retention", "config_drift", "schedules", "engine", "temporal"}
        top = self.mapping(node, "the server config", keys)
        out: dict[str, Any] = {}
        for key in ("inventory", "rules"):
            if key in top:
                out[key] = self.path_value(top[key], key)
        if "db" in top:
            db = self.text(top["db"], "db")
            out["db"] = db if "://" in db else str((self.path.parent / db).resolve())
        if "listen" in top:
            listen = self.text(top["listen"], "listen")
            try:
                split_listen(listen)
            except UsageError as exc:
                raise self.err(top["listen"], exc.message, exc.hint) from None
            out["listen"] = listen
        if "public_url" in top:
            try:
                out["public_url"] = check_public_url(self.text(top["public_url"], "public_url"))
            except UsageError as exc:
                raise self.err(top["public_url"], exc.message, exc.hint) from None
        for key in ("http", "insecure_http", "schedules"):
            if key in top:
                flag = self.scalar(top[key], key)
                if not isinstance(flag, bool):
                    raise self.err(top[key], f"{key} must be true or false")
                out[key] = flag
        if "tls" in top:
            tls = self.mapping(top["tls"], "tls", {"cert", "key"})
            if set(tls) != {"cert", "key"}:
                raise self.err(top["tls"], "tls needs both cert and key")
            out["tls_cert"] = self.path_value(tls["cert"], "tls.cert")
            out["tls_key"] = self.path_value(tls["key"], "tls.key")
        if "poll" in top:
            poll = self.mapping(top["poll"], "poll", _POLL)
            values: dict[str, Any] = {k: self.duration(poll[k], f"poll.{k}")
                                      for k in ("interval", "timeout", "backoff") if k in poll}
            values.update({k: self.count(poll[k], f"poll.{k}", 1 if k == "concurrency" else 0)
                           for k in ("concurrency", "per_site") if k in poll})
            out["poll"] = PollConfig(**values)
        if "retention" in top:
            ret = self.mapping(top["retention"], "retention", {"raw", "events"})
            out["retention"] = RetentionConfig(**{k: self.duration(v, f"retention.{k}") for k, v in ret.items()})
        if "engine" in top:
            engine = self.text(top["engine"], "engine")
            if engine not in ENGINES:
                raise self.err(top["engine"], f"engine {engine!r} is not one of {', '.join(ENGINES)}")
            out["engine"] = engine
        if "temporal" in top:
            temporal = self.mapping(top["temporal"], "temporal", {"address", "namespace"})
            for key in ("address", "namespace"):
                if key in temporal:
                    out[f"temporal_{key}"] = self.text(temporal[key], f"temporal.{key}")
        if "config_drift" in top:
            drift = self.mapping(top["config_drift"], "config_drift", {"every"})
            if "every" in drift:
                out["drift_every"] = self.duration(drift["every"], "config_drift.every")
        return ServerConfig(**out)
