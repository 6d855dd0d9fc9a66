"""Carry out a replay plan: each segment in its own worktree and process, through an Executor.

The parent prepares worktrees (git operations stay sequential), hands each segment to a
``concurrent.futures.Executor`` (a process pool, or Dask's for a cluster), and stores each
run's values once its segments are done, in one transaction: a failed segment costs only its own
values. Replayed values live in the upper half of their run's key range with source
``replay``; storing a value again replaces the earlier replay of it, so a replay repeated does
not duplicate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from trellis import worktrees
from trellis._errors import TrellisError
from trellis.hindsight.planning import Plan, RunPlan, Segment
from trellis.store import objects
from trellis.store.connection import Store
from trellis.store.replayed import put_replayed
from trellis.store.schema import run_keys


def run_segment(job: dict[str, Any]) -> dict[str, Any]:
    """Run one prepared segment and return what it logged (runs on an executor's worker)."""
    started = time.perf_counter()
    env = {**os.environ, **job["env"]}
    done = subprocess.run(job["command"], cwd=job["cwd"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    result_path = Path(job["result"])
    if done.returncode != 0 or not result_path.exists():
        last = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "error": f"exit {done.returncode}: {last}", "seconds": seconds}
    result = json.loads(result_path.read_text())
    return {"ok": True, "seconds": seconds, **result}


def execute(store: Store, plan: Plan, executor: Executor | str | None = None,
            progress: bool = True, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the plan's segments and store their values. ``env`` is set for every segment, on
    top of the environment of whatever runs it (a Dask worker's is the worker's own)."""
    active = [run for run in plan.runs if run.replays]
    if not active:
        raise TrellisError("nothing to replay: " + "; ".join(
            f"{run.uuid[:8]} {run.reason or ', '.join(f'{n}: {w}' for n, w in run.skipped.items()) or 'no new statements'}"
            for run in plan.runs
        ))
    folder = Path(tempfile.mkdtemp(prefix="trellis-replay-"))
    trees: list[Path] = []
    started = time.perf_counter()
    reports = {run.uuid: _report(run) for run in active}
    try:
        for run in active:
            reports[run.uuid]["code"] = objects.put(store.objects, [run.patched.encode()])[0]  # type: ignore[union-attr]
        # Longest first, and each segment starts as soon as its worktree exists, so the git work
        # of the next segments overlaps the running ones.
        order = sorted(((run, number, segment) for run in active for number, segment in enumerate(run.segments)),
                       key=lambda item: -item[2].estimate)
        pool, owned = _executor(executor, plan.workers)
        try:
            futures = {}
            for run, number, segment in order:
                stem = folder / f"{run.uuid[:8]}-{number}"
                tree = worktrees.check_out(store.project, run.commit, stem)  # type: ignore[arg-type]
                trees.append(tree)
                job = _prepare(store, run, segment, tree, stem,
                               {**(env or {}), **_threads_each(plan.workers, executor)})
                futures[pool.submit(run_segment, job)] = (run, number)
            outcomes: dict[str, dict[int, dict[str, Any]]] = {run.uuid: {} for run in active}
            finished = as_completed(futures)
            if progress:
                from tqdm import tqdm

                finished = tqdm(finished, total=len(futures), desc="replay segments", leave=False)
            for future in finished:
                run, number = futures[future]
                try:
                    outcome = future.result()
                except Exception as error:  # the worker itself failed
                    outcome = {"ok": False, "error": f"{type(error).__name__}: {error}", "seconds": 0.0}
                outcomes[run.uuid][number] = outcome
                if len(outcomes[run.uuid]) == len(run.segments):
                    _finish_run(store, run, outcomes.pop(run.uuid), reports[run.uuid])
        finally:
            if owned:
                pool.shutdown()
    finally:
        for tree in trees:
            worktrees.remove(store.project, tree)
        shutil.rmtree(folder, ignore_errors=True)
    seconds = time.perf_counter() - started
    for run in active:
        _record(store, run, reports[run.uuid], seconds)
    return {"seconds": seconds, "estimate": plan.estimate, "runs": list(reports.values())}


def _finish_run(store: Store, run: RunPlan, outcomes: dict[int, dict[str, Any]], report: dict[str, Any]) -> None:
    """Store the values of a run's successful segments, in the order a forward run logs them."""
    values = []
    for number in sorted(outcomes):
        outcome = outcomes[number]
        if not outcome["ok"]:
            report["failed"].append(outcome["error"])
            continue
        values.extend(outcome["values"])
        report["problems"].extend(outcome["problems"])
        report["restores"] += outcome["restores"]
    if values:
        report["values"], report["unmatched"] = _store_values(store, run, values)


def _report(run: RunPlan) -> dict[str, Any]:
    return {"run": run.uuid, "names": run.names, "segments": len(run.segments), "values": 0,
            "failed": [], "unmatched": 0, "problems": [], "restores": 0, "estimate": run.estimate,
            "started": time.time()}


def _executor(executor: Executor | str | None, workers: int) -> tuple[Executor, bool]:
    if isinstance(executor, Executor):
        return executor, False
    if isinstance(executor, str) and executor.startswith(("dask://", "tcp://")):
        try:
            from distributed import Client
        except ImportError:
            raise TrellisError("a Dask executor needs distributed: pip install 'trellis[replay]'") from None
        client = Client(executor.replace("dask://", "tcp://", 1), set_as_default=False)
        return _ClosingExecutor(client), True
    if executor not in (None, "process"):
        raise TrellisError(f"unknown executor {executor!r}; use 'process' or dask://host:port")
    return ProcessPoolExecutor(max_workers=max(1, workers)), True


class _ClosingExecutor(Executor):
    """Dask's executor, closing its client when shut down."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.inner = client.get_executor(pure=False)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return self.inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, **kwargs: Any) -> None:
        self.inner.shutdown(wait=wait)
        self.client.close()


def _threads_each(workers: int, executor: Executor | str | None) -> dict[str, str]:
    """Math-library threads per segment, so that parallel segments do not oversubscribe the
    cores (BLAS threads of two processes contending slow both several times over)."""
    if executor not in (None, "process") or workers <= 1:
        return {}
    share = str(max(1, (os.cpu_count() or 1) // workers))
    return {name: os.environ.get(name, share) for name in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")}


def _prepare(store: Store, run: RunPlan, segment: Segment, tree: Path, stem: Path,
             variables: dict[str, str]) -> dict[str, Any]:
    script = tree / run.filename
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(run.patched or "")
    worktrees.bring_inputs(store, {"id": run.run_id}, tree)
    spec = {
        "names": run.names, "loop": run.loop, "modes": segment.modes, "keep": segment.keep,
        "prologue": segment.prologue, "tail": segment.tail, "stop_at_loop": segment.stop_at_loop,
        "checkpoints": {k: v for k, v in run.checkpoints.items()}, "params": run.params,
        "result": str(stem.with_suffix(".result.json")),
    }
    spec_path = stem.with_suffix(".json")
    spec_path.write_text(json.dumps(spec))
    return {
        "command": [sys.executable, *run.argv], "cwd": str(tree / (run.cwd or ".")),
        # The store too, for scripts that read it (a dataframe of earlier runs, a checkpoint).
        "env": {**variables, "TRELLIS_REPLAY": str(spec_path), "TRELLIS_PROGRESS": "0",
                "TRELLIS_STORE": store.location, "TRELLIS_OBJECTS": str(store.objects)},
        "result": spec["result"],
    }


def _store_values(store: Store, run: RunPlan, values: list[list[Any]]) -> tuple[int, int]:
    """Write values at the original run's coordinates, in one transaction; (stored, unmatched)."""
    paths = _iteration_paths(store, run.run_id)
    rows, unmatched = [], 0
    for name, path, kind, int_value, float_value, text_value in values:
        iteration = paths.get(tuple(tuple(step) for step in path))
        if iteration is None:
            unmatched += 1
            continue
        rows.append([name, iteration, kind, int_value, float_value, text_value])
    with store.transaction():
        put_replayed(store, run.run_id, rows)
    return len(rows), unmatched


def _iteration_paths(store: Store, run: int) -> dict[tuple, int]:
    """Each iteration's key by its path of (loop, instance, index) from the top level."""
    low, high = run_keys(run)
    by_id: dict[int, tuple] = {low: ()}
    instances: dict[tuple[int, str], int] = {}
    paths: dict[tuple, int] = {(): low}
    for first, parent, loop, first_idx, count in store.execute(
        "SELECT id, parent, loop, idx, count FROM iterations WHERE id >= ? AND id < ? ORDER BY id",
        (low, high),
    ):
        base = by_id.get(parent)
        if base is None:
            continue
        key = (parent, loop)
        for ident, idx in zip(range(first, first + count), range(first_idx, first_idx + count)):
            if idx == 0 or key not in instances:
                instances[key] = instances.get(key, -1) + 1
            path = base + ((loop, instances[key], idx),)
            by_id[ident] = path
            paths[path] = ident
    return paths


def _record(store: Store, run: RunPlan, report: dict[str, Any], seconds: float) -> None:
    report["status"] = "ok" if not report["failed"] else ("failed" if not report["values"] else "partial")
    with store.transaction():
        store.execute(
            "INSERT INTO replays (run, names, code, git_commit, started, ended, status, segments, failed,"
            " stored, estimate, seconds, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run.run_id, json.dumps(run.names), report["code"], run.commit, report["started"], time.time(),
             report["status"], len(run.segments), len(report["failed"]), report["values"], run.estimate,
             seconds, "\n".join(report["failed"]) or None),
        )
