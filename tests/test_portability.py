"""Windows and macOS: every module of the package imports without POSIX-only modules, and the pin
file lock works (flock here; msvcrt's byte-range lock checked against a stand-in)."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from avctl import filelock
from avctl.filelock import exclusive_lock
from avctl.transport.tls import KnownHosts

POSIX_ONLY = ("fcntl", "pwd", "grp", "termios", "resource")

#: runs in a fresh interpreter: import everything once for real (the standard library and the
#: dependencies branch on the real platform), then forget avctl, make the POSIX-only modules
#: unimportable, pretend to be PLATFORM and import every avctl module again
IMPORT_ALL = """
import importlib, sys
from pathlib import Path
import avctl

root = Path(avctl.__file__).parent  # every file: avctl.emulator has no __init__ for pkgutil to walk
names = sorted({".".join(("avctl", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
                for p in root.rglob("*.py")} - {"avctl"})
for name in names:
    importlib.import_module(name)
for name in [m for m in sys.modules if m == "avctl" or m.startswith("avctl.")]:
    del sys.modules[name]
for name in BLOCKED:
    sys.modules[name] = None  # 'import fcntl' now raises ImportError
sys.platform = PLATFORM
failed = []
for name in ["avctl", *names]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print(len(names))
print("\\n".join(failed))
"""


@pytest.mark.parametrize(("platform", "blocked"), [("win32", POSIX_ONLY), ("darwin", ())])
def test_every_module_imports_on(platform: str, blocked: tuple[str, ...]) -> None:
    code = f"BLOCKED = {blocked!r}\nPLATFORM = {platform!r}\n" + IMPORT_ALL
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    count, *failed = done.stdout.strip().splitlines()
    assert int(count) > 50  # the walk found the package
    assert [f for f in failed if f] == []


def test_no_module_imports_a_posix_only_module_at_top_level() -> None:
    root = Path(__file__).resolve().parents[1] / "src" / "avctl"
    offenders = [f"{p.relative_to(root)}:{n}" for p in root.rglob("*.py")
                 for n, line in enumerate(p.read_text().splitlines(), 1)
                 if line.startswith(tuple(f"import {m}" for m in POSIX_ONLY)) or
                 line.startswith(tuple(f"from {m} import" for m in POSIX_ONLY))]
    assert offenders == []


HOLDER = """
import sys
from avctl.filelock import exclusive_lock
with open(sys.argv[1], "a") as fh, exclusive_lock(fh):
    fh.write("held\\n")
    print("locked", flush=True)
    sys.stdin.readline()  # hold until told
print("released", flush=True)
"""


def test_the_lock_excludes_another_process_until_released(tmp_path: Path) -> None:
    import fcntl

    path = tmp_path / "known_devices"
    path.write_text("")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline() == "locked\n"
        with open(path, "a") as fh:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            holder.stdin.write("go\n")
            holder.stdin.flush()
            assert holder.stdout.readline() == "released\n"
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free now
        assert path.read_text() == "held\n"  # written before the lock was let go
    finally:
        holder.kill()
        holder.wait()


def test_pins_from_concurrent_processes_are_all_kept(tmp_path: Path) -> None:
    path = tmp_path / "known_devices"
    code = ("import sys\nfrom pathlib import Path\nfrom avctl.transport.tls import KnownHosts\n"
            "kh = KnownHosts(Path(sys.argv[1]))\n"
            "for i in range(50):\n    kh.set(f'10.0.{sys.argv[2]}.{i}:443', 'SHA256:' + ':'.join(['AB'] * 32))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(n)]) for n in range(4)]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    kh = KnownHosts(path)
    assert all(kh.get(f"10.0.{n}.{i}:443") for n in range(4) for i in range(50))
    assert kh.remove("10.0.2.7:443") and KnownHosts(path).get("10.0.2.7:443") is None


class FakeMsvcrt(types.ModuleType):
    """msvcrt.locking as Windows documents it: LK_LOCK gives up with EDEADLOCK after ten tries."""

    LK_LOCK, LK_UNLCK = 1, 0

    def __init__(self, busy: int) -> None:
        super().__init__("msvcrt")
        self.busy = busy  # how many LK_LOCK calls fail before the lock is free
        self.calls: list[tuple[str, int, int]] = []

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        self.calls.append(("lock" if mode == self.LK_LOCK else "unlock", os.lseek(fd, 0, os.SEEK_CUR), nbytes))
        if mode == self.LK_LOCK and self.busy:
            self.busy -= 1
            raise OSError(errno.EDEADLOCK, "Resource deadlock avoided")


def test_windows_lock_waits_and_locks_a_byte_past_the_content(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMsvcrt(busy=2)
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    monkeypatch.setattr(sys, "platform", "win32")
    path = tmp_path / "pins"
    path.write_text("old\n")
    with open(path, "a") as fh:
        before = fh.tell()
        with exclusive_lock(fh):
            assert fh.tell() == before  # the position is back where it was
            fh.write("new\n")
    offset = filelock._WINDOWS_LOCK_OFFSET
    assert fake.calls == [("lock", offset, 1)] * 3 + [("unlock", offset, 1)]
    assert path.read_text() == "old\nnew\n"


def test_windows_lock_other_errors_are_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMsvcrt(busy=0)

    def refuse(fd: int, mode: int, nbytes: int) -> Any:
        raise OSError(errno.EBADF, "Bad file descriptor")

    fake.locking = refuse  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    monkeypatch.setattr(sys, "platform", "win32")
    with open(os.devnull, "a") as fh, pytest.raises(OSError, match="Bad file"), exclusive_lock(fh):
        pass


def test_a_closed_file_is_not_unlocked_again(tmp_path: Path) -> None:
    with open(tmp_path / "f", "a") as fh, exclusive_lock(fh):
        fh.close()  # closing released the lock; leaving the block must not fail
    assert isinstance(fh, io.TextIOBase)
