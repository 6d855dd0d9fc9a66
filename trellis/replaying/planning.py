"""Plan a hindsight replay: which runs, which code versions, where the new statements land,
which iterations must execute, and what it will cost, from the recorded timings.

An iteration of the checkpointed loop runs in one of two ways. ``full``: from the state after
the previous iteration (restored from its checkpoint unless the segment just computed it).
``light``: its inner loops are not executed; their effect is restored from the checkpoint at the
iteration's end, and only the rest of the body runs — possible when the new statement sits in
the checkpointed loop's body after its inner loops and nothing after them changes checkpointed
state or reads what the inner loops computed. Work is cut into segments (separate processes)
at checkpoints, so that segments of one run also run in parallel.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from trellis._errors import TrellisError
from trellis.analysis.propagation import Placement, PlacementError, find_statements, patch, place
from trellis.queries.checkpoints import received_from
from trellis.queries.runs import resolve
from trellis.store.cells import decode
from trellis.store.connection import Store
from trellis.store.schema import run_keys
from trellis.store.snapshots import source_at
from trellis.store.spans import expand
from trellis.replaying import selecting
from trellis.replaying.selecting import Condition
from trellis.replaying.worktrees import snapshot_gone

# What a segment costs beyond the run's own recorded time: interpreter start, imports before
# trellis, a worktree.
PROCESS_SECONDS = 0.3


@dataclass
class Segment:
    modes: dict[int, str]
    keep: list[int]
    prologue: bool
    tail: bool
    stop_at_loop: bool
    estimate: float


@dataclass
class RunPlan:
    uuid: str
    run_id: int
    filename: str
    commit: str | None
    argv: list[str]
    cwd: str | None
    names: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    loop: str | None = None
    placements: list[dict[str, Any]] = field(default_factory=list)
    patched: str | None = None
    segments: list[Segment] = field(default_factory=list)
    checkpoints: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # args the replay gives instead of the run's own (a device, a path); verification still judges
    overrides: dict[str, Any] = field(default_factory=dict)
    executed: int = 0
    restored: int = 0
    estimate: float = 0.0
    environment: list[str] = field(default_factory=list)
    # How the checkpointed loop runs: index -> "full"/"light", indexes whose values are kept,
    # the finest units of work with their cost, and the cost around the loop.
    modes: dict[int, str] = field(default_factory=dict)
    keep: list[int] = field(default_factory=list)
    units: list[tuple[list[int], float]] = field(default_factory=list)
    prologue: bool = False
    tail: bool = False
    prologue_cost: float = 0.0
    tail_cost: float = 0.0
    # Why iterations that need no new value still run in full: no checkpoint after the one before.
    reruns: list[str] = field(default_factory=list)
    # The conditions of --where on loops other than the checkpointed one: which values to store.
    value_filter: str | None = None
    last_index: int | None = None  # of the checkpointed loop

    @property
    def replays(self) -> bool:
        return self.reason is None and bool(self.names)


@dataclass
class Plan:
    file: str
    names: list[str]
    where: str | None
    workers: int
    runs: list[RunPlan]
    estimate: float = 0.0
    overrides: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for run in data["runs"]:
            run.pop("patched")
            run.pop("checkpoints")
        return data

    def describe(self) -> str:
        lines = [f"replay {', '.join(self.names)} from {self.file}"
                 + (f" where {self.where}" if self.where else "")]
        if self.overrides:
            given = " ".join(f"{name}={value}" for name, value in self.overrides.items())
            lines.append(f"  with {given} instead of each run's own (values that then differ are not stored)")
        for run in self.runs:
            head = f"  {run.uuid[:8]}  {run.commit[:8] if run.commit else '--------'}  "
            if not run.replays:
                lines.append(head + f"skip: {run.reason or 'nothing to replay'}")
            else:
                light = sum(mode == "light" for mode in run.modes.values())
                lines.append(
                    head + f"{', '.join(run.names)}: {run.executed - light} iterations run in full,"
                    f" {light} with inner loops restored, {run.restored} skipped;"
                    f" {len(run.segments)} segment(s), ~{run.estimate:.1f} s"
                )
                for why in run.reruns:
                    lines.append(f"      {why}")
                for placement in run.placements:
                    where = " > ".join(placement["loops"]) or placement["after_loop"] or "top level"
                    how = "inner loops restored" if placement["light"] else (placement["why_full"] or "")
                    lines.append(f"      {', '.join(placement['names'])} at line {placement['line']}"
                                 f" ({where}{'; ' + how if how else ''})")
            for name, why in run.skipped.items():
                lines.append(f"      {name} skipped: {why}")
            for difference in run.environment[:5]:
                lines.append(f"      environment: {difference}")
            if len(run.environment) > 5:
                lines.append(f"      environment: and {len(run.environment) - 5} more package differences")
        active = [r for r in self.runs if r.replays]
        lines.append(
            f"{len(active)} run(s), {sum(len(r.segments) for r in active)} segment(s) on"
            f" {self.workers} worker(s): about {self.estimate:.1f} s"
        )
        return "\n".join(lines)


def plan_replay(
    store: Store,
    names: Sequence[str],
    file: str | None = None,
    runs: Sequence[str] | None = None,
    where: str | None = None,
    workers: int = 1,
    force: bool = False,
    trusted: bool = False,
    include_failed: bool = False,
    overrides: dict[str, Any] | None = None,
) -> Plan:
    names = list(dict.fromkeys(names))
    if not names:
        raise TrellisError("name the values to replay, e.g. trellis replay grad_norm")
    overrides = dict(overrides or {})
    for name in overrides:
        if type(name) is not str or not name.isidentifier():
            raise TrellisError(f"override {name!r}: give an arg's name, like device=cpu")
    filename, today = _todays_script(store, names, file)
    conditions = selecting.parse(where)
    selected = [resolve(store, ref) for ref in runs] if runs else [
        resolve(store, uuid) for (uuid,) in store.execute(
            "SELECT uuid FROM runs WHERE filename = ? AND kind = 'script' AND status != 'running'"
            " ORDER BY started", (filename,))
    ]
    if not selected:
        raise TrellisError(f"no recorded runs of {filename} to replay into")
    packages = _current_packages()
    plans = [_plan_run(store, run, filename, today, names, conditions, force, packages, trusted,
                       include_failed)
             for run in selected]
    active = [plan for plan in plans if plan.replays]
    for run_plan in active:
        run_plan.overrides = overrides
    _cut_into_segments(active, workers)
    plan = Plan(filename, names, where, workers, plans, overrides=overrides)
    plan.estimate = _makespan([s.estimate for r in active for s in r.segments], workers)
    return plan


# -- the script and its runs --------------------------------------------------------------------


def _todays_script(store: Store, names: list[str], file: str | None) -> tuple[str, str]:
    if file is not None:
        path = Path(file)
        if not path.is_absolute():
            path = (Path.cwd() / path).resolve()
        try:
            filename = str(path.relative_to(store.project))
        except ValueError:
            raise TrellisError(f"{file} is outside the project at {store.project}") from None
        if not path.is_file():
            raise TrellisError(f"{file} does not exist")
        source = path.read_text()
        if not find_statements(source, names, filename):
            raise TrellisError(f"{filename} has no trellis.log of {', '.join(names)}; add the statement first")
        return filename, source
    candidates = []
    for (filename,) in store.execute(
        "SELECT DISTINCT filename FROM runs WHERE kind = 'script' AND filename IS NOT NULL"
    ):
        path = store.project / filename
        if path.is_file():
            source = path.read_text()
            try:
                if find_statements(source, names, filename):
                    candidates.append((filename, source))
            except PlacementError:
                continue
    if not candidates:
        raise TrellisError(
            f"no recorded script logs {', '.join(names)} today; add trellis.log({names[0]!r}, ...)"
            " to the script first, or name it with --file"
        )
    if len(candidates) > 1:
        raise TrellisError(
            f"several scripts log {', '.join(names)}: {', '.join(c for c, _ in candidates)}; pick one with --file"
        )
    return candidates[0]


def _plan_run(store: Store, run: dict[str, Any], filename: str, today: str, names: list[str],
              conditions: list[Condition], force: bool,
              packages: dict[str, str], trusted: bool = False, include_failed: bool = False) -> RunPlan:
    plan = RunPlan(run["uuid"], run["id"], filename, run["git_commit"],
                   json.loads(run["argv"] or "[]"), run["cwd"])
    if run["kind"] != "script":
        plan.reason = f"a {run['kind']} run; only scripts replay"
        return plan
    if run["status"] in ("failed", "interrupted") and not include_failed:
        plan.reason = f"the run {run['status']} (--include-failed to try it)"
        return plan
    source = None if trusted else received_from(store, run["id"])
    if source is not None:
        plan.reason = (f"it came from {source}: replaying it runs its recorded command line and loads its"
                       " checkpoints; add --trust if you trust its source")
        return plan
    if not run["git_commit"]:
        plan.reason = "recorded outside git, so there is no snapshot of its code"
        return plan
    if any(arg.endswith("***") for arg in plan.argv):
        plan.reason = "it had secret arguments, which were not recorded"
        return plan
    old = source_at(store.project, run["git_commit"], filename)
    if old is None:
        plan.reason = snapshot_gone(run["git_commit"])
        return plan
    wanted = _not_yet_logged(store, run["id"], names, force, plan.skipped)
    if not wanted:
        return plan
    loops = store.execute("SELECT DISTINCT loop FROM checkpoints WHERE run = ?", (run["id"],))
    plan.loop = loops[0][0] if len(loops) == 1 else None
    placements: list[Placement] = []
    try:
        statements = find_statements(today, wanted, filename)
    except PlacementError as error:
        plan.reason = str(error)
        return plan
    for found in statements:
        try:
            placements.append(place(today, found, old, plan.loop, names=wanted, filename=filename))
        except PlacementError as error:
            for name in found.names:
                plan.skipped.setdefault(name, f"cannot place it in this version: {error}")
    try:
        plan.patched = patch(old, placements, filename) if placements else None
    except PlacementError as error:
        plan.reason = str(error)
        return plan
    plan.names = [n for n in wanted if any(n in p.names for p in placements)]
    plan.placements = [asdict(p) for p in placements]
    if not plan.names:
        return plan
    plan.params = _historical_params(store, run["id"])
    plan.environment = _environment_changes(store, run, packages)
    plan.reason = _unknown_loop(store, run["id"], conditions)
    if plan.reason is None:
        _choose_iterations(store, run, plan, placements, conditions)
    return plan


def _not_yet_logged(store: Store, run: int, names: list[str], force: bool, skipped: dict[str, str]) -> list[str]:
    low, high = run_keys(run)
    marks = ", ".join("?" * len(names))
    present = store.execute(
        f"SELECT DISTINCT name, source FROM logs WHERE id >= ? AND id < ? AND name IN ({marks})",
        (low, high, *names),
    )
    wanted = list(names)
    for name, source in present:
        if source == "forward":
            skipped[name] = "the run logged it when it ran"
        elif not force:
            skipped[name] = "replayed already (force to replay it again)"
        else:
            continue
        if name in wanted:
            wanted.remove(name)
    return wanted


def _historical_params(store: Store, run: int) -> dict[str, Any]:
    rows = store.execute("SELECT name, kind, int_value, float_value, text_value FROM params WHERE run = ?", (run,))
    values = {name: decode(kind, i, f, t) for name, kind, i, f, t in rows}
    return {name: value for name, value in values.items() if value != "***"}


def _current_packages() -> dict[str, str]:
    from trellis.capture.environment import describe_environment

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trellis"
    return describe_environment(cache).get("packages") or {}


def _environment_changes(store: Store, run: dict[str, Any], packages: dict[str, str]) -> list[str]:
    if run["environment_id"] is None:
        return []
    found = store.execute("SELECT data FROM environments WHERE id = ?", (run["environment_id"],))
    recorded = json.loads(found[0][0]).get("packages") or {} if found else {}
    changes = []
    for name in sorted(set(recorded) | set(packages)):
        then, now = recorded.get(name), packages.get(name)
        if then != now:
            changes.append(f"{name} {then or 'absent'} then, {now or 'absent'} now")
    return changes


# -- which iterations execute -------------------------------------------------------------------


def _unknown_loop(store: Store, run: int, conditions: list[Condition]) -> str | None:
    """Why the run cannot be replayed as ``--where`` asks: a loop it names that the run did not run."""
    ran = {loop for (loop,) in store.execute("SELECT DISTINCT loop FROM loops WHERE run = ?", (run,))}
    missing = sorted({c.loop for c in conditions} - ran)
    return f"--where names the loop {missing[0]!r}, which this run did not run" if missing else None


def _ranges(indexes: Sequence[int]) -> str:
    """``1-3, 5`` for [1, 2, 3, 5]."""
    spans: list[list[int]] = []
    for index in sorted(indexes):
        if spans and spans[-1][1] == index - 1:
            spans[-1][1] = index
        else:
            spans.append([index, index])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _choose_iterations(store: Store, run: dict[str, Any], plan: RunPlan, placements: list[Placement],
                       conditions: list[Condition]) -> None:
    loop = plan.loop
    low, high = run_keys(run["id"])
    rows = [] if loop is None else [
        (ident, idx, started, started if ended is None else ended)
        for row in store.execute(
            "SELECT id, idx, started, ended, count, starts_us FROM iterations"
            " WHERE id >= ? AND id < ? AND loop = ? AND parent = ? ORDER BY id",
            (low, high, loop, low),
        )
        for ident, idx, started, ended in expand(*row)
    ]
    ended = run["ended"] or run["committed"] or run["started"]
    if not rows:
        # Without checkpoints the run replays whole, from its start.
        plan.loop = None
        plan.value_filter = selecting.joined(conditions)
        plan.segments = [Segment({}, [], True, True, False, PROCESS_SECONDS + ended - run["started"])]
        plan.executed = 1
        return
    indexes = [idx for _, idx, _, _ in rows]
    plan.last_index = indexes[-1]
    duration = {idx: end - start for _, idx, start, end in rows}
    ident = {idx: i for i, idx, _, _ in rows}
    # The iterations of a span are back to back, so a row's ended - started is their total.
    inner_rows = store.execute(
        "SELECT parent, SUM(COALESCE(ended, started) - started) FROM iterations"
        " WHERE id >= ? AND id < ? AND depth = 1 GROUP BY parent",
        (low, high),
    )
    members = set(ident.values())
    inner = {parent: seconds for parent, seconds in inner_rows if parent in members}
    saved: dict[int, dict[str, list[str]]] = {}
    restore_cost: dict[int, float] = {}
    for idx, name, digest, format, seconds in store.execute(
        "SELECT idx, name, object, format, seconds FROM checkpoints WHERE run = ? AND loop = ?",
        (run["id"], loop),
    ):
        saved.setdefault(idx, {})[name] = [format, digest]
        restore_cost[idx] = restore_cost.get(idx, 0.0) + seconds
    plan.checkpoints = saved
    wanted = [k for k in indexes if selecting.holds(conditions, loop, k, indexes[-1])]
    plan.value_filter = selecting.joined(c for c in conditions if c.loop != loop)
    whole = any(p.why_full and loop not in p.loops and p.after_loop is None for p in placements)
    needs_full = whole or any(p.why_full and loop in p.loops for p in placements)
    needs_light = any(p.light for p in placements)
    prologue = whole or any(p.after_loop == "before" for p in placements)
    tail = whole or any(p.after_loop == "after" for p in placements)
    if whole:
        wanted = list(indexes)
    modes: dict[int, str] = {}

    def run_fully_up_to(k: int) -> None:
        start = max((c for c in saved if c < k), default=-1)
        for j in range(start + 1, k + 1):
            modes[j] = "full"

    for k in wanted:
        if needs_full or (needs_light and k not in saved):
            run_fully_up_to(k)
        elif needs_light:
            modes.setdefault(k, "light")
    last = indexes[-1]
    if tail and last not in saved and (max(modes, default=-1) != last):
        run_fully_up_to(last)
    keep = sorted(wanted) if (needs_full or needs_light) else []
    unsaved = [k for k in wanted if needs_light and not needs_full and k not in saved]
    if unsaved:
        plan.reruns.append(
            f"{loop} {_ranges(unsaved)} run in full, not with inner loops restored: the run kept checkpoints"
            f" after {len(saved)} of {len(indexes)} iterations (TRELLIS_CHECKPOINT_SHARE)")
    rebuilt = [k for k, mode in modes.items() if mode == "full" and k not in keep]
    if rebuilt:
        plan.reruns.append(
            f"{loop} {_ranges(rebuilt)} run only to rebuild the state of later ones, from the checkpoint"
            " before them")
    plan.executed = len(modes)
    plan.restored = len(indexes) - plan.executed
    prologue_cost = rows[0][2] - run["started"] + PROCESS_SECONDS
    tail_cost = max(ended - rows[-1][3], 0.0)

    def cost(k: int, mode: str) -> float:
        if mode == "light":
            return duration[k] - inner.get(ident[k], 0.0) + restore_cost.get(k, 0.0)
        return duration[k]

    # The finest units: a new one may start wherever the state it needs is saved.
    units: list[list[int]] = []
    for k in sorted(modes):
        starts_here = modes[k] == "light" or k == 0 or (k - 1) in saved
        if units and not starts_here:
            units[-1].append(k)
        else:
            units.append([k])
    plan.units = [
        (unit, sum(cost(k, modes[k]) for k in unit)
         + (restore_cost.get(unit[0] - 1, 0.0) if modes[unit[0]] == "full" and unit[0] > 0 else 0.0))
        for unit in units
    ]
    plan.modes, plan.keep = modes, keep
    plan.prologue_cost, plan.tail_cost = prologue_cost, tail_cost
    plan.prologue, plan.tail = prologue, tail


def _cut_into_segments(plans: list[RunPlan], workers: int) -> None:
    """Split each run's units into contiguous segments, more of them when workers would idle."""
    pending = [p for p in plans if not p.segments]
    totals = {id(p): sum(c for _, c in p.units) + p.prologue_cost for p in pending}
    grand = sum(totals.values()) or 1.0
    for plan in pending:
        units, prologue, tail = plan.units, plan.prologue, plan.tail
        if workers <= 1 or not units:
            count = 1
        else:
            count = min(len(units), max(1, math.ceil(2 * workers * totals[id(plan)] / grand)))
        groups = _balanced(units, count)
        for number, group in enumerate(groups):
            indexes = [k for unit, _ in group for k in unit]
            first, final = number == 0, number == len(groups) - 1
            modes = {k: plan.modes[k] for k in indexes}
            keep = [k for k in plan.keep if k in modes]
            estimate = plan.prologue_cost + sum(c for _, c in group)
            if final and tail:
                estimate += plan.tail_cost
            plan.segments.append(Segment(
                modes, keep, prologue and first, tail and final,
                stop_at_loop=not modes and not (tail and final), estimate=estimate,
            ))
        plan.estimate = sum(s.estimate for s in plan.segments)


def _balanced(units: list[tuple[list[int], float]], count: int) -> list[list[tuple[list[int], float]]]:
    if not units:
        return [[]]
    total = sum(c for _, c in units)
    groups: list[list] = [[]]
    done = 0.0
    for position, (unit, unit_cost) in enumerate(units):
        remaining_units = len(units) - position
        remaining_groups = count - len(groups)
        boundary = total * len(groups) / count
        if groups[-1] and remaining_groups > 0 and (done + unit_cost / 2 > boundary or remaining_units <= remaining_groups):
            groups.append([])
        groups[-1].append((unit, unit_cost))
        done += unit_cost
    return groups


def _makespan(costs: list[float], workers: int) -> float:
    """Longest-first list scheduling: when the last segment would finish on ``workers``."""
    loads = [0.0] * max(1, workers)
    for cost in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += cost
    return max(loads)
