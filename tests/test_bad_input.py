"""Bad local input through the real CLI: one `avctl: error:` line naming the place, never a traceback.

Inventories, pins files, password files, addresses and ports, each broken in one way; plus
duplicate devices (the same address spelled two ways) and billion-laughs documents, which must be
refused quickly rather than expanded.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from avctl.cli.main import cli
from avctl.fleet.inventory import InventoryError, load_inventory, parse_inventory
from avctl.safeyaml import MAX_DEPTH
from avctl.transport.address import parse_address

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefghi", "bcdefghij", strict=True)
)


AVCTL = (sys.executable, "-c", "from avctl.cli.main import main; main()")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def assert_one_error(result: Result, where: str, *, code: int = 2) -> str:
    """Exit code, exactly one `avctl: error:` line that names `where`, no traceback."""
    err = result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in err + result.stdout
    assert result.exit_code == code, (result.exit_code, err)
    errors = [line for line in err.splitlines() if line.startswith("avctl: error:")]
    assert len(errors) == 1, err
    assert where in errors[0], errors[0]
    return errors[0]


def _device(extra: str = "", address: str = "127.0.0.1:1") -> str:
    return f"devices:\n  a: {{family: videoos, address: '{address}'{extra}}}\n"


def _deep(levels: int) -> str:
    return _device(", data: " + "{k: " * levels + "1" + "}" * levels)


# name -> (file bytes, line the error names, words the message holds)
BAD_INVENTORIES: dict[str, tuple[bytes, int, str]] = {
    "recursive alias": (b"devices:\n  a: &d {family: videoos, address: 127.0.0.1:1, data: {x: *d}}\n", 2,
                        "refers to its own anchor"),
    "python tag": (_device(", data: !!python/object/apply:os.system [echo hi]").encode(), 2,
                   "'!!python/object/apply:os.system' is not allowed"),
    "python name tag": (b"devices: !!python/name:os.system\n", 1, "is not allowed"),
    "very deep data": (_deep(MAX_DEPTH + 10).encode(), 2, f"nested more than {MAX_DEPTH} levels"),
    "not UTF-8": (b"# ok\n" + _device().replace("127.0.0.1:1", "127.0.0.1:1\xff").encode("latin-1"), 3,
                  "not UTF-8 text"),
    "NUL byte": (b"devices:\n  a: {family: videoos,\0 address: 127.0.0.1:1}\n", 2, "NUL byte"),
    "billion laughs": (("x:\n" + "".join("  " + line + "\n" for line in BILLION_LAUGHS.splitlines())
                        + _device()).encode(), 8, "aliases expand to more than"),
    "port key too big": (_device(", port: 70000", "127.0.0.1").encode(), 2, "port 70000 is out of range"),
    "port key negative": (_device(", port: -1", "127.0.0.1").encode(), 2, "port -1 is out of range"),
    "port key not a number": (_device(", port: eighty", "127.0.0.1").encode(), 2, "is not a number"),
    "port key float": (_device(", port: 80.5", "127.0.0.1").encode(), 2, "must be a port number"),
    "ports key too big": (_device(", ports: {http: 99999}").encode(), 2, "ports.http: port 99999"),
    "address port huge": (_device(address="127.0.0.1:99999999999999999999").encode(), 2, "is not a number 1-65535"),
    "address port signed": (_device(address="127.0.0.1:+80").encode(), 2, "'+80' is not a number"),
    "address port text": (_device(address="[::1]:https").encode(), 2, "'https' is not a number"),
    "userinfo in address": (_device(address="admin:hunter22@127.0.0.1").encode(), 2,
                            "holds a user name or password"),
    "userinfo after scheme": (_device(address="https://admin@127.0.0.1:8443/").encode(), 2,
                              "holds a user name or password"),
    "duplicate, scheme and slash": (
        b"devices:\n  a: {family: videoos, address: '127.0.0.1:8443'}\n"
        b"  b: {family: videoos, address: 'http://127.0.0.1:8443/'}\n", 3, "same device as devices.a at"),
    "duplicate, host case": (
        b"devices:\n  a: {family: videoos, address: Room-1.example:8443}\n"
        b"  b: {family: videoos, address: room-1.EXAMPLE:8443}\n", 3, "same device as devices.a"),
    "duplicate, default port": (
        b"devices:\n  a: {family: solstice, address: pod-1.example}\n"
        b"  b: {family: solstice, address: 'https://pod-1.example:5443'}\n", 3, "both reach pod-1.example:5443"),
    "duplicate, IPv6 forms": (
        b"devices:\n  a: {family: videoos, address: '[::1]:8443'}\n"
        b"  b: {family: videoos, address: '[0:0:0:0:0:0:0:1]:8443'}\n", 3, "same device as devices.a"),
    "duplicate, IPv4-mapped": (
        b"devices:\n  a: {family: videoos, address: '127.0.0.1:8443'}\n"
        b"  b: {family: videoos, address: '[::ffff:127.0.0.1]:8443'}\n", 3, "same device as devices.a"),
    "impossible date": (_device(", data: {since: 2024-13-45}").encode(), 2, "'2024-13-45' is not a valid date"),
    "tagged non-number": (_device(", port: !!int eighty", "127.0.0.1").encode(), 2, "'eighty' is not a valid int"),
    "tag on the wrong node": (_device(", data: !!str [a]").encode(), 2, "tag '!!str' needs a single value"),
    "merge of a scalar": (_device(", data: {<<: 5}").encode(), 2, "cannot read this value: expected a mapping"),
    "two documents": (_device().encode() + b"---\n" + _device().encode(), 3, "expected one document"),
    "IPv4 with leading zeros": (_device(address="127.000.000.001").encode(), 2, "no leading zeros"),
}


@pytest.mark.parametrize("command", ["inventory list", "fleet status"])
@pytest.mark.parametrize("case", sorted(BAD_INVENTORIES))
def test_bad_inventory_is_one_error_with_file_line(case: str, command: str, tmp_path: Path) -> None:
    data, line, words = BAD_INVENTORIES[case]
    inv = tmp_path / "inv.yaml"
    inv.write_bytes(data)
    message = assert_one_error(invoke(*command.split(), "-i", str(inv)), f"{inv}:{line}:")
    assert words in message
    assert "hunter22" not in message


def test_duplicate_error_names_both_places_and_a_hint(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_bytes(BAD_INVENTORIES["duplicate, scheme and slash"][0])
    result = invoke("inventory", "list", "-i", str(inv))
    assert_one_error(result, f"{inv}:3: devices.b: same device as devices.a at {inv}:2")
    assert "avctl: hint: list each device once" in result.stderr


def test_same_host_other_port_or_disabled_twin_is_not_a_duplicate() -> None:
    inv = parse_inventory(
        "devices:\n"
        "  a: {family: videoos, address: '127.0.0.1:8443'}\n"
        "  b: {family: videoos, address: '127.0.0.1:8444'}\n"
        "  c: {family: videoos, address: 'http://127.0.0.1'}\n"  # port 80, not 443
        "  d: {family: videoos, address: '127.0.0.1'}\n"
        "  old-d: {family: videoos, address: '127.0.0.1:443', disabled: true}\n")
    assert [d.name for d in inv] == ["a", "b", "c", "d", "old-d"]


def test_address_spellings_are_canonical() -> None:
    assert parse_address("ROOM-1.Example") == parse_address("room-1.example")
    assert parse_address("[0:0::1]:8443").host == "::1"
    with pytest.raises(ValueError, match=r"'\.\.\.@h' holds a user name") as info:
        parse_address("u:secret@h")
    assert "secret" not in str(info.value)


def test_billion_laughs_spec_lint_fails_fast(tmp_path: Path) -> None:
    """`spec lint` used to spin forever; a subprocess with a generous timeout keeps the test finite."""
    spec = tmp_path / "laughs.md"
    spec.write_text("---\n" + BILLION_LAUGHS + "---\n\n## Actions\n\n```yaml\n- id: x\n  k: *j\n```\n")
    proc = subprocess.run([*AVCTL, "spec", "lint", str(spec)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert f"{spec}:8: error: front matter: aliases expand to more than" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_billion_laughs_inventory_fails_fast(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_bytes(BAD_INVENTORIES["billion laughs"][0])
    proc = subprocess.run([*AVCTL, "inventory", "list", "-i", str(inv)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"avctl: error: {inv}:8: aliases expand to more than")


def test_spec_with_python_tag_or_recursion_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "s.md"
    spec.write_text("---\nspec_id: !!python/object/apply:os.system [echo hi]\n---\n\n"
                    "## Actions\n\n```yaml\n- &a {id: x, params: [*a]}\n```\n")
    result = invoke("spec", "lint", str(spec))
    assert result.exit_code == 1 and "Traceback" not in result.stdout
    assert f"{spec}:2: error: front matter: tag '!!python/object/apply:os.system' is not allowed" in result.stdout
    assert f"{spec}:8: error: section: alias *a refers to its own anchor" in result.stdout


def test_big_legitimate_inventory_with_aliases_still_loads(tmp_path: Path) -> None:
    lines = ["devices:"]
    lines += [f"  d{i}: {{address: '127.0.0.1:{1000 + i}', family: videoos, data: "
              + ("&common {a: [1, 2, 3, 4, 5, 6, 7, 8]}" if i == 0 else "*common") + "}"
              for i in range(3000)]
    inv = tmp_path / "inv.yaml"
    inv.write_text("\n".join(lines) + "\n")
    loaded = load_inventory(inv)
    assert len(loaded) == 3000 and loaded.get("d2999").data["a"][7] == 8


# --- avctl call / trust / secrets: addresses, ports, password files, pins --------------------------


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {
        "binary": tmp_path / "pw.bin",
        "latin1": tmp_path / "pw.latin1",
        "pins": tmp_path / "known_devices",
    }
    out["binary"].write_bytes(b"\x7fELF\x00\x01\x02")
    out["latin1"].write_bytes(b"s\xe9cret\n")
    out["pins"].write_text("# pins\n127.0.0.1:1 SHA256:" + ":".join(["AB"] * 32) + "\n127.0.0.1:2 SHA256:AB:C\n")
    return out


CALL = ("call", "-f", "videoos")
BAD_COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "call address port too big": ((*CALL, "127.0.0.1:99999", "system_get", "--password-env", "HOME"),
                                  "port 99999 is out of range"),
    "call address port negative": ((*CALL, "127.0.0.1:-1", "system_get", "--password-env", "HOME"),
                                   "port '-1' is not a number"),
    "call IPv6 port not a number": ((*CALL, "[::1]:abc", "system_get", "--password-env", "HOME"),
                                    "port 'abc' is not a number"),
    "call userinfo": ((*CALL, "admin:hunter22@127.0.0.1:1", "system_get", "--password-env", "HOME"),
                      "holds a user name or password"),
    "call --port too big": ((*CALL, "127.0.0.1:1", "system_get", "--password-env", "HOME", "--port", "http=70000"),
                            "--port http=70000: port 70000 is out of range"),
    "call binary --password-file": ((*CALL, "127.0.0.1:1", "system_get", "--password-file", "{binary}"),
                                    "--password-file {binary} is binary"),
    "call latin-1 --password-file": ((*CALL, "127.0.0.1:1", "system_get", "--password-file", "{latin1}"),
                                     "--password-file {latin1} is not UTF-8 text"),
    "call damaged pins": ((*CALL, "127.0.0.1:2", "system_get", "--password-env", "HOME", "--known-hosts", "{pins}"),
                          "{pins}:3: pinned certificates file is damaged"),
    "trust --port too big": (("trust", "127.0.0.1", "--port", "70000"), "--port: port 70000 is out of range"),
    "trust --port not a number": (("trust", "127.0.0.1", "--port", "x"), "--port: port 'x' is not a number"),
    "trust address port too big": (("trust", "127.0.0.1:65536"), "port 65536 is out of range"),
    "trust userinfo": (("trust", "u:hunter22@127.0.0.1:1"), "holds a user name or password"),
    "trust damaged pins": (("trust", "127.0.0.1:1", "--remove", "--known-hosts", "{pins}"),
                           "{pins}:3: pinned certificates file is damaged: the fingerprint is not"),
    "secrets binary --from-file": (("secrets", "set", "x", "--from-file", "{binary}"),
                                   "--from-file {binary} is binary"),
}


@pytest.mark.parametrize("case", sorted(BAD_COMMANDS))
def test_bad_command_input_is_one_error(case: str, files: dict[str, Path]) -> None:
    args, words = BAD_COMMANDS[case]
    names = {k: str(v) for k, v in files.items()}
    result = invoke(*(a.format(**names) for a in args))
    assert_one_error(result, words.format(**names))
    assert "hunter22" not in result.stderr + result.stdout


def test_damaged_pins_file_is_not_skipped(files: dict[str, Path]) -> None:
    """A skipped line would be a forgotten pin: the next connection would pin anything silently."""
    from avctl.transport.tls import KnownHosts

    with pytest.raises(Exception, match=r"known_devices:3: .*damaged") as info:
        KnownHosts(files["pins"]).get("127.0.0.1:1")
    assert "--replace" in str(getattr(info.value, "hint", ""))


def test_binary_credential_file_in_an_inventory_fails_before_the_job_clearly(tmp_path: Path) -> None:
    (tmp_path / "pw.bin").write_bytes(b"a\x00b")
    inv = tmp_path / "inv.yaml"
    inv.write_text("devices:\n  a: {family: videoos, address: '127.0.0.1:1', password: 'file:pw.bin'}\n")
    result = invoke("fleet", "status", "-i", str(inv))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 2  # issue 15: every reference is checked before a job starts
    assert "password file:pw.bin of a: credential file" in result.stderr and "pw.bin is binary" in result.stderr


def test_inventory_error_type_carries_file_and_line(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_bytes(BAD_INVENTORIES["recursive alias"][0])
    with pytest.raises(InventoryError) as info:
        load_inventory(inv)
    assert (info.value.file, info.value.line) == (str(inv), 2)


@pytest.mark.parametrize(("lines", "words"), [
    ("127.0.0.1:8443\n", "importing polyuc-127-0-0-1-8443 (127.0.0.1:8443): it is already listed as devices.hq-1 at"),
    ("127.0.0.2\n127.0.0.2:443\n", "importing polyuc-127-0-0-2-443 (127.0.0.2:443): it is already listed as "
                                   "polyuc-127-0-0-2 of this import"),
])
def test_import_refuses_a_device_already_listed_under_another_name(lines: str, words: str, tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("devices:\n  hq-1: {family: polyuc, address: 'https://127.0.0.1:8443/'}\n")
    before = inv.read_bytes()
    src = tmp_path / "ip.txt"
    src.write_text(lines)
    result = invoke("inventory", "import", "ip-list", str(src), "-o", str(inv), "--password", "env:X")
    assert_one_error(result, words)
    assert inv.read_bytes() == before
