"""SQLite and PostgreSQL side by side under load: 16 processes logging 100k values each into one
store, and one process flushing 100k values (COPY on PostgreSQL).

PostgreSQL is a throwaway local cluster with its default, durable settings (tests/postgres.py;
Debian's server programs: scripts/ensure-postgresql), on loopback. Each figure is the median of
--reps runs; throughput counts values from the first process start to the last process end, so
it includes starting 16 interpreters on the machine's cores.

    python benchmarks/shared_store.py [--reps N] [--processes N] [--values N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.postgres import Cluster  # noqa: E402

WRITER = """
import sys, trellis
worker, count = int(sys.argv[1]), int(sys.argv[2])
for i in trellis.loop("i", range(count)):
    trellis.log("value", worker * 10_000_000 + i)
"""

FLUSH = """
import sys, time, trellis
trellis.commit()  # the run is registered: what follows is the cost of writing values
for i in trellis.loop("i", range(int(sys.argv[1]))):
    trellis.log("value", i * 0.5)
started = time.perf_counter()
trellis.commit()
print(time.perf_counter() - started)
"""


def _project() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="trellis-bench-"))
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    return folder


def _env(store: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_")}
    env.update({"TRELLIS_PROGRESS": "0"}, **({"TRELLIS_STORE": store} if store else {}))
    return env


def _count(folder: Path, store: str | None) -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import trellis; print(trellis.query('SELECT COUNT(*) AS n FROM logs')['n'][0])"],
        cwd=folder, env=_env(store), capture_output=True, text=True, check=True)
    return int(done.stdout)


def load(store: str | None, processes: int, values: int) -> float:
    """Values per second written by ``processes`` concurrent scripts; checks every one arrived."""
    folder = _project()
    (folder / "writer.py").write_text(WRITER)
    started = time.perf_counter()
    running = [subprocess.Popen([sys.executable, "writer.py", str(w), str(values)], cwd=folder, env=_env(store))
               for w in range(processes)]
    if any(p.wait() != 0 for p in running):
        raise RuntimeError("a writer failed")
    seconds = time.perf_counter() - started
    if _count(folder, store) != processes * values:
        raise RuntimeError("values are missing")
    return processes * values / seconds


def flush(store: str | None, values: int) -> float:
    folder = _project()
    (folder / "flush.py").write_text(FLUSH)
    done = subprocess.run([sys.executable, "flush.py", str(values)], cwd=folder, env=_env(store),
                          capture_output=True, text=True, check=True)
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--values", type=int, default=100_000)
    args = parser.parse_args()
    import psycopg

    cluster = Cluster(durable=True)
    admin = cluster.start()
    try:
        databases = iter(range(10_000))

        def postgres() -> str:
            name = f"bench_{next(databases)}"
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f"CREATE DATABASE {name}")
            return admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name

        rows = []
        for label, store in (("SQLite", lambda: None), ("PostgreSQL", postgres)):
            rate = statistics.median(load(store(), args.processes, args.values) for _ in range(args.reps))
            seconds = statistics.median(flush(store(), args.values) for _ in range(args.reps))
            rows.append((label, rate, seconds))
    finally:
        cluster.stop()
    total = args.processes * args.values
    print(f"{args.processes} processes x {args.values:,} values ({total:,}), medians of {args.reps}, "
          f"{os.cpu_count()} cores")
    print(f"{'store':<12}{'values/s, all processes':>26}{'one flush of ' + format(args.values, ',') + ' values':>32}")
    for label, rate, seconds in rows:
        print(f"{label:<12}{rate:>26,.0f}{seconds:>30.3f} s")
    (sqlite_rate, sqlite_flush), (pg_rate, pg_flush) = [(r, s) for _, r, s in rows]
    print(f"{'ratio PG/SQLite':<12}{pg_rate / sqlite_rate:>26.2f}{pg_flush / sqlite_flush:>30.2f}")


if __name__ == "__main__":
    main()
