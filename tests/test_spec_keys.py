"""The spec loader's key tables: every Action and Param field comes from one row; bad values give
one line with file:line (never a traceback); the catalog sample lints exactly as before."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from avctl.cli.main import cli
from avctl.spec.loader import ACTION_KEYS, PARAM_KEYS, read_spec
from avctl.spec.model import Action, Param

from .conftest import DATA, SHARED

CATALOG = SHARED / "ai4av-sample" / "specs"

HEAD = """---
spec_id: t
schema_version: 1
title: T
license: MIT
family: t
---

## Transport

```yaml
protocols: [https]
```

## Actions

```yaml
"""


def _spec(tmp_path: Path, actions_yaml: str) -> Path:
    path = tmp_path / "t.md"
    path.write_text(HEAD + actions_yaml + "```\n", encoding="utf-8")
    return path


def _errors(path: Path) -> list[str]:
    return [str(i) for i in read_spec(path).errors]


def test_every_action_and_param_field_is_one_row() -> None:
    """A field without a row would be silently left at its default; a row without a field fails at
    load time. Identity fields (id/line, name/wire) are read before the rows."""
    for rows, model, identity in ((ACTION_KEYS, Action, {"id", "line"}), (PARAM_KEYS, Param, {"name", "wire"})):
        filled = [row.field or row.key for row in rows]
        assert len(filled) == len(set(filled)), filled
        assert set(filled) == {f.name for f in dataclasses.fields(model)} - identity


def test_a_row_reads_its_key_into_its_field(tmp_path: Path) -> None:
    """One action with every key written: each lands in its field."""
    spec = _spec(tmp_path, """\
- id: a1
  label: Set the thing
  kind: action
  method: put
  path: /api/{slot}/thing
  body: json
  response: text
  success: [200, 204]
  safety: disruptive
  safety_note: reboots
  description: sets it
  also_accepts: [{method: post, path: /api/thing}]
  auth: basic
  scheme: http
  port: 8080
  params:
    - {name: slot, in: path, type: integer, min: 1, max: 4}
    - {name: level, type: [integer, float], range: "0-100", required: true, default: 5, description: how loud}
    - {name: mode, type: enum, values: [a, b], const: a}
    - {name: key, wire: api-key, in: header, secret: true, pattern: "^k", content_type: text/plain}
""")
    result = read_spec(spec)
    assert result.errors == []
    assert result.spec is not None
    a = result.spec.actions["a1"]
    assert (a.label, a.kind, a.method, a.path, a.body, a.response) == (
        "Set the thing", "action", "PUT", "/api/{slot}/thing", "json", "text")
    assert (a.success, a.safety, a.safety_note, a.description) == (frozenset({200, 204}), "disruptive",
                                                                   "reboots", "sets it")
    assert [(r.method, r.path) for r in a.also_accepts] == [("POST", "/api/thing")]
    assert (a.auth, a.scheme, a.port, a.line) == ("basic", "http", 8080, 18)  # the "- id:" line
    slot, level, mode, key = a.params
    assert (slot.location, slot.types, slot.required, slot.minimum, slot.maximum) == ("path", ("integer",),
                                                                                      True, 1, 4)
    assert (level.types, level.minimum, level.maximum, level.required) == (("integer", "number"), 0.0, 100.0, True)
    assert (level.default, level.has_default, level.description) == (5, True, "how loud")
    assert (mode.values, mode.const, mode.has_const, mode.has_default) == (("a", "b"), "a", True, False)
    assert (key.wire_name, key.location, key.secret, key.pattern, key.content_type) == (
        "api-key", "header", True, "^k", "text/plain")


@pytest.mark.parametrize(("yaml_text", "message"), [
    # these three ended in a TypeError traceback before the key table
    ("- {id: a, label: A, method: GET, path: /a, success: null}\n", "action a: 'success' must list HTTP statuses"),
    ("- {id: a, label: A, method: GET, path: /a, also_accepts: 5}\n",
     "action a: also_accepts must be a list of {method, path}"),
    ("- id: a\n  label: A\n  method: GET\n  path: /a\n  params: [{name: m, type: enum, values: 5}]\n",
     "action a: parameter m: values must be a list, not 5"),
    # and these were read character by character ('1-2' -> statuses 1 and 2; 'ab' -> values a, b)
    ("- {id: a, label: A, method: GET, path: /a, success: '1-2'}\n", "action a: 'success' must list HTTP statuses"),
    ("- id: a\n  label: A\n  method: GET\n  path: /a\n  params: [{name: m, type: enum, values: ab}]\n",
     "action a: parameter m: values must be a list, not 'ab'"),
    # unchanged messages, each from its own row
    ("- {id: a, label: A, method: GET, path: /a, kind: maybe}\n", "action a: kind must be 'query' or 'action'"),
    ("- {id: a, label: A, method: GET, path: /a, response: xml}\n", "action a: response must be one of"),
    ("- {id: a, label: A, method: GET, path: /a, safety: risky}\n", "action a: safety must be 'disruptive' or absent"),
    ("- {id: a, method: GET, path: /a}\n", "action a: no 'label'"),
    ("- {id: a, label: A, method: GET, path: /a, params: [{name: x, in: cookie}]}\n",
     "action a: parameter x: 'in' must be one of"),
])
def test_bad_value_is_one_error_with_file_and_line(tmp_path: Path, yaml_text: str, message: str) -> None:
    spec = _spec(tmp_path, yaml_text)
    errors = _errors(spec)
    assert any(e.startswith(f"{spec}:") and message in e for e in errors), errors
    result = CliRunner().invoke(cli, ["spec", "lint", str(spec)])
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit))
    assert "Traceback" not in result.output


def test_spec_lint_subprocess_has_no_traceback(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "- {id: a, label: A, method: GET, path: /a, success: null, also_accepts: 5}\n")
    proc = subprocess.run([sys.executable, "-m", "avctl.cli.main", "spec", "lint", str(spec)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"{spec}:18: error: action a: 'success' must list HTTP statuses" in proc.stdout


def test_builtin_and_test_specs_still_load_clean() -> None:
    builtin = Path(__file__).resolve().parents[1] / "src" / "avctl" / "specs"
    assert len(list(builtin.glob("*.md"))) >= 3
    for path in [*sorted(builtin.glob("*.md")), DATA / "videoos_min.md"]:
        assert read_spec(path).errors == [], path


@pytest.mark.skipif(not CATALOG.is_dir(), reason="../shared (catalog sample) not beside the repo")
def test_catalog_sample_lint_output_is_unchanged() -> None:
    """`avctl spec lint` over the 33 catalog samples, line for line, as before the key tables
    (tests/data/catalog-lint.txt; paths relative to the sample's specs/ folder)."""
    files = sorted(str(p) for p in CATALOG.rglob("*.md"))
    result = CliRunner().invoke(cli, ["spec", "lint", *files])
    assert result.exit_code == 1
    got = result.output.replace(f"{CATALOG}/", "specs/")
    assert got == (DATA / "catalog-lint.txt").read_text(encoding="utf-8")
