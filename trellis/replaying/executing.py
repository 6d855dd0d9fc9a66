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
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from trellis.replaying import selecting, worktrees
from trellis._errors import TrellisError
from trellis.replaying.planning import Plan, RunPlan, Segment
from trellis.replaying.verifying import recorded_values, verify
from trellis.store import objects
from trellis.store.connection import Store
from trellis.store.replayed import REPLAY_KEYS, put_replayed
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
            progress: bool = True, env: dict[str, str] | None = None,
            tolerance: float = 0.0) -> dict[str, Any]:
    """Run the plan's segments, verify each, and store the values of those that verify.

    A segment whose recomputed values differ from the run's (bit for bit for floats, or within
    ``tolerance`` of the larger magnitude) runs again in full from an earlier checkpoint, then
    earlier ones, down to the run's start; if it never verifies, its values are not stored.
    ``env`` is set for every segment, on top of the environment of whatever runs it (a Dask
    worker's is the worker's own)."""
    active = [run for run in plan.runs if run.replays]
    if not active:
        raise TrellisError("nothing to replay: " + "; ".join(
            f"{run.uuid[:8]} {run.reason or ', '.join(f'{n}: {w}' for n, w in run.skipped.items()) or 'no new statements'}"
            for run in plan.runs
        ))
    folder = Path(tempfile.mkdtemp(prefix="trellis-replay-"))
    trees: dict[tuple[str, int], Path] = {}
    started = time.perf_counter()
    reports = {run.uuid: _report(run) for run in active}
    variables = {**(env or {}), **_threads_each(plan.workers, executor)}
    try:
        for run in active:
            reports[run.uuid]["code"] = objects.put(store.objects, [run.patched.encode()])[0]  # type: ignore[union-attr]
        checking = time.perf_counter()
        recorded = {run.uuid: _recorded(store, run) for run in active}
        verification = time.perf_counter() - checking
        # Longest first, and each segment starts as soon as its worktree exists, so the git work
        # of the next segments overlaps the running ones.
        order = sorted(((run, number, segment) for run in active for number, segment in enumerate(run.segments)),
                       key=lambda item: -item[2].estimate)
        pool, owned = _executor(executor, plan.workers)
        try:
            pending: dict[Future, _Attempt] = {}

            def submit(attempt: _Attempt) -> None:
                key = (attempt.run.uuid, attempt.number)
                stem = folder / f"{attempt.run.uuid[:8]}-{attempt.number}-{attempt.tries}"
                if key not in trees:
                    trees[key] = worktrees.check_out(store.project, attempt.run.commit, stem)  # type: ignore[arg-type]
                job = _prepare(store, attempt.run, attempt.segment, trees[key], stem, variables)
                pending[pool.submit(run_segment, job)] = attempt

            for run, number, segment in order:
                submit(_Attempt(run, number, segment))
            outcomes: dict[str, dict[int, dict[str, Any]]] = {run.uuid: {} for run in active}
            bar = None
            if progress:
                from tqdm import tqdm

                # disable=None: no bar where stderr is not a terminal (a log file, CI)
                bar = tqdm(total=len(order), desc="replay segments", leave=False, disable=None)
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in done:
                    attempt = pending.pop(future)
                    try:
                        outcome = future.result()
                    except Exception as error:  # the worker itself failed
                        outcome = {"ok": False, "error": f"{type(error).__name__}: {error}", "seconds": 0.0}
                    run = attempt.run
                    checking = time.perf_counter()
                    again = outcome["ok"] and _judge(attempt, outcome, recorded[run.uuid], tolerance)
                    verification += time.perf_counter() - checking
                    if again:
                        submit(attempt.earlier())
                        continue
                    outcomes[run.uuid][attempt.number] = outcome
                    if bar is not None:
                        bar.update()
                    if len(outcomes[run.uuid]) == len(run.segments):
                        _finish_run(store, run, outcomes.pop(run.uuid), reports[run.uuid])
            if bar is not None:
                bar.close()
        finally:
            if owned:
                pool.shutdown()
    finally:
        for tree in trees.values():
            worktrees.remove(store.project, tree)
        shutil.rmtree(folder, ignore_errors=True)
    seconds = time.perf_counter() - started
    for run in active:
        _record(store, run, reports[run.uuid], seconds)
    skipped = [{"run": run.uuid, "reason": run.reason} for run in plan.runs if run.reason]
    # Time spent comparing in this process; re-runs a mismatch caused are in each run's reruns.
    return {"seconds": seconds, "estimate": plan.estimate, "runs": list(reports.values()), "skipped": skipped,
            "verification_seconds": verification}


class _Attempt:
    """One try at a segment: as planned, or in full from an earlier checkpoint (``resumed``,
    -1 for the run's start) after the tries before it computed other values than the run."""

    def __init__(self, run: RunPlan, number: int, segment: Segment, tries: int = 0,
                 resumed: int | None = None, ladder: list[int] | None = None,
                 mismatches: list[str] | None = None) -> None:
        self.run, self.number, self.segment, self.tries = run, number, segment, tries
        self.resumed = _resumes_after(run, segment) if resumed is None else resumed
        self.ladder = ladder
        self.mismatches = mismatches or []

    def full(self) -> set[int]:
        return {k for k, mode in self.segment.modes.items() if mode == "full"}

    def can_go_earlier(self) -> bool:
        if self.resumed < 0 or (not self.segment.modes and not self.segment.tail):
            return False
        return self.run.last_index is not None

    def earlier(self) -> "_Attempt":
        """The next try: earlier checkpoints at growing distances (1, 2, 4, ... back), the last
        try from the start of the run."""
        ladder = self.ladder
        if ladder is None:
            ladder = sorted((k for k in self.run.checkpoints if k < self.resumed), reverse=True) + [-1]
        start = ladder[min(2 ** self.tries - 1, len(ladder) - 1)]
        end = max(self.segment.modes) if self.segment.modes else self.run.last_index
        modes = {k: "full" for k in range(start + 1, end + 1)}  # type: ignore[operator]
        segment = Segment(modes, list(self.segment.keep), self.segment.prologue, self.segment.tail,
                          stop_at_loop=False, estimate=self.segment.estimate)
        return _Attempt(self.run, self.number, segment, self.tries + 1, start, ladder, self.mismatches)


def _resumes_after(run: RunPlan, segment: Segment) -> int:
    """The checkpoint a segment starts from as planned; -1: the run's start."""
    if not segment.modes:
        return -1 if not segment.tail or run.last_index is None else run.last_index
    first = min(segment.modes)
    return first if segment.modes[first] == "light" else first - 1


def _judge(attempt: _Attempt, outcome: dict[str, Any], recorded: dict, tolerance: float) -> bool:
    """Verify a finished try; True when it must be tried again from an earlier point."""
    verdict = verify(outcome.get("checks", []), recorded, attempt.run.loop, attempt.full(),
                     outcome.get("reached_end", False), tolerance)
    outcome["compared"] = verdict.compared
    outcome["resumed"] = attempt.resumed
    if verdict.exact:
        if attempt.tries:
            outcome["verified"] = "rerun"
        elif verdict.compared:
            outcome["verified"] = "exact"
        else:
            # Nothing the run logged was recomputed: values taken from their own iterations'
            # checkpoints are as the run saved them; anything that resumed from an earlier one
            # could not be checked.
            light = bool(attempt.segment.modes) and not attempt.full()
            outcome["verified"] = "checkpoint" if light else "unchecked"
        outcome["mismatches"] = attempt.mismatches
        return False
    attempt.mismatches.append(f"resuming {_after(attempt.run, attempt.resumed)}: {verdict.mismatch}")
    if attempt.can_go_earlier():
        return True
    outcome["verified"] = "inexact"
    outcome["mismatch"] = verdict.mismatch
    outcome["mismatches"] = attempt.mismatches
    return False


def _after(run: RunPlan, index: int) -> str:
    return "from the start" if index < 0 else f"after {run.loop} {index}"


def _recorded(store: Store, run: RunPlan) -> dict:
    """The values the run logged itself, by name and coordinates, to verify segments with."""
    low, _ = run_keys(run.run_id)
    paths = {ident: path for path, ident in _iteration_paths(store, run.run_id).items()}
    marks = ", ".join("?" * len(run.names))
    rows = store.execute(
        "SELECT name, iteration, kind, int_value, float_value, text_value FROM logs"
        f" WHERE id >= ? AND id < ? AND source = 'forward' AND name NOT IN ({marks}) ORDER BY id",
        (low, low + REPLAY_KEYS, *run.names),
    )
    return recorded_values(rows, paths)


def _finish_run(store: Store, run: RunPlan, outcomes: dict[int, dict[str, Any]], report: dict[str, Any]) -> None:
    """Store the values of a run's verified segments, in the order a forward run logs them."""
    values = []
    for number in sorted(outcomes):
        outcome = outcomes[number]
        if not outcome["ok"]:
            report["failed"].append(outcome["error"])
            continue
        report["problems"].extend(outcome["problems"])
        report["restores"] += outcome["restores"]
        report["compared"] += outcome.get("compared", 0)
        verified = outcome.get("verified", "unchecked")
        report["segments_by_verification"][verified] = report["segments_by_verification"].get(verified, 0) + 1
        if outcome.get("mismatches") and verified != "inexact":
            report["reruns"].append(f"{outcome['mismatches'][0]}; exact "
                                    f"{_after(run, outcome['resumed'])}")
        if verified == "inexact":
            report["mismatch"] = report["mismatch"] or outcome["mismatch"]
            report["not_stored"] += len(outcome["values"])
            continue
        values.extend([*value, verified] for value in outcome["values"])
    if values:
        report["values"], report["unmatched"] = _store_values(store, run, values)


# Worst first: a run's status is that of its least verified segment; values taken from their
# own iterations' checkpoints count as exact from checkpoints.
VERIFICATION_ORDER = ("inexact", "unchecked", "rerun", "exact")
RUN_STATUS = {"checkpoint": "exact"}


def _report(run: RunPlan) -> dict[str, Any]:
    return {"run": run.uuid, "names": run.names, "segments": len(run.segments), "values": 0,
            "failed": [], "unmatched": 0, "problems": [], "restores": 0, "estimate": run.estimate,
            "started": time.time(), "compared": 0, "segments_by_verification": {}, "reruns": [],
            "mismatch": None, "not_stored": 0}


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
        "overrides": run.overrides,
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
    conditions = selecting.parse(run.value_filter)
    lasts = selecting.last_indexes(paths) if conditions else {}
    rows, unmatched = [], 0
    for name, path, kind, int_value, float_value, text_value, verified in values:
        path = tuple(tuple(step) for step in path)
        iteration = paths.get(path)
        if iteration is None:
            unmatched += 1
            continue
        if conditions and not selecting.keeps(conditions, path, lasts):
            continue  # computed on the way to what --where asked for
        rows.append([name, iteration, kind, int_value, float_value, text_value, verified])
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
    report["status"] = _status(report)
    with store.transaction():
        store.execute(
            "INSERT INTO replays (run, names, code, git_commit, started, ended, status, segments, failed,"
            " stored, estimate, seconds, error, overrides) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run.run_id, json.dumps(run.names), report["code"], run.commit, report["started"], time.time(),
             report["status"], len(run.segments), len(report["failed"]), report["values"], run.estimate,
             seconds, "\n".join(report["failed"] + ([report["mismatch"]] if report["mismatch"] else [])) or None,
             json.dumps(run.overrides, default=str) if run.overrides else None),
        )


def _status(report: dict[str, Any]) -> str:
    """``failed`` (every segment failed), ``partial`` (some did), or how the values verified:
    ``inexact`` (some segment never verified: its values are not stored), ``unchecked``,
    ``rerun`` (exact after re-running from an earlier point), ``exact``."""
    verified = {RUN_STATUS.get(status, status) for status in report["segments_by_verification"]}
    if report["failed"]:
        return "failed" if not report["values"] else "partial"
    return next((status for status in VERIFICATION_ORDER if status in verified), "exact")
