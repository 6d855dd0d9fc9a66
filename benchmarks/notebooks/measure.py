"""Score what trellis recorded for one example against the corpus's facts; add up a set.

The corpus (``shared/corpus/sklearn-1.9.1-examples.json``) lists, per example, the unit and
dataset files read and the unit files written (as observed by strace), per cell the reads
(``cell_io``), and per fitted
estimator the data files it was fit from (``fitted``). Its classification rules say which
paths count: files in the notebook's folder (``unit``) and data files below site-packages,
SCIKIT_LEARN_DATA or seaborn-data (``dataset``); everything else is noise it never lists.
"""

from __future__ import annotations

import datetime
import fnmatch
import os
import statistics
from pathlib import Path
from typing import Any

# The corpus's "dataset" rule, as paths below site-packages.
DATASET_PATTERNS = (
    "sklearn/datasets/data/*", "sklearn/datasets/descr/*.rst", "sklearn/datasets/images/*",
    "matplotlib/mpl-data/sample_data/*", "skimage/data/*",
)
# The corpus's noise rule for files inside the notebook's folder: code, not data.
CODE_SUFFIXES = (".py", ".pyc", ".so")
NOT_FILES = {"synthetic", "inline"}
SEABORN_DATA = str(Path.home() / "seaborn-data")


def classify(path: str, sklearn_data: str) -> tuple[str, str]:
    """A path as trellis recorded it -> (the corpus's spelling of it, unit|dataset|noise)."""
    if not os.path.isabs(path):  # trellis writes paths inside the project relative to it
        code = path.endswith(CODE_SUFFIXES) or "__pycache__" in path
        return path, "noise" if code else "unit"
    for folder, label in ((sklearn_data, "SCIKIT_LEARN_DATA"), (SEABORN_DATA, "seaborn-data")):
        if path.startswith(folder + os.sep):
            return f"{label}/{path[len(folder) + 1:]}", "dataset"
    if "/site-packages/" in path:
        below = path.split("/site-packages/", 1)[1]
        data = any(fnmatch.fnmatch(below, pattern) for pattern in DATASET_PATTERNS)
        return below, "dataset" if data else "noise"
    return path, "noise"


def corpus_reads(reads: dict[str, list[str]]) -> set[str]:
    return set(reads.get("unit", [])) | set(reads.get("dataset", []))


def data_files(fit: dict[str, Any]) -> set[str]:
    return set(fit["data"]) - NOT_FILES


def checked_fits(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The fitted estimators whose data is (partly) files, and which the corpus is sure of."""
    return [f for f in entry["fitted"] if data_files(f) and not f["uncertain"]]


def latest_fit_cells(entry: dict[str, Any]) -> dict[str, int]:
    """Notebook-level variable -> the last cell that fits it: the version
    ``trellis.lineage("NB.ipynb:var")`` is about."""
    latest: dict[str, int] = {}
    for fit in entry["fitted"]:
        if fit["scope"] == "notebook":
            latest[fit["var"]] = max(fit["cell"], latest.get(fit["var"], -1))
    return latest


def lineage_requests(entry: dict[str, Any], cell_ids: list[str | None]) -> dict[str, list[str]]:
    fits = checked_fits(entry)
    latest = latest_fit_cells(entry)
    return {
        "by_cell": sorted({cell_ids[f["cell"]] for f in fits}),
        "by_variable": sorted({f["var"] for f in fits if latest.get(f["var"]) == f["cell"]}),
    }


def _seconds(cell: dict[str, Any]) -> float | None:
    timing = cell.get("metadata", {}).get("execution", {})
    if "iopub.status.busy" not in timing or "iopub.status.idle" not in timing:
        return None
    busy, idle = (datetime.datetime.fromisoformat(timing[k])
                  for k in ("iopub.status.busy", "iopub.status.idle"))
    return (idle - busy).total_seconds()


def _errors(notebook: dict[str, Any]) -> int:
    return sum(any(o.get("output_type") == "error" for o in c.get("outputs", []))
               for c in notebook["cells"] if c["cell_type"] == "code")


def score(entry: dict[str, Any], notebook: dict[str, Any], executed: dict[str, Any],
          recorded: dict[str, Any] | None, sklearn_data: str) -> dict[str, Any]:
    """One example's findings. ``executed`` maps plain/trellis to the runner's outcome (status,
    seconds, executed notebook); ``recorded`` is what probe.py read from trellis's store."""
    result: dict[str, Any] = {
        "id": entry["id"],
        "status": {mode: e["status"] for mode, e in executed.items()},
        "seconds": {mode: e["seconds"] for mode, e in executed.items()},
    }
    if any(e["status"] != "done" for e in executed.values()):
        result["runner_output"] = {m: e["log"] for m, e in executed.items() if e["status"] != "done"}
    for mode, e in executed.items():
        if e["notebook"] is not None:
            result.setdefault("cell_errors", {})[mode] = _errors(e["notebook"])
    ran = executed["trellis"]["notebook"]
    if ran is None or recorded is None:
        return result
    result["complete"] = executed["plain"]["notebook"] is not None
    result["problems"] = [r["problems"] for r in recorded["runs"] if r["problems"]]

    cell_ids = [c.get("id") for c in notebook["cells"]]
    index_of = {cell_id: i for i, cell_id in enumerate(cell_ids)}
    step_cell = {s["id"]: index_of.get(s["cell_id"]) for s in recorded["steps"]}
    executed_cells = [i for i, c in enumerate(ran["cells"])
                      if c["cell_type"] == "code" and c.get("execution_count") is not None]
    captured = set(step_cell.values())
    result["cells"] = {
        "executed": len(executed_cells),
        "captured": sum(i in captured for i in executed_cells),
        "missing": [i for i in executed_cells if i not in captured],
        "steps_of_no_cell": sum(i is None for i in step_cell.values()),
    }

    reads = [(f["step"], *classify(f["path"], sklearn_data))
             for f in recorded["files"] if f["mode"] == "read"]
    raw = {label for _, label, _ in reads}
    kept = {label for _, label, kind in reads if kind != "noise"}
    expected = corpus_reads(entry["reads"])
    result["reads"] = {
        "expected": len(expected), "raw": len(raw), "kept": len(kept),
        "found_raw": len(raw & expected), "found_kept": len(kept & expected),
        "missed": sorted(expected - raw),
        "extra_kept": sorted(kept - expected),
        "extra_noise": sorted(raw - kept - expected),
    }

    writes = {classify(f["path"], sklearn_data)[0] for f in recorded["files"] if f["mode"] == "write"}
    expected_writes = set(entry["writes"].get("unit", []))
    result["writes"] = {
        "expected": len(expected_writes), "raw": len(writes), "found": len(writes & expected_writes),
        "missed": sorted(expected_writes - writes), "extra": sorted(writes - expected_writes),
    }

    by_cell: dict[int, set[str]] = {}
    for step, label, kind in reads:
        if kind != "noise" and step_cell.get(step) is not None:
            by_cell.setdefault(step_cell[step], set()).add(label)
    corpus_cells = {io["cell"]: corpus_reads(io.get("reads", {})) for io in entry.get("cell_io", [])}
    corpus_cells = {cell: paths for cell, paths in corpus_cells.items() if paths}
    cells = sorted(set(corpus_cells) | set(by_cell))
    wrong = [{"cell": c, "corpus": sorted(corpus_cells.get(c, ())),
              "trellis": sorted(by_cell.get(c, ()))}
             for c in cells if corpus_cells.get(c, set()) != by_cell.get(c, set())]
    result["cell_reads"] = {"cells": len(cells), "right": len(cells) - len(wrong), "wrong": wrong}

    def reached(graph: dict[str, Any]) -> set[str]:
        return {classify(path, sklearn_data)[0] for path in graph.get("files", [])}

    latest = latest_fit_cells(entry)
    lineage = []
    for fit in checked_fits(entry):
        wanted = data_files(fit)
        graph = recorded["by_cell"].get(cell_ids[fit["cell"]], {})
        found = {"var": fit["var"], "cell": fit["cell"], "scope": fit["scope"],
                 "data": sorted(wanted), "by_cell": wanted <= reached(graph)}
        if "error" in graph:
            found["by_cell_error"] = graph["error"]
        elif not found["by_cell"]:
            found["by_cell_reached"] = sorted(reached(graph))
        if latest.get(fit["var"]) == fit["cell"]:
            graph = recorded["by_variable"].get(fit["var"], {})
            target = index_of.get(graph.get("target_cell_id"))
            found["by_variable"] = wanted <= reached(graph)
            found["variable_target_cell"] = target
            if "error" in graph:
                found["by_variable_error"] = graph["error"]
            elif not found["by_variable"]:
                found["by_variable_reached"] = sorted(reached(graph))
        lineage.append(found)
    result["lineage"] = lineage

    if result["complete"]:
        plain = executed["plain"]["notebook"]["cells"]
        added = []
        for i in executed_cells:
            with_trellis, without = _seconds(ran["cells"][i]), _seconds(plain[i])
            if with_trellis is not None and without is not None:
                added.append(round((with_trellis - without) * 1000, 3))
        result["added_ms"] = added
    return result


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def totals(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums over the examples that ran to the end both ways (the rest are counted apart)."""
    scored = [r for r in results if "cells" in r]
    complete = [r for r in scored if r["complete"]]
    added = [ms for r in complete for ms in r["added_ms"]]
    lineage = [f for r in scored for f in r["lineage"]]
    by_variable = [f for f in lineage if "by_variable" in f]

    def total(group: str, key: str) -> int:
        return sum(r[group][key] for r in scored)

    return {
        "examples": len(results),
        "scored": len(scored),
        "complete": len(complete),
        "not_scored": {r["id"]: r["status"] for r in results if "cells" not in r},
        "cell_errors": {mode: sum(r.get("cell_errors", {}).get(mode, 0) > 0 for r in scored)
                        for mode in ("plain", "trellis")},
        "executed": total("cells", "executed"),
        "captured": total("cells", "captured"),
        "expected_reads": total("reads", "expected"),
        "raw_reads": total("reads", "raw"),
        "kept_reads": total("reads", "kept"),
        "found_raw": total("reads", "found_raw"),
        "found_kept": total("reads", "found_kept"),
        "expected_writes": total("writes", "expected"),
        "raw_writes": total("writes", "raw"),
        "found_writes": total("writes", "found"),
        "cells_with_reads": total("cell_reads", "cells"),
        "cells_right": total("cell_reads", "right"),
        "fits": len(lineage),
        "fits_by_cell": sum(f["by_cell"] for f in lineage),
        "fits_by_variable": len(by_variable),
        "fits_by_variable_ok": sum(f["by_variable"] for f in by_variable),
        "fits_by_variable_at_fit": sum(f["variable_target_cell"] == f["cell"] for f in by_variable),
        "plain_seconds": sum(r["seconds"]["plain"] for r in complete),
        "trellis_seconds": sum(r["seconds"]["trellis"] for r in complete),
        "cells_timed": len(added),
        "median_added_ms": median(added),
        "median_added_first_ms": median([r["added_ms"][0] for r in complete if r["added_ms"]]),
        "median_added_later_ms": median([ms for r in complete for ms in r["added_ms"][1:]]),
    }
