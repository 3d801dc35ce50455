"""`avctl.server.heap` in a process of its own (it changes process-wide settings): what start-up made
is frozen out of the collector's reach, the collector runs at the server's thresholds, and the
heap's free pages go back to the system while the loop runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_settle_freezes_start_up_and_sets_the_thresholds() -> None:
    out = run("""
        import gc
        from avctl.server.heap import GC_THRESHOLD, settle
        kept = [object() for _ in range(1000)]
        assert gc.get_freeze_count() == 0
        settle()
        print(gc.get_freeze_count() >= 1000, gc.get_threshold() == GC_THRESHOLD)
    """)
    assert out == "True True"


def test_the_heap_is_trimmed_while_the_loop_runs() -> None:
    # malloc_trim is glibc's: count its calls through a stand-in with the same signature
    out = run("""
        import asyncio
        from avctl.server import heap
        calls = []
        class Libc:
            def malloc_trim(self, pad): calls.append(pad); return 1
            def mallopt(self, param, value): calls.append((param, value)); return 1
        heap._libc = Libc
        heap.limit_arenas()
        async def main():
            task = asyncio.create_task(heap.trim_every(0.01))
            while len(calls) < 4:
                await asyncio.sleep(0.01)
            task.cancel()
        asyncio.run(main())
        print(calls[:4])
    """)
    assert out == "[(-8, 2), 0, 0, 0]"
