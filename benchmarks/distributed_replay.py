"""Distributed hindsight replay: a Dask cluster of 1, 2 and 4 worker processes replaying the same
runs out of a shared store, beside the ideal line.

The runs are recorded first, untimed, into a shared store: a throwaway PostgreSQL cluster on
loopback (tests/postgres.py, durable settings) with the checkpoints in a separate objects folder
(TRELLIS_OBJECTS), so that nothing a worker reads is in the project's own `.trellis/`. They are
replay.py's training script (workloads/replay_train.py) with a different learning rate each.
Then a step-level statement (`grad_norm`) is replayed into the last two epochs of every run, once
per cluster size, through `trellis replay --executor dask://…`; a cluster of worker processes on
this machine takes the same code path as a remote one. Each replay replaces the previous one's
values (`--force`), and the count of values stored is checked to be the same every time.

Figures: wall time of `trellis replay` (planning, worktrees, the segments, storing), speed-up
over 1 worker, and the ideal speed-up (the number of workers). On a machine with fewer cores than
workers the measured line flattens at the core count: one math thread per segment, so each
segment runs on one core.

    .venv/bin/python benchmarks/distributed_replay.py [--runs N] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import GIT_IDENTITY, Sandbox  # noqa: E402
from replay import ONE_THREAD, STEP_STATEMENT, VERSION_2, today  # noqa: E402
from run import default_trellis_python, trellis_interpreter  # noqa: E402

from tests.postgres import Cluster  # noqa: E402

EPOCHS = 6
REPLAYED = f"epoch >= {EPOCHS - 2}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="runs to replay into (default 8)")
    parser.add_argument("--workers", default="1,2,4", help="cluster sizes (default 1,2,4)")
    args = parser.parse_args()
    sizes = [int(n) for n in args.workers.split(",")]
    from distributed import LocalCluster

    interp = trellis_interpreter(default_trellis_python())
    # Workers are started from this process: they, and the segments they start, inherit this.
    # The variable the script reads comes with the replay (--env), as it would to a remote cluster.
    os.environ.update(ONE_THREAD)
    database = Cluster(durable=True)
    admin = database.start()
    sandbox = Sandbox()
    objects = Path(tempfile.mkdtemp(prefix="trellis-objects-"))
    try:
        store = admin.replace("postgresql://", "postgresql+psycopg://")
        env = {"BENCH_TOOL": "trellis", "TRELLIS_STORE": store, "TRELLIS_OBJECTS": str(objects),
               **ONE_THREAD, **GIT_IDENTITY}
        repo = sandbox.create({"train.py": VERSION_2})
        print(f"recording {args.runs} runs of {EPOCHS} epochs into the shared store", file=sys.stderr)
        for number in range(args.runs):
            subprocess.run([interp.python, "train.py", "--epochs", str(EPOCHS), "--lr", str(0.01 + 0.001 * number)],
                           cwd=repo, env=interp.environ(env), check=True, capture_output=True)
        (repo / "train.py").write_text(today(VERSION_2, STEP_STATEMENT))

        rows = []
        for size in sizes:
            with LocalCluster(n_workers=size, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster:
                address = cluster.scheduler_address.replace("tcp://", "dask://")
                started = time.perf_counter()
                done = subprocess.run(
                    [interp.python, "-m", "trellis.cli", "replay", "grad_norm", "--where", REPLAYED,
                     "--executor", address, "--workers", str(size), "--env", "BENCH_TOOL", "--force", "--yes",
                     "--json"],
                    cwd=repo, env=interp.environ(env), capture_output=True, text=True)
                seconds = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"trellis replay failed with {size} workers:\n{(done.stdout + done.stderr)[-2000:]}")
            report = json.loads(done.stdout[done.stdout.index("{"):])
            statuses = {run["status"] for run in report["runs"]}
            values = sum(run["values"] for run in report["runs"])
            rows.append((size, seconds, statuses, values))
            print(f"{size} worker(s): {seconds:.1f} s, {values} values, {statuses}", file=sys.stderr)
            if statuses != {"ok"}:
                raise SystemExit("replay failed: " + json.dumps([run.get("failed") or run.get("reason") for run in report["runs"]])[:3000])
    finally:
        sandbox.close()
        database.stop()
        shutil.rmtree(objects, ignore_errors=True)

    base = rows[0][1]
    print(f"## Distributed replay: {args.runs} runs, `{REPLAYED}` step-level, Dask LocalCluster,"
          f" PostgreSQL store, {os.cpu_count()} cores\n")
    print("| workers | wall time | speed-up | ideal | values stored | runs ok |")
    print("|---|---|---|---|---|---|")
    for size, seconds, statuses, values in rows:
        print(f"| {size} | {seconds:.1f} s | {base / seconds:.2f}× | {size / sizes[0]:.0f}× | {values}"
              f" | {'all' if statuses == {'ok'} else sorted(statuses)} |")
    if len({values for *_, values in rows}) != 1:
        raise SystemExit("the cluster sizes stored different numbers of values")


if __name__ == "__main__":
    main()
