"""Figures 1 and 2: logging 100k values inside two nested loops, then committing.

Run as the script of a fresh git repository, with BENCH_TOOL set to `trellis` or
`flordb` (both expose the same loop/log/arg/commit names) and BENCH_OUT naming the
JSON file to write. Also used, with its timings ignored, to populate stores for
figure 4: each run stores 100k values of `loss`.
"""

import json
import os
import time

if os.environ["BENCH_TOOL"] == "trellis":
    import trellis as lib
else:
    import flordb as lib

OUTER, INNER = 100, 1000


def bare() -> float:
    for epoch in range(OUTER):
        for step in range(INNER):
            loss = 1.0 / (1 + epoch * INNER + step)
    return loss


def logged() -> None:
    for epoch in lib.loop("epoch", range(OUTER)):
        for step in lib.loop("step", range(INNER)):
            loss = 1.0 / (1 + epoch * INNER + step)
            lib.log("loss", loss)


def main() -> None:
    # Start the run before any timing: both tools record a run lazily or at
    # import, and that one-off cost is figure 6, not figure 1.
    lib.arg("inner", INNER)
    t0 = time.perf_counter()
    bare()
    t1 = time.perf_counter()
    logged()
    t2 = time.perf_counter()
    lib.commit()
    t3 = time.perf_counter()
    values = OUTER * INNER
    result = {
        "log_us": ((t2 - t1) - (t1 - t0)) / values * 1e6,
        "commit_s": t3 - t2,
    }
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(result, out)


main()
