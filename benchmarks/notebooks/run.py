"""trellis on real notebooks: the scikit-learn 1.9.1 example gallery, scored against the corpus.

    .venv/bin/python benchmarks/notebooks/run.py [--limit N] [--only PATTERN] [--jobs J]

Each example of ``shared/corpus/sklearn-1.9.1-examples.json`` is converted to a notebook with
jupytext (as the corpus was), then run twice in fresh folders: plain (nbclient, no trellis) and
under ``trellis run``. What trellis recorded is compared with what the corpus observed: cell
executions, files read (per notebook and per cell) and written, and whether each fitted
estimator's lineage reaches its data files; the two runs give the time trellis adds. A markdown
table goes to stdout, progress to stderr, per-example findings to ``.cache/report.json``. See
benchmarks/README.md ("Notebooks: the scikit-learn gallery").
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import measure

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parents[1]
CACHE = BENCH_DIR / ".cache"
CORPUS = REPO_ROOT.parent / "shared" / "corpus" / "sklearn-1.9.1-examples.json"
SDIST = "scikit_learn-1.9.1"
LIMIT_SECONDS = 120  # per example and way, kernel start included, as in the corpus
JUPYTEXT = ["jupytext==1.19.6"]
# What the examples import beyond the project's environment, at the versions of the corpus's
# header; pandas and IPython too, which the project has at 3.x and 9.x and the corpus ran at
# 2.3.3 and 8.39.0 (matplotlib 3.8 cannot draw in an IPython 9 kernel); and jinja2, unpinned
# (the header names no version), without which pandas' ``.style`` fails in two examples.
KERNEL_PACKAGES = [
    "ipython==8.39.0", "pandas==2.3.3", "matplotlib==3.8.4", "seaborn==0.13.2",
    "scikit-image==0.26.0", "pillow==13.0.0", "rich==15.0.0", "jinja2",
]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- setup


def examples_folder() -> Path:
    """The sdist's examples/, downloaded and extracted once."""
    examples = CACHE / SDIST / "examples"
    if examples.is_dir():
        return examples
    archive = CACHE / "sdist" / f"{SDIST}.tar.gz"
    if not archive.exists():
        # `--no-binary :all:` would build meson-python from source too (and fails here); the
        # sdist is the same. pip prepares its metadata by building it: about 5 minutes.
        say("downloading the scikit-learn 1.9.1 sdist (pip builds it for metadata: ~5 min)")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                        "scikit-learn", "scikit-learn==1.9.1", "-d", str(archive.parent)],
                       check=True)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(f"{SDIST}/examples/")]
        tar.extractall(CACHE, members=members, filter="data")
    return examples


def virtualenv(folder: Path, packages: list[str], underlay: str | None = None) -> Path:
    """A virtualenv holding ``packages`` (made once); with ``underlay``, that site-packages
    folder (.pth files included) comes on its path after its own."""
    python = folder / "bin" / "python"
    stamp = folder / "bench-packages.txt"
    wanted = "\n".join(packages) + "\n"
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    say(f"installing {' '.join(packages)} into {folder.relative_to(REPO_ROOT)}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    if underlay is not None:
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        Path(site, "bench-underlay.pth").write_text(f"import site; site.addsitedir({underlay!r})\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
    stamp.write_text(wanted)
    return python


def kernel_data(python: Path) -> Path:
    """A Jupyter data folder whose ``python3`` kernel is ``python``: put on JUPYTER_PATH, it
    serves both runners (nbclient alone and ``trellis run``)."""
    spec = CACHE / "jupyter" / "kernels" / "python3" / "kernel.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (notebook benchmark)", "language": "python",
    }, indent=1))
    return CACHE / "jupyter"


def to_notebook(script: Path, jupytext: Path) -> Path:
    """``jupytext --to ipynb`` in a fresh folder holding only the script, once per example (the
    notebook, with its cell ids, is kept so that every run sees the same one)."""
    target = CACHE / "notebooks" / script.relative_to(CACHE / SDIST / "examples").with_suffix(".ipynb")
    if not target.exists():
        with tempfile.TemporaryDirectory() as folder:
            shutil.copy(script, folder)
            subprocess.run([str(jupytext), "--to", "ipynb", script.name], cwd=folder, check=True,
                           capture_output=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(Path(folder, script.name).with_suffix(".ipynb"), target)
    return target


# --------------------------------------------------------------------------- running


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo.extend(children.get(found[-1], []))
    return found


def execute(command: list[str], cwd: Path, env: dict[str, str], output: Path,
            log: Path) -> dict[str, Any]:
    """Run a notebook runner with the time limit; a runner over time is killed with its kernel."""
    started = time.perf_counter()
    with log.open("w") as sink:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            process.wait(timeout=LIMIT_SECONDS)
            status = "done" if output.exists() else "crashed"
        except subprocess.TimeoutExpired:
            for pid in descendants(process.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.wait()
            status = "timeout"
    seconds = time.perf_counter() - started
    return {
        "status": status, "seconds": seconds,
        "notebook": json.loads(output.read_text()) if status == "done" else None,
        "log": log.read_text()[-2000:],
    }


def run_example(entry: dict[str, Any], position: int, examples: Path, tools: dict[str, Path]) -> dict[str, Any]:
    """Both runs of one example in fresh folders, trellis's record read back, and the score."""
    script = examples / entry["id"].removeprefix("examples/")
    source = to_notebook(script, tools["jupytext"])
    notebook = json.loads(source.read_text())
    folder = CACHE / "runs" / entry["id"].removeprefix("examples/").removesuffix(".py").replace("/", "__")
    shutil.rmtree(folder, ignore_errors=True)
    # alternate which runs first, so that neither always meets the colder caches
    modes = ("plain", "trellis") if position % 2 == 0 else ("trellis", "plain")
    executed = {}
    for mode in modes:
        work, data = folder / mode, folder / f"{mode}-scikit_learn_data"
        work.mkdir(parents=True)
        data.mkdir()
        shutil.copy(script, work)
        shutil.copy(source, work)
        # bytecode caches on, as users run (a shell may set PYTHONDONTWRITEBYTECODE)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("TRELLIS_") and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(MPLBACKEND="Agg", SCIKIT_LEARN_DATA=str(data), PYTHONHASHSEED="0",
                   TRELLIS_PROGRESS="0", JUPYTER_PATH=str(tools["jupyter"]))
        output = folder / f"{mode}-executed.ipynb"
        if mode == "trellis":
            # a repository of its own: trellis's project root (and store) is this folder
            subprocess.run(["git", "init", "-q"], cwd=work, check=True)
            command = [str(tools["trellis"]), "run", "--timeout", str(LIMIT_SECONDS),
                       "--output", str(output), source.name]
        else:
            command = [sys.executable, str(BENCH_DIR / "plain.py"), source.name, str(output)]
        executed[mode] = execute(command, work, env, output, folder / f"{mode}.log")
    recorded, probe_error = None, None
    if (folder / "trellis" / ".trellis").exists():
        requests = measure.lineage_requests(entry, [c.get("id") for c in notebook["cells"]])
        env = dict(os.environ, TRELLIS_DISABLE="1")
        probe = subprocess.run([sys.executable, str(BENCH_DIR / "probe.py"), source.name, json.dumps(requests)],
                               cwd=folder / "trellis", env=env, capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            recorded = json.loads(probe.stdout)
        else:
            probe_error = probe.stderr[-2000:]
    result = measure.score(entry, notebook, executed, recorded, str(folder / "trellis-scikit_learn_data"))
    if probe_error is not None:
        result["probe_error"] = probe_error
    return result


# --------------------------------------------------------------------------- report


def ratio(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part / whole:.1%})" if whole else f"{part}/0 (n/a)"


def mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def table(t: dict[str, Any]) -> str:
    rows = [("examples run", f"{t['examples']}: {t['scored']} recorded, {t['complete']} also ran plain", "")]
    rows.append(("examples with a cell error (plain / trellis)",
                 f"{t['cell_errors']['plain']} / {t['cell_errors']['trellis']}", ""))
    rows.append(("executions captured / code cells executed", ratio(t["captured"], t["executed"]),
                 f"100% {mark(t['captured'] == t['executed'])}"))
    for name, found, among in (
        ("files read: precision, all reads trellis recorded", t["found_raw"], t["raw_reads"]),
        ("files read: precision, unit + dataset reads (corpus's rules)", t["found_kept"], t["kept_reads"]),
        ("files read: recall", t["found_raw"], t["expected_reads"]),
    ):
        rows.append((name, ratio(found, among), f"≥ 95% {mark(not among or found >= 0.95 * among)}"))
    for name, found, among in (
        ("files written: precision, all writes trellis recorded", t["found_writes"], t["raw_writes"]),
        ("files written: recall", t["found_writes"], t["expected_writes"]),
    ):
        rows.append((name, ratio(found, among), f"≥ 95% {mark(found >= 0.95 * among)}"))
    rows.append(("cells whose unit + dataset reads match the corpus's `cell_io`",
                 ratio(t["cells_right"], t["cells_with_reads"]), ""))
    rows.append(("fitted estimators whose fitting cell's lineage reaches their data",
                 ratio(t["fits_by_cell"], t["fits"]), f"100% {mark(t['fits_by_cell'] == t['fits'])}"))
    rows.append(("… by `trellis.lineage(\"NB.ipynb:var\")` (the var's last fit)",
                 ratio(t["fits_by_variable_ok"], t["fits_by_variable"]),
                 f"100% {mark(t['fits_by_variable_ok'] == t['fits_by_variable'])}"))
    rows.append(("… whose lineage starts at the fitting cell (not where the var was made)",
                 ratio(t["fits_by_variable_at_fit"], t["fits_by_variable"]), ""))
    plain, traced = t["plain_seconds"], t["trellis_seconds"]
    over = (traced - plain) / plain if plain else 0.0
    rows.append(("wall time, plain → trellis (examples run both ways)",
                 f"{plain:.1f} s → {traced:.1f} s ({over:+.1%})", f"≤ +10% {mark(over <= 0.10)}"))
    median = t["median_added_ms"]
    rows.append((f"added time per cell execution, median of {t['cells_timed']} paired cells",
                 "n/a" if median is None else f"{median:+.1f} ms",
                 "" if median is None else f"≤ 5 ms {mark(median <= 5)}"))
    first, later = t["median_added_first_ms"], t["median_added_later_ms"]
    if first is not None and later is not None:
        rows.append(("… the first cell of each kernel / every later cell",
                     f"{first:+.1f} ms / {later:+.1f} ms", ""))
    lines = ["| measure | result | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def trellis_commit() -> str:
    """The commit of the trellis being measured, marked when trellis/ has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()

    changed = git("status", "--porcelain", "--", "trellis")
    return git("rev-parse", "--short", "HEAD") + (" with uncommitted changes in trellis/" if changed else "")


def brief(result: dict[str, Any]) -> dict[str, Any]:
    """An example's findings for the report: the per-cell times reduced to their median."""
    kept = {k: v for k, v in result.items() if k != "added_ms"}
    if result.get("added_ms"):
        kept["median_added_ms"] = measure.median(result["added_ms"])
    return kept


def select(entries: list[dict[str, Any]], only: str | None, limit: int | None) -> list[dict[str, Any]]:
    """The examples whose id contains ``only``; ``limit`` of them, evenly spaced over the
    corpus's order (so that a subset still spans every section)."""
    if only:
        entries = [e for e in entries if only in e["id"]]
    if limit is not None and limit < len(entries):
        entries = [entries[i * len(entries) // limit] for i in range(limit)]
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="run N examples, evenly spaced (default: all)")
    parser.add_argument("--only", help="only examples whose id contains this text")
    parser.add_argument("--jobs", type=int, default=1, help="examples run at once (default 1)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="the corpus JSON")
    options = parser.parse_args()

    trellis = Path(sys.executable).parent / "trellis"
    if not trellis.exists():
        sys.exit(f"no trellis command next to {sys.executable}: run this with the project's .venv/bin/python")
    corpus = json.loads(options.corpus.read_text())
    chosen = select(corpus["examples"], options.only, options.limit)
    if not chosen:
        sys.exit("no example matches")

    started = time.perf_counter()
    examples = examples_folder()
    tools = {"trellis": trellis}
    tools["jupytext"] = virtualenv(CACHE / "tools", JUPYTEXT).parent / "jupytext"
    # the examples' kernel: this (the project's) environment, under the packages they add
    kernel = virtualenv(CACHE / "kernel", KERNEL_PACKAGES, underlay=sysconfig.get_paths()["purelib"])
    tools["jupyter"] = kernel_data(kernel)
    # untimed: the first import of matplotlib builds its font cache
    subprocess.run([str(kernel), "-c", "import matplotlib.pyplot, sklearn, trellis, ipykernel"], check=True)

    commit = trellis_commit()
    say(f"running {len(chosen)} examples, {options.jobs} at a time, trellis at {commit}")
    results: list[dict[str, Any]] = []

    def one(position: int) -> dict[str, Any]:
        entry = chosen[position]
        try:
            result = run_example(entry, position, examples, tools)
        except Exception:  # noqa: BLE001 - a fault of the bench itself: report it, go on
            result = {"id": entry["id"], "status": {"bench": "error"}, "seconds": {},
                      "bench_error": traceback.format_exc()}
        results.append(result)
        cells, reads = result.get("cells", {}), result.get("reads", {})
        times = " ".join(f"{mode} {seconds:.1f}s" for mode, seconds in result["seconds"].items())
        extra = reads.get("extra_kept", []) + reads.get("extra_noise", [])
        say(f"[{len(results)}/{len(chosen)}] {entry['id']}: {result['status']} {times}"
            f" cells {cells.get('captured')}/{cells.get('executed')}"
            f" missed {reads.get('missed')} extra {extra}"
            f" written extra {result.get('writes', {}).get('extra')}"
            + (" PROBE FAILED" if "probe_error" in result else ""))
        return result

    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        ordered = list(pool.map(one, range(len(chosen))))
    totals = measure.totals(ordered)
    elapsed = time.perf_counter() - started
    report = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join(sys.argv[1:]),
        "trellis": commit,
        "seconds": elapsed,
        "totals": totals,
        "examples": [brief(r) for r in ordered],
    }
    (CACHE / "report.json").write_text(json.dumps(report, indent=1))
    say(f"{elapsed:.0f} s in all; per-example findings in {(CACHE / 'report.json').relative_to(REPO_ROOT)}")
    print(table(totals))


if __name__ == "__main__":
    main()
