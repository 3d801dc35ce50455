"""Another process writing jobs to a database through the CLI's journal (`SqlJobStore`), one step
per command it reads, so a test decides what that process has done when it looks.

    python -m tests.server.jobs_writer DATABASE     then lines:  create DEV...  |  outcome JOB DEV STATUS
                                                                 |  finish JOB  |  quit
Each command is answered by one line: the job's id for ``create``, ``ok`` otherwise.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from avctl.db.journal import SqlJobStore, open_journal_database
from avctl.fleet.results import Outcome

ROOT = Path(__file__).resolve().parents[2]


def main(database: str) -> None:
    store = SqlJobStore(open_journal_database(database))
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "create":
            job = store.create_job(action="reboot", selection="site=hq", params={}, devices=words[1:], user="cli")
            print(job.id, flush=True)
            continue
        if words[0] == "outcome":
            now = time.time()
            store.record_outcome(int(words[1]), Outcome(device=words[2], status=words[3],  # type: ignore[arg-type]
                                                        family="videoos", started=now, finished=now))
        elif words[0] == "finish":
            store.set_state(int(words[1]), "finished")
        print("ok", flush=True)
    store.close()


class JobsWriter:
    """The writer as a real second process, driven one command at a time."""

    def __init__(self, database: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.server.jobs_writer", database], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def send(self, *words: object) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer, f"the jobs writer stopped (exit {self.proc.poll()})"
        return answer

    def create(self, *devices: str) -> int:
        return int(self.send("create", *devices))

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


if __name__ == "__main__":
    main(sys.argv[1])
