"""Fast start: `avctl --help` imports no command, each command imports only what it uses, and the
lazily listed help is the commands' own help."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from avctl.cli.main import COMMANDS, cli

#: what no `avctl --help` needs: every command module, and the heavy libraries behind them
HEAVY = ("avctl.cli.actions", "avctl.cli.call", "avctl.cli.trust", "avctl.cli.spec_cmd", "avctl.cli.emulate",
         "avctl.cli.fleet", "avctl.cli.common", "avctl.device", "avctl.spec", "avctl.transport.tls",
         "avctl.emulator", "avctl.fleet", "aiohttp", "jsonschema", "cryptography", "yaml", "rich")


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code` (a real process: nothing cached)."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_help_imports_no_command_and_no_heavy_library() -> None:
    modules = modules_after("from avctl.cli.main import main\nsys.argv = ['avctl', '--help']\n"
                           "try:\n    main()\nexcept SystemExit:\n    pass")
    assert "avctl.cli.lazy" in modules  # the code under test did run
    assert loaded(modules, HEAVY) == []


def test_importing_avctl_is_light_and_the_public_api_still_there() -> None:
    modules = modules_after("import avctl")
    assert loaded(modules, ("avctl.device", "aiohttp", "cryptography", "jsonschema", "yaml")) == []
    modules = modules_after("from avctl import Device, SyncDevice, Credentials, Spec, TLSPolicy, KnownHosts, "
                            "builtin_spec, load_spec, Result, AvctlError")
    assert "avctl.device" in modules
    import avctl

    assert set(avctl.__all__) <= set(dir(avctl))
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        avctl.Nothing  # noqa: B018 - the attribute access is the test


def test_actions_and_call_import_no_server_no_emulator_no_fleet() -> None:
    actions = modules_after("import avctl.cli.actions")
    assert loaded(actions, ("aiohttp", "jsonschema", "cryptography", "avctl.emulator", "avctl.fleet.runner",
                            "avctl.device")) == []
    call = modules_after("import avctl.cli.call")
    assert "avctl.transport.http" in call  # it sends requests (aiohttp is imported by the first one)
    assert loaded(call, ("aiohttp.web", "jsonschema", "cryptography", "avctl.emulator", "avctl.fleet.runner",
                         "avctl.fleet.store", "rich")) == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_table_row_loads_its_command_with_the_same_help(name: str) -> None:
    cmd = cli.load(name)
    assert isinstance(cmd, click.Command) and cmd.name == name
    stand_in = click.Command(name, help=COMMANDS[name].help)
    for limit in (20, 45, 70, 200):
        assert stand_in.get_short_help_str(limit) == cmd.get_short_help_str(limit), limit


def test_lazy_help_is_the_help_of_the_loaded_commands() -> None:
    fresh = subprocess.run([sys.executable, "-c", "from avctl.cli.main import main; main()", "--help"],
                           capture_output=True, text=True, timeout=120, env={"COLUMNS": "80", "PATH": ""})
    for name in COMMANDS:
        cli.load(name)
    # click formats for COLUMNS minus 2 in a real terminal, for exactly the width a runner gives
    loaded_help = CliRunner().invoke(cli, ["--help"], prog_name="avctl", terminal_width=78)
    assert fresh.returncode == 0 and loaded_help.exit_code == 0
    assert fresh.stdout == loaded_help.output
    assert all(f"  {name} " in fresh.stdout for name in COMMANDS)


def test_subcommands_and_unknown_commands_behave_as_before() -> None:
    result = CliRunner().invoke(cli, ["emulate", "--help"])
    assert result.exit_code == 0
    assert all(f"  {fam} " in result.output for fam in ("fleet", "polyuc", "solstice", "videoos"))
    result = CliRunner().invoke(cli, ["nosuch"])
    assert result.exit_code == 2 and "No such command 'nosuch'" in result.output


@pytest.mark.parametrize("cli_process", [True, False])
def test_the_cli_skips_the_ca_store_only_in_its_own_process(cli_process: bool) -> None:
    """The command line imports aiohttp without loading the system CA store into aiohttp's default
    contexts (avctl never uses them; ~100 ms per call); a library user's process keeps it, and the
    environment is as it was afterwards."""
    code = (
        "import json, os, ssl\n"
        "before = os.environ.get('SSL_CERT_FILE')\n"
        "import avctl.transport.cas as cas\n"
        f"cas.CLI_OWNS_PROCESS = {cli_process}\n"
        "import avctl.transport.client_lib\n"  # what HttpTransport imports for its first request
        "import aiohttp.connector as k\n"
        "print(json.dumps([k._SSL_CONTEXT_VERIFIED.cert_store_stats()['x509_ca'],\n"
        "                  ssl.create_default_context().cert_store_stats()['x509_ca'],\n"
        "                  os.environ.get('SSL_CERT_FILE') == before]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    in_aiohttp, system, env_restored = json.loads(done.stdout)
    assert system > 0, "this machine has no system CA store: the test cannot tell the two cases apart"
    assert env_restored
    assert in_aiohttp == (0 if cli_process else system)


def test_emulating_an_unknown_family_names_the_known_ones() -> None:
    result = CliRunner().invoke(cli, ["emulate", "nope"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "no family 'nope' to emulate; known:" in result.output and "videoos" in result.output
    close = CliRunner().invoke(cli, ["emulate", "videos"])
    assert close.exit_code == 2 and "no family 'videos' to emulate; did you mean 'videoos'?" in close.output
