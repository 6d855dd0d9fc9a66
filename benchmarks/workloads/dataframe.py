"""Figure 4: `dataframe("loss")` over a store that already holds 1M values.

BENCH_TOOL picks `trellis` or `flordb`. With BENCH_MODE=baseline the script
imports the same modules and stops, so its peak RSS is the floor the dataframe
call is measured above.
"""

import json
import os
import resource
import time

if os.environ["BENCH_TOOL"] == "trellis":
    import trellis as lib
else:
    import flordb as lib
import pandas


def main() -> None:
    result = {}
    if os.environ.get("BENCH_MODE") != "baseline":
        t0 = time.perf_counter()
        frame = lib.dataframe("loss")
        result["seconds"] = time.perf_counter() - t0
        result["rows"] = len(frame)
        assert isinstance(frame, pandas.DataFrame)
    # ru_maxrss is in KiB on Linux.
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(result, out)


main()
