"""Benchmark trellis against its peers, FlorDB and MLflow, and print a markdown table.

    python benchmarks/run.py [--quick] [--python PATH] [--tools trellis,flordb,mlflow]

The peers are installed (once) into benchmarks/.peers/, a virtualenv of their own,
from benchmarks/peers.txt. trellis runs with --python: by default the project's
.venv interpreter if there is one, else this one, with the repository root on
PYTHONPATH. Every measurement is a fresh process in a fresh git repository; the
table shows medians. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness import BENCH_DIR, MeasurementFailed, Interpreter, Sandbox, run_script, wall_time, workload

REPO_ROOT = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / ".peers"
PEERS_FILE = BENCH_DIR / "peers.txt"
TOOLS = ("trellis", "flordb", "mlflow")

# Figure 4: the store read back holds RUNS runs of log_commit.py's 100k values.
RUNS = 10
VALUES_PER_RUN = 100_000

# FlorDB's loop draws tqdm progress bars; tqdm reads TQDM_DISABLE from the
# environment. flor.log's own echo of every value (tqdm.write) has no switch.
FLOR_QUIET = {"TQDM_DISABLE": "1"}


# --------------------------------------------------------------------------- setup


def peer_requirements() -> list[tuple[str, str]]:
    pins = []
    for line in PEERS_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins.append((name, version))
    return pins


def installed_versions(python: Path, names: list[str]) -> dict[str, str] | None:
    """Versions of `names` in `python`'s environment, or None if one is missing."""
    code = (
        "import importlib.metadata as m, sys\n"
        "print(' '.join(m.version(n) for n in sys.argv[1:]))"
    )
    proc = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return None
    return dict(zip(names, proc.stdout.split()))


def ensure_peers() -> tuple[Interpreter, dict[str, str]]:
    """The peers' interpreter, installing them first if they are missing."""
    python = PEERS_DIR / "bin" / "python"
    pins = peer_requirements()
    names = [name for name, _ in pins]
    if not python.exists():
        print(f"creating {PEERS_DIR}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_DIR)], check=True)
    if installed_versions(python, names) != dict(pins):
        print(f"installing peers from {PEERS_FILE}", file=sys.stderr)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(PEERS_FILE)],
            check=True,
        )
    versions = installed_versions(python, names)
    assert versions == dict(pins), f"peers not installed as pinned: {versions}"
    return Interpreter(str(python)), versions


def trellis_interpreter(python: str) -> Interpreter:
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return Interpreter(python, {"PYTHONPATH": path, "TRELLIS_PROGRESS": "0"})


def default_trellis_python() -> str:
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def python_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


# --------------------------------------------------------------------------- running


@dataclass
class Bench:
    sandbox: Sandbox
    trellis: Interpreter
    peers: Interpreter
    tools: set[str]
    reps: int
    heavy_reps: int
    failures: list[str] = field(default_factory=list)
    figure: str = ""

    def start(self, figure: str) -> None:
        """Name the figure being measured, for progress lines and failures."""
        self.figure = figure
        print(figure, file=sys.stderr)

    def measure(
        self, label: str, tool: str, reps: int, once: Callable[[], dict], warmup: bool = False
    ) -> dict | None:
        """Medians, key by key, of `reps` calls of `once`; None if `tool` is off or failed.

        With `warmup`, one more call comes first and is discarded (it pays for
        compiling .pyc files, which whole-process timings would otherwise include).
        """
        if tool not in self.tools:
            return None
        print(f"  {label}: {reps} x", end="", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        results = []
        try:
            if warmup:
                once()
            for _ in range(reps):
                results.append(once())
                print(".", end="", file=sys.stderr, flush=True)
        except MeasurementFailed as failure:
            print(" failed", file=sys.stderr)
            self.failures.append(f"{self.figure}, {label}: {failure}")
            print(failure, file=sys.stderr)
            return None
        print(f" {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        return {
            key: statistics.median(r[key] for r in results)
            for key, value in results[0].items()
            if isinstance(value, (int, float))
        }

    def cell(self, tool: str, text: Callable[[], str], result: dict | None) -> str:
        if tool not in self.tools:
            return "not run"
        return "failed" if result is None else text()


def num(x: float) -> str:
    """Three significant digits, with thousands separators above 100."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def ratio(label: str, slow: dict | None, fast: dict | None, key: str) -> str | None:
    """`label N×`, how many times `slow[key]` is `fast[key]`; None if either is missing."""
    if slow is None or fast is None:
        return None
    return f"{label} {num(slow[key] / fast[key])}×"


def verdict(ok: bool | None, target: str) -> str:
    if ok is None:
        return target
    return f"{target} {'✓' if ok else '✗'}"


def joined(parts: list[str | None]) -> str:
    return "; ".join(p for p in parts if p) or "—"


@dataclass
class Row:
    figure: str
    trellis: str
    flordb: str
    mlflow: str
    ratios: str
    target: str


# --------------------------------------------------------------------------- figures


def log_and_commit(b: Bench) -> list[Row]:
    """Figures 1 and 2: one log inside two nested loops, and the commit after 100k."""
    b.start("figures 1-2: log in nested loops, commit")
    files = {"train.py": workload("log_commit.py")}

    def child(interp: Interpreter, env: dict[str, str]) -> Callable[[], dict]:
        def once() -> dict:
            with b.sandbox.repo(files) as repo:
                return run_script(interp, repo, "train.py", env)
        return once

    def mlflow_once() -> dict:
        with b.sandbox.repo({"train.py": workload("mlflow_log.py")}) as repo:
            return run_script(b.peers, repo, "train.py")

    tr = b.measure("trellis", "trellis", b.reps, child(b.trellis, {"BENCH_TOOL": "trellis"}))
    fl = b.measure("FlorDB", "flordb", b.heavy_reps, child(b.peers, {"BENCH_TOOL": "flordb"}))
    fq = b.measure(
        "FlorDB TQDM_DISABLE=1", "flordb", b.heavy_reps,
        child(b.peers, {"BENCH_TOOL": "flordb", **FLOR_QUIET}),
    )
    ml = b.measure("MLflow", "mlflow", b.heavy_reps, mlflow_once)

    def us(r: dict) -> str:
        return f"{num(r['log_us'])} µs"

    log_row = Row(
        "1. one `log` in 2 nested `loop`s, per value (100 × 1000 = 100k), above a bare loop",
        b.cell("trellis", lambda: us(tr), tr),
        b.cell(
            "flordb",
            lambda: f"{us(fl)} with its progress bars; {us(fq)} with `TQDM_DISABLE=1`",
            fl and fq,
        ),
        b.cell(
            "mlflow",
            lambda: f"{us(ml)} per `log_metric` (300 calls, per-call cost; default store)",
            ml,
        ),
        joined([
            ratio("FlorDB/trellis", fl, tr, "log_us"),
            ratio("FlorDB (`TQDM_DISABLE=1`)/trellis", fq, tr, "log_us"),
            ratio("MLflow/trellis", ml, tr, "log_us"),
        ]),
        "; ".join([
            verdict(tr and tr["log_us"] <= 1, "≤ 1 µs"),
            verdict(tr and fq and fq["log_us"] / tr["log_us"] >= 20,
                    "≥ 20× FlorDB (`TQDM_DISABLE=1`)"),
            verdict(tr and ml and ml["log_us"] / tr["log_us"] >= 1000, "≥ 1000× MLflow"),
        ]),
    )

    def secs(r: dict) -> str:
        return f"{num(r['commit_s'])} s"

    commit_row = Row(
        "2. `commit()` after logging those 100k values",
        b.cell("trellis", lambda: secs(tr), tr),
        b.cell("flordb", lambda: f"{secs(fq)} (`flor.commit()`, incl. its git commit)", fq),
        "n/a: writes on every call",
        joined([ratio("FlorDB/trellis", fq, tr, "commit_s")]),
        verdict(tr and tr["commit_s"] <= 0.5, "≤ 0.5 s"),
    )
    return [log_row, commit_row]


def import_time(b: Bench) -> Row:
    """Figure 3: `python -c "import X"` minus `python -c pass`, same interpreter."""
    b.start("figure 3: import time")

    def added(interp: Interpreter, module: str) -> Callable[[], dict]:
        def once() -> dict:
            with b.sandbox.repo({}) as repo:
                bare = wall_time(interp, repo, ["-c", "pass"])
            with b.sandbox.repo({}) as repo:
                full = wall_time(interp, repo, ["-c", f"import {module}"])
            return {"ms": (full - bare) * 1e3}
        return once

    tr = b.measure("trellis", "trellis", b.reps, added(b.trellis, "trellis"), warmup=True)
    fl = b.measure("FlorDB", "flordb", b.reps, added(b.peers, "flordb"), warmup=True)
    ml = b.measure("MLflow", "mlflow", b.reps, added(b.peers, "mlflow"), warmup=True)

    def ms(r: dict) -> str:
        return f"{num(r['ms'])} ms"

    return Row(
        '3. `python -c "import X"` minus `python -c pass`',
        b.cell("trellis", lambda: ms(tr), tr),
        b.cell("flordb", lambda: f"{ms(fl)} (`import flordb`)", fl),
        b.cell("mlflow", lambda: ms(ml), ml),
        joined([ratio("FlorDB/trellis", fl, tr, "ms"), ratio("MLflow/trellis", ml, tr, "ms")]),
        verdict(tr and tr["ms"] <= 100, "≤ 100 ms"),
    )


def dataframe(b: Bench) -> Row:
    """Figure 4: `dataframe("loss")` over 1M stored values (10 runs × 100k)."""
    b.start(f"figure 4: dataframe of {RUNS} runs x {VALUES_PER_RUN:,} values")
    files = {"train.py": workload("log_commit.py"), "read.py": workload("dataframe.py")}

    writers = {"trellis": (b.trellis, {}), "flordb": (b.peers, FLOR_QUIET)}

    @functools.cache
    def populated(tool: str) -> Path:
        """A repository whose store holds the 1M values; made once, untimed, then copied."""
        interp, env = writers[tool]
        template = b.sandbox.create(files)
        for _ in range(RUNS):
            run_script(interp, template, "train.py", {"BENCH_TOOL": tool, **env})
        return template

    def measured(tool: str) -> Callable[[], dict]:
        interp, _ = writers[tool]

        def once() -> dict:
            env = {"BENCH_TOOL": tool}
            with b.sandbox.copy(populated(tool)) as repo:
                read = run_script(interp, repo, "read.py", env)
            if read["rows"] != RUNS * VALUES_PER_RUN:
                raise MeasurementFailed(f"dataframe returned {read['rows']:,} rows, not 1M")
            with b.sandbox.copy(populated(tool)) as repo:
                base = run_script(interp, repo, "read.py", {**env, "BENCH_MODE": "baseline"})
            return {**read, "added_mb": read["peak_rss_mb"] - base["peak_rss_mb"]}
        return once

    tr = b.measure("trellis", "trellis", b.reps, measured("trellis"))
    fl = b.measure("FlorDB", "flordb", b.heavy_reps, measured("flordb"))

    def text(r: dict) -> str:
        return (
            f"{num(r['seconds'])} s, peak RSS {num(r['peak_rss_mb'])} MB "
            f"(+{num(r['added_mb'])} MB over its imports)"
        )

    return Row(
        f'4. `dataframe("loss")` over 1M stored values ({RUNS} runs × 100k)',
        b.cell("trellis", lambda: text(tr), tr),
        b.cell("flordb", lambda: text(fl), fl),
        "n/a",
        joined([
            ratio("FlorDB/trellis: time", fl, tr, "seconds"),
            ratio("peak RSS", fl, tr, "peak_rss_mb"),
        ]),
        "; ".join([
            verdict(tr and tr["seconds"] <= 1.5, "≤ 1.5 s"),
            verdict(tr and tr["peak_rss_mb"] <= 600, "≤ 600 MB peak"),
        ]),
    )


def checkpoint(b: Bench) -> Row:
    """Figure 5: checkpointing a 100 MiB array, relative to np.save of it."""
    b.start("figure 5: checkpoint of 100 MiB vs np.save")
    files = {"train.py": workload("checkpoint.py")}

    def once() -> dict:
        with b.sandbox.repo(files) as repo:
            seconds = run_script(b.trellis, repo, "train.py")
        cost = seconds["checkpointing"] - seconds["loop"]
        return {"cost_s": cost, "npsave_s": seconds["npsave"], "ratio": cost / seconds["npsave"]}

    tr = b.measure("trellis", "trellis", b.reps, once)
    return Row(
        "5. checkpoint of a 100 MiB numpy array (`checkpointing` + 1-epoch `loop`, "
        "minus the same loop without it), relative to `np.save`",
        b.cell(
            "trellis",
            lambda: f"{num(tr['ratio'])}× np.save (checkpoint {num(tr['cost_s'] * 1e3)} ms, "
            f"np.save {num(tr['npsave_s'] * 1e3)} ms)",
            tr,
        ),
        "n/a: `flor.checkpointing` is a no-op in 4.0.1 (it keeps `torch.save` files instead)",
        "n/a",
        f"trellis/np.save {num(tr['ratio'])}×" if tr else "—",
        verdict(tr and tr["ratio"] <= 1.2, "≤ 1.2× np.save"),
    )


def empty_script(b: Bench) -> Row:
    """Figure 6: wall time an `import` adds to an otherwise empty script."""
    b.start("figure 6: empty script with and without the import")

    def added(interp: Interpreter, module: str) -> Callable[[], dict]:
        def once() -> dict:
            with b.sandbox.repo({"main.py": ""}) as repo:
                bare = wall_time(interp, repo, ["main.py"])
            with b.sandbox.repo({"main.py": f"import {module}\n"}) as repo:
                full = wall_time(interp, repo, ["main.py"])
            return {"ms": (full - bare) * 1e3}
        return once

    tr = b.measure("trellis", "trellis", b.reps, added(b.trellis, "trellis"), warmup=True)
    fl = b.measure("FlorDB", "flordb", b.reps, added(b.peers, "flordb"), warmup=True)

    def ms(r: dict) -> str:
        return f"+{num(r['ms'])} ms"

    return Row(
        "6. empty script with `import X` vs without (run capture: snapshot, env, flush)",
        b.cell("trellis", lambda: ms(tr), tr),
        b.cell("flordb", lambda: f"{ms(fl)} (records no run: nothing was logged or printed)", fl),
        "n/a",
        joined([ratio("FlorDB/trellis", fl, tr, "ms")]),
        verdict(tr and tr["ms"] <= 150, "≤ 150 ms"),
    )


# --------------------------------------------------------------------------- main


def table(rows: list[Row]) -> str:
    lines = [
        "| figure | trellis | FlorDB | MLflow | ratio(s) | target |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r.figure} | {r.trellis} | {r.flordb} | {r.mlflow} | {r.ratios} | {r.target} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (3, and 1 for the slow peers)")
    parser.add_argument("--python", default=default_trellis_python(),
                        help="interpreter for trellis (default: %(default)s)")
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help="comma-separated subset of %(default)s")
    args = parser.parse_args()
    tools = set(args.tools.split(","))
    if not tools <= set(TOOLS):
        parser.error(f"--tools: unknown {sorted(tools - set(TOOLS))}")

    peers, versions = ensure_peers()
    trellis = trellis_interpreter(args.python)
    sandbox = Sandbox()
    reps, heavy_reps = (3, 1) if args.quick else (5, 3)
    bench = Bench(sandbox, trellis, peers, tools, reps, heavy_reps)
    started = time.perf_counter()
    try:
        rows = [
            *log_and_commit(bench),
            import_time(bench),
            dataframe(bench),
            checkpoint(bench),
            empty_script(bench),
        ]
    finally:
        sandbox.close()

    print(
        f"\n{datetime.date.today()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}; "
        f"trellis on Python {python_version(trellis.python)} ({trellis.python}); "
        f"FlorDB {versions['flordb']} and MLflow {versions['mlflow']} on Python "
        f"{python_version(peers.python)}; medians of {reps} runs "
        f"({heavy_reps} for the slow FlorDB/MLflow measurements); "
        f"total {time.perf_counter() - started:.0f} s.\n"
    )
    print(table(rows))
    for failure in bench.failures:
        print(f"\nFAILED {failure.splitlines()[0]}", file=sys.stderr)
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
