"""How much logging a ``kill -9`` loses: the time between the newest value the store holds and
the moment of the kill.

Each trial runs a script in a fresh git repository (SQLite store) that logs ``time.time()`` in a
loop, with ``sum(range(WORK))`` between values: WORK 200 logs about 200 000 values a second,
2000 about 20 000. While it runs, the store is read every 10 ms, and the time since the newest
value there was logged is what a kill at that moment would lose; at the end the script is
killed with SIGKILL and the store read once more. ``--load N`` runs N busy processes beside it,
as on a machine shared with other work. Prints a line per trial and a summary; exits 1 if a
loss is above ``--bound`` seconds.

    python benchmarks/kill_gap.py --trials 5 --work 2000 --load 1
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent

LOGGING = """
import sys, time, trellis
work = int(sys.argv[1])
trellis.log("t", time.time())
print("logging", flush=True)
for i in trellis.loop("i", range(10**9)):
    sum(range(work))
    trellis.log("t", time.time())
"""

BUSY = "while True: pass"


def git_repository(root: Path) -> None:
    identity = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.invalid",
                "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.invalid"}
    env = {**os.environ, **identity}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True, env=env)
    (root / "logging_script.py").write_text(LOGGING)
    subprocess.run(["git", "add", "."], cwd=root, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "first"], cwd=root, check=True, env=env)


def newest_value(store: sqlite3.Connection) -> float | None:
    try:  # fetchall: no read left open to hold up the writer
        found = store.execute("SELECT float_value FROM logs WHERE name = 't' ORDER BY id DESC LIMIT 1").fetchall()
    except sqlite3.OperationalError:  # no tables yet
        return None
    return found[0][0] if found else None


def trial(python: str, work: int, seconds: float, flush_seconds: float | None) -> tuple[float, float, float]:
    """(the most a kill at any moment of the run would have lost, that moment (seconds after the
    first value), what the kill at its end lost).

    While the script runs, the store is read every 10 ms: the time since the newest value it
    holds was logged is what a kill at that moment would lose.
    """
    with tempfile.TemporaryDirectory(prefix="trellis-kill-") as folder:
        root = Path(folder)
        git_repository(root)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_")}
        env.update(PYTHONPATH=str(REPOSITORY), TRELLIS_PROGRESS="0")
        if flush_seconds is not None:
            env["TRELLIS_FLUSH_SECONDS"] = str(flush_seconds)
        child = subprocess.Popen([python, "logging_script.py", str(work)], cwd=root, env=env,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "logging"
            started = time.time()
            worst, worst_at = 0.0, 0.0
            path = root / ".trellis" / "trellis.db"
            store = None
            end = started + random.uniform(0.7, 1.0) * seconds
            while time.time() < end:
                # read only once the store is in WAL mode, where a reader never holds up its writer
                if store is None and path.with_name(path.name + "-wal").exists():
                    store = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
                newest = newest_value(store) if store is not None else None
                now = time.time()
                if now - (newest if newest is not None else started) > worst:
                    worst, worst_at = now - (newest if newest is not None else started), now - started
                time.sleep(0.01)
            killed = time.time()
            child.send_signal(signal.SIGKILL)
            child.wait()
        finally:
            child.kill()
            child.wait()
        if store is None:
            store = sqlite3.connect(path)
        newest = newest_value(store)
        store.close()
        return worst, worst_at, killed - (newest if newest is not None else started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--load", type=int, default=0, help="busy processes running beside it")
    parser.add_argument("--work", type=int, default=200, help="sum(range(WORK)) between values")
    parser.add_argument("--seconds", type=float, default=8.0, help="how long each run logs, at most")
    parser.add_argument("--flush-seconds", type=float, default=None, help="TRELLIS_FLUSH_SECONDS")
    parser.add_argument("--bound", type=float, default=None, help="fail if a loss is above it")
    parser.add_argument("--python", default=sys.executable)
    options = parser.parse_args()
    hogs = [subprocess.Popen([options.python, "-c", BUSY]) for _ in range(options.load)]
    worst, lost = [], []
    try:
        for number in range(options.trials):
            at_worst, moment, at_kill = trial(options.python, options.work, options.seconds,
                                              options.flush_seconds)
            worst.append(at_worst)
            lost.append(at_kill)
            print(f"trial {number + 1}: a kill {moment:.2f} s after the first value would have lost"
                  f" {at_worst:.3f} s, the most in this run; the kill at its end lost {at_kill:.3f} s",
                  flush=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    print(f"load {options.load}, work {options.work}: a kill at the worst moment lost up to"
          f" {max(worst):.3f} s (median of runs {statistics.median(worst):.3f} s); the real kills"
          f" lost up to {max(lost):.3f} s (median {statistics.median(lost):.3f} s), {len(lost)} runs")
    return 1 if options.bound is not None and max(worst + lost) > options.bound else 0


if __name__ == "__main__":
    sys.exit(main())
