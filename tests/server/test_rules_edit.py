"""Replacing the rules file from the dashboard's editor: checked first, written whole, never over
someone else's change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from avctl.server.alerts import RulesError
from avctl.server.alerts.edit import RulesChanged, digest, read_rules_text, replace_rules_file

GOOD = "rules:\n  - name: down\n    when: offline for 5m\n"


def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    path.chmod(0o640)
    return path


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of a replacement (none may stay)."""
    return list(folder.glob(".rules.yaml.*"))


def test_good_text_replaces_the_file_whole_with_its_mode(tmp_path: Path) -> None:
    path = rules_file(tmp_path)
    text, old = read_rules_text(path)
    assert text == GOOD and old == digest(GOOD.encode())
    new = GOOD + "  - name: certs\n    when: cert_days_left < 30\n"
    done = replace_rules_file(path, new.replace("\n", "\r\n"), old)  # as a browser's textarea sends it
    assert path.read_text() == new
    assert (done.old_digest, done.new_digest) == (old, digest(new.encode()))
    assert [r.name for r in done.rules.rules] == ["down", "certs"]
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert not leftovers(tmp_path)


def test_a_mistake_names_its_line_and_writes_nothing(tmp_path: Path) -> None:
    path = rules_file(tmp_path)
    _, old = read_rules_text(path)
    with pytest.raises(RulesError) as caught:
        replace_rules_file(path, "rules:\n  - name: down\n    when: offline for ever\n", old)
    assert caught.value.line == 3 and caught.value.message.startswith("rules.yaml:3: ")
    assert path.read_text() == GOOD
    assert not leftovers(tmp_path)


def test_a_file_changed_since_it_was_read_is_not_overwritten(tmp_path: Path) -> None:
    path = rules_file(tmp_path)
    _, old = read_rules_text(path)
    path.write_text(GOOD + "# edited on disk meanwhile\n")
    with pytest.raises(RulesChanged):
        replace_rules_file(path, GOOD, old)
    assert path.read_text().endswith("# edited on disk meanwhile\n")


def test_too_large_is_refused_before_parsing(tmp_path: Path) -> None:
    path = rules_file(tmp_path)
    _, old = read_rules_text(path)
    with pytest.raises(RulesError, match="larger than"):
        replace_rules_file(path, "#" * (1024 * 1024 + 1), old)
    assert path.read_text() == GOOD
