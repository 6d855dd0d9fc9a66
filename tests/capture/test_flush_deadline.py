"""A running script's values are written on a deadline: a value waits at most about the flush
interval (``TRELLIS_FLUSH_SECONDS``) before it is committed, so a ``kill -9`` loses at most that
much, even while the code snapshot is slow or a flush takes a while (what a kill loses under
heavy logging is measured by ``benchmarks/kill_gap.py``)."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import git

TICKS = """
import time, trellis
trellis.log("t", time.time())
trellis.commit()
print("logging", flush=True)
for i in trellis.loop("i", range(10**9)):
    time.sleep(0.02)
    trellis.log("t", time.time())
"""

INTERVAL = 1.0
# what a flush of a few values, the 20 ms between values and between reads, and a busy machine
# may add to the interval
ALLOWANCE = 0.5


def _newest(store) -> float | None:
    return store.execute("SELECT MAX(float_value) FROM logs WHERE name = 't'")[0][0]


def test_a_kill_loses_at_most_the_interval_even_while_the_code_snapshot_is_slow(project):
    # a clean filter that takes 3 s makes the snapshot of data.slow take as long
    (project.root / ".gitattributes").write_text("*.slow filter=slow\n")
    git(project.root, "config", "filter.slow.clean", "sleep 3; cat")
    (project.root / "data.slow").write_text("x\n")
    project.write("ticks.py", TICKS)
    child = subprocess.Popen(
        [sys.executable, "ticks.py"], cwd=project.root, stdout=subprocess.PIPE, text=True,
        env=project.env(TRELLIS_FLUSH_SECONDS=str(INTERVAL)),
    )
    store = None
    try:
        assert child.stdout.readline().strip() == "logging"
        started = time.time()
        store = project.store()  # committed once: it is there
        # The most a kill at one of these moments would have lost: what was logged since the
        # newest value stored, or since "logging", before which the commit stored everything.
        worst = 0.0
        while time.time() < started + 5:
            newest = max(_newest(store), started)
            worst = max(worst, time.time() - newest)
            time.sleep(0.02)
        killed = time.time()
        child.kill()  # SIGKILL
        child.wait()
        lost = killed - _newest(store)
    finally:
        child.kill()
        child.wait()
        if store is not None:
            store.close()
    assert worst < INTERVAL + ALLOWANCE, worst
    assert lost < INTERVAL + ALLOWANCE, lost
    assert "x" in subprocess.run(["git", "show", f"refs/trellis/runs/{_uuid(project)}:data.slow"],
                                 cwd=project.root, capture_output=True, text=True).stdout


def _uuid(project) -> str:
    store = project.store()
    try:
        return store.execute("SELECT uuid FROM runs")[0][0]
    finally:
        store.close()


def test_the_next_flush_begins_as_long_before_the_interval_is_up_as_flushes_take():
    from trellis.capture.run import next_flush

    assert next_flush(began=10.0, took=0.3, interval=2.0) == 11.7
    assert next_flush(began=10.0, took=0.0, interval=2.0) == 12.0
    # a flush longer than the interval is followed by the next at once, not an interval later
    assert next_flush(began=10.0, took=2.5, interval=2.0) == 10.0
