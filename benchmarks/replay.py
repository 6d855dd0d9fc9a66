"""Hindsight replay, trellis against FlorDB 4.0.1, side by side in one run.

The scenario: workloads/replay_train.py (a deterministic numpy network, 10 epochs) run three
times across two code versions (version 1 once, version 2 with weight decay twice). Then two new
statements are added to today's script and replayed into the past runs:

- an epoch-level one (`w_norm`, after the step loop), which needs no step executed;
- a step-level one (`grad_norm`), for all steps of the last two epochs.

Printed: the epoch-level replay of one run as a share of the run's own time, whether replay is
exact (verified) across the two versions, what verifying costs, the speed-up of replaying three runs with 2 workers over 1, what
checkpointing adds to the loop with the default budget, and each replay's planned against actual
time. FlorDB's own replay of the same statements runs on the same scenario, and on a one-version
repository where it can work.

    .venv/bin/python benchmarks/replay.py [--trellis-only]
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import GIT_IDENTITY, Interpreter, Sandbox, run_script, workload  # noqa: E402
from run import FLOR_QUIET, default_trellis_python, ensure_peers, trellis_interpreter  # noqa: E402

VERSION_1 = workload("replay_train.py")
VERSION_2 = VERSION_1.replace(
    "            W2 -= lr * g2  # VERSION-2 MARK\n",
    "            g2 += 1e-4 * W2  # weight decay\n            W2 -= lr * g2\n",
)
# One math thread per process: small matrices in OpenBLAS threads that wait on each other run
# several times slower on a shared machine, which would drown what is measured here.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
EPOCH_STATEMENT = '        lib.log("w_norm", float(np.linalg.norm(W2)))\n'
STEP_STATEMENT = '            lib.log("grad_norm", float(np.linalg.norm(g2)))\n'


def today(version: str, *statements: str) -> str:
    source = version
    if EPOCH_STATEMENT in statements:
        anchor = '            lib.log("loss", float(np.mean(error ** 2)))\n'
        source = source.replace(anchor, anchor + EPOCH_STATEMENT)
    if STEP_STATEMENT in statements:
        anchor = "            W1 -= lr * g1\n"
        source = source.replace(anchor, anchor + STEP_STATEMENT)
    return source


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                   env={**os.environ, **GIT_IDENTITY})


def timed(interp: Interpreter, repo: Path, args: list[str], env: dict[str, str], stdin: str = "",
          check: bool = True) -> tuple[float, str, int]:
    started = time.perf_counter()
    done = subprocess.run([interp.python, *args], cwd=repo, env=interp.environ(env), input=stdin,
                          capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed in {repo}:\n{(done.stdout + done.stderr)[-2000:]}")
    return time.perf_counter() - started, done.stdout + done.stderr, done.returncode


def trellis_side(interp: Interpreter, sandbox: Sandbox) -> dict:
    tool = {"BENCH_TOOL": "trellis", **ONE_THREAD}
    repo = sandbox.create({"train.py": VERSION_1})
    run_time = {}
    run_time["v1"], _, _ = timed(interp, repo, ["train.py"], tool)
    (repo / "train.py").write_text(VERSION_2)
    git(repo, "commit", "-qam", "version 2")
    run_time["v2"], _, _ = timed(interp, repo, ["train.py"], tool)
    run_time["v2 lr"], _, _ = timed(interp, repo, ["train.py", "--lr", "0.02"], tool)
    runs = subprocess.run([interp.python, "-c", "import trellis; print(' '.join(r['run_id'] for r in trellis.runs()))"],
                          cwd=repo, env=interp.environ(tool), capture_output=True, text=True, check=True).stdout.split()
    (repo / "train.py").write_text(today(VERSION_2, EPOCH_STATEMENT, STEP_STATEMENT))

    def replay(*args: str) -> dict:
        seconds, output, code = timed(interp, repo, ["-m", "trellis.cli", "replay", *args, "--yes", "--json"], tool,
                                      check=False)
        if code != 0:
            raise RuntimeError(f"trellis replay {' '.join(args)} failed:\n{output[-2000:]}")
        report = json.loads(output[output.index("{"):])
        report["wall"] = seconds
        return report

    newest = runs[0]
    epoch_level = replay("w_norm", "--run", newest)
    one_worker = replay("grad_norm", "--where", "epoch >= 8", "--workers", "1")
    two_workers = replay("grad_norm", "--where", "epoch >= 8", "--workers", "2", "--force")
    statuses = [run["status"] for run in two_workers["runs"]]
    # What verifying costs: reading the runs' own values and comparing them, in the replaying process.
    verification = {name: report["verification_seconds"] / report["wall"] for name, report in (
        ("epoch-level, 1 run", epoch_level), ("step-level, 3 runs, 2 workers", two_workers))}

    overhead = []
    for _ in range(2):
        loops = {}
        for saving in ("0", "1"):
            fresh = sandbox.create({"train.py": VERSION_2})
            loops[saving] = run_script(interp, fresh, "train.py", {**tool, "BENCH_CHECKPOINT": saving})["loop_s"]
        overhead.append(loops["1"] / loops["0"] - 1)
    return {
        "run_time": run_time, "epoch_level": epoch_level, "one_worker": one_worker,
        "two_workers": two_workers, "statuses": statuses, "overhead": statistics.median(overhead),
        "verification": verification,
    }


def as_flordb(source: str) -> str:
    """FlorDB finds log statements by the name ``flor``: spell the same script that way."""
    return re.sub(r"\blib\.", "flor.", source.replace("import flordb as lib", "import flordb as flor"))


def flordb_side(interp: Interpreter, sandbox: Sandbox) -> dict:
    # FlorDB's replay starts `python train.py` from PATH: its own interpreter must come first.
    path = f"{Path(interp.python).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    tool = {"BENCH_TOOL": "flordb", **FLOR_QUIET, **ONE_THREAD, "PATH": path}
    result = {}
    # One version, one run: where FlorDB's replay can work.
    repo = sandbox.create({"train.py": as_flordb(VERSION_2)})
    result["run"], _, _ = timed(interp, repo, ["train.py"], tool)
    (repo / "train.py").write_text(as_flordb(today(VERSION_2, EPOCH_STATEMENT)))
    seconds, output, code = timed(interp, repo, ["-m", "flordb", "replay", "--apply", "w_norm"], tool, stdin="y\n",
                                  check=False)
    result["epoch_level"] = seconds if code == 0 and "no rows recorded" not in output else None
    result["epoch_level_output"] = output[-300:]
    # Two versions, three runs: the benchmark's scenario.
    repo = sandbox.create({"train.py": as_flordb(VERSION_1)})
    timed(interp, repo, ["train.py"], tool)
    (repo / "train.py").write_text(as_flordb(VERSION_2))
    git(repo, "commit", "-qam", "version 2")
    timed(interp, repo, ["train.py"], tool)
    timed(interp, repo, ["train.py", "--kwargs", "lr=0.02"], tool)
    (repo / "train.py").write_text(as_flordb(today(VERSION_2, EPOCH_STATEMENT)))
    seconds, output, code = timed(interp, repo, ["-m", "flordb", "replay", "--apply", "w_norm"], tool, stdin="y\n",
                                  check=False)
    aborted = (re.search(r"(?im)^.*would be overwritten.*$", output)
               or re.search(r"(?im)^.*(error|abort|exception|exited with code [1-9]).*$", output))
    result["across_versions"] = ("worked" if code == 0 and not aborted else
                                 f"failed: {aborted.group(0).strip()[:120] if aborted else f'exit {code}'}")
    result["across_seconds"] = seconds
    return result


def main() -> None:
    # --trellis-only: where the peers cannot be installed; FlorDB's column then says so.
    with_peers = "--trellis-only" not in sys.argv[1:]
    peers, versions = ensure_peers() if with_peers else (None, {"flordb": "4.0.1, not run"})
    interp = trellis_interpreter(default_trellis_python())
    sandbox = Sandbox()
    try:
        ours = trellis_side(interp, sandbox)
        theirs = flordb_side(peers, sandbox) if peers is not None else {
            "run": None, "epoch_level": None, "epoch_level_output": "not run (--trellis-only)",
            "across_versions": "not run (--trellis-only)"}
    finally:
        sandbox.close()
    newest_run = ours["run_time"]["v2 lr"]
    share = ours["epoch_level"]["wall"] / newest_run
    flor_share = theirs["epoch_level"] / theirs["run"] if theirs["epoch_level"] else None
    speedup = ours["one_worker"]["wall"] / ours["two_workers"]["wall"]
    estimates = [(name, report["estimate"], report["seconds"]) for name, report in (
        ("epoch-level, 1 run", ours["epoch_level"]), ("step-level, 3 runs, 1 worker", ours["one_worker"]),
        ("step-level, 3 runs, 2 workers", ours["two_workers"]))]
    print(f"## Hindsight replay (FlorDB {versions['flordb']})\n")
    print("| figure | target | trellis | FlorDB |")
    print("|---|---|---|---|")
    print(f"| epoch-level replay of 1 run, share of its run time | ≤ 15 % | {share:.0%}"
          f" ({ours['epoch_level']['wall']:.1f} s / {newest_run:.1f} s) | "
          + (f"{flor_share:.0%} ({theirs['epoch_level']:.1f} s / {theirs['run']:.1f} s, one-version repository)"
             if flor_share is not None else theirs["epoch_level_output"] if theirs["run"] is None
             else f"failed: {theirs['epoch_level_output']!r}") + " |")
    exact = all(status == "exact" for status in ours["statuses"])
    print(f"| replay across runs of two code versions, verified | exact | {'exact' if exact else ours['statuses']}"
          f" (3 runs) | {theirs['across_versions']} |")
    print(f"| speed-up, 3 runs (step-level, 2 epochs each), 2 workers vs 1 | ≥ 1.7× | {speedup:.2f}×"
          f" ({ours['one_worker']['wall']:.1f} s → {ours['two_workers']['wall']:.1f} s) | sequential only |")
    print(f"| record-time overhead of `checkpointing`, default budget | ≤ 5 % of loop time | {ours['overhead']:+.1%} | — |")
    for name, share_of_replay in ours["verification"].items():
        print(f"| verification, {name}, share of replay time | ≤ 5 % | {share_of_replay:.1%} | none: stores what it computes |")
    print()
    print("| replay | planned | actual | actual / planned |")
    print("|---|---|---|---|")
    for name, planned, actual in estimates:
        print(f"| {name} | {planned:.1f} s | {actual:.1f} s | {actual / planned:.2f} |")


if __name__ == "__main__":
    main()
