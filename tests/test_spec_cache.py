"""The on-disk spec cache and the LibYAML parser: same results as a fresh pure-Python parse, rebuilt
when the spec (or a file it reads) changes, and never trusted when damaged or planted."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import avctl
import avctl.spec.loader as loader
from avctl.cli.main import cli
from avctl.spec import read_spec
from avctl.spec.diskcache import cache_dir

from .conftest import DATA, SHARED

CATALOG = SHARED / "ai4av-sample" / "specs"
BUILTIN = [Path(avctl.__file__).parent / "specs" / f"{f}.md" for f in ("videoos", "polyuc", "solstice")]


def entries() -> list[Path]:
    d = cache_dir()
    return sorted(d.glob("*.json")) if d.is_dir() else []


def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> Any:
        raise AssertionError("parsed although the cache holds this spec")

    monkeypatch.setattr(loader, "_parse_spec", refuse)


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal, and made of the same types (a tuple stays a tuple, a frozenset a frozenset)."""
    if isinstance(a, dict):  # the loader's line-numbered dicts come back as plain dicts
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, where


def test_a_hit_returns_an_equal_spec_without_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    first = [read_spec(p) for p in BUILTIN]
    assert len(entries()) == 3
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in entries())
    assert cache_dir().stat().st_mode & 0o777 == 0o700
    no_parsing(monkeypatch)
    for path, fresh in zip(BUILTIN, first, strict=True):
        cached = read_spec(path)
        assert cached == fresh and cached is not fresh
        assert_same(fresh, cached)


def test_a_changed_spec_is_parsed_again(tmp_path: Path) -> None:
    spec = tmp_path / "room.md"
    text = (DATA / "videoos_min.md").read_text()
    spec.write_text(text)
    assert read_spec(spec).spec.action("audio_get").label == "Get audio state"  # type: ignore[union-attr]
    spec.write_text(text.replace("label: Get audio state", "label: Audio state, edited"))
    assert read_spec(spec).spec.action("audio_get").label == "Audio state, edited"  # type: ignore[union-attr]
    assert len(entries()) == 2


def test_a_changed_schema_ref_file_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("solstice.md", "solstice_config.schema.json"):
        shutil.copy(BUILTIN[2].parent / name, tmp_path / name)
    spec = tmp_path / "solstice.md"
    schema = tmp_path / "solstice_config.schema.json"

    def config_schema() -> Any:
        return read_spec(spec).spec.action("config_update").param("config").schema  # type: ignore[union-attr]

    assert config_schema() == json.loads(schema.read_text())
    schema.write_text(json.dumps({"type": "object", "title": "edited"}))
    assert config_schema() == {"type": "object", "title": "edited"}
    schema.unlink()  # gone: an error, as without a cache
    assert any("schema_ref" in i.message for i in read_spec(spec).errors)


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "not json", "empty", "other key"])
def test_a_damaged_entry_is_ignored_and_rewritten(damage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = read_spec(BUILTIN[1])
    [entry] = entries()
    raw = entry.read_bytes()
    broken = {"truncated": raw[: len(raw) // 2], "flipped byte": raw[:-10] + bytes([raw[-10] ^ 1]) + raw[-9:],
              "not json": b"\x80garbage", "empty": b"",
              "other key": raw.replace(entry.stem.encode(), b"0" * 64, 1)}[damage]
    entry.write_bytes(broken)
    assert read_spec(BUILTIN[1]) == fresh
    assert entry.read_bytes() == raw  # parsed again and stored again
    no_parsing(monkeypatch)
    assert read_spec(BUILTIN[1]) == fresh


def test_a_planted_entry_in_a_directory_others_can_write_is_not_read(tmp_path: Path) -> None:
    spec = tmp_path / "room.md"
    spec.write_text((DATA / "videoos_min.md").read_text())
    read_spec(spec)
    [entry] = entries()
    # a well-formed entry that says something else: as if another user had written it
    planted = read_spec(spec)
    assert planted.spec is not None
    cache_dir().chmod(0o777)
    text = entry.read_text().replace('"Get audio state"', '"planted label"')
    head, _, payload = text.partition("\n")
    header = json.loads(head) | {"sha256": hashlib.sha256(payload.encode()).hexdigest()}
    entry.write_text(json.dumps(header) + "\n" + payload)
    assert read_spec(spec).spec.action("audio_get").label == "Get audio state"  # type: ignore[union-attr]
    cache_dir().chmod(0o700)  # the same entry in the user's own private directory is read
    assert read_spec(spec).spec.action("audio_get").label == "planted label"  # type: ignore[union-attr]


def test_a_cache_that_cannot_be_written_is_bypassed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    result = read_spec(BUILTIN[0])
    assert result.spec is not None and not result.errors
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored: ~/.cache instead
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert read_spec(BUILTIN[1]).spec is not None
    assert len(list((tmp_path / "home" / ".cache" / "avctl" / "specs").glob("*.json"))) == 1


def lint(*paths: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["spec", "lint", *map(str, paths)])
    return result.exit_code, result.output


def test_lint_output_is_the_same_with_and_without_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [*BUILTIN, DATA / "videoos_min.md", *(sorted(CATALOG.rglob("*.md")) if CATALOG.is_dir() else [])]
    blocker = tmp_path / "no-cache"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    without = lint(*paths)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cold = lint(*paths)
    assert len(entries()) == len(paths)
    no_parsing(monkeypatch)
    warm = lint(*paths)
    assert without == cold == warm
    assert ":" in without[1] and "warning" in without[1]  # lines and warnings are in it


def test_libyaml_parses_with_the_same_lines_and_pyyaml_words_the_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert yaml.__with_libyaml__, "PyYAML without LibYAML: the fast path is not tested here"
    fast_loader, pure_loader = loader._loaders()
    assert fast_loader is not pure_loader
    paths = [*BUILTIN, DATA / "videoos_min.md", *(sorted(CATALOG.rglob("*.md")) if CATALOG.is_dir() else [])]

    def parse_all() -> list[Any]:
        return [loader._parse_spec(p, p.read_text(), None)[0] for p in paths]

    assert loader._load_yaml("a: 1\nb:\n  - c: 2\n").line == 1
    assert loader._load_yaml("a: 1\nb:\n  - c: 2\n")["b"][0].line == 3
    # LibYAML says "not allowed in this context"; the message stays PyYAML's, with or without LibYAML
    with pytest.raises(yaml.YAMLError, match="mapping values are not allowed here"):
        loader._load_yaml("a: b: c\n")
    fast = parse_all()
    monkeypatch.setattr(loader, "_loaders", lambda: (pure_loader, pure_loader))
    pure = parse_all()
    for a, b in zip(fast, pure, strict=True):
        assert [str(i) for i in a.issues] == [str(i) for i in b.issues]
        assert_same(a.spec, b.spec)


def test_a_spec_from_the_cache_needs_no_yaml_parser() -> None:
    code = ("import json, sys\nfrom avctl.families import builtin_spec\nbuiltin_spec('videoos')\n"
            "print(json.dumps(sorted(sys.modules)))")

    def modules() -> set[str]:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
        return set(json.loads(done.stdout))

    assert "yaml" in modules()  # parsed, and stored
    assert not {"yaml", "avctl.safeyaml"} & modules()  # read back
