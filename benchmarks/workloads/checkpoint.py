"""Figure 5: checkpointing a 100 MiB numpy array, against `np.save` of it.

One process, once its run has started (the run's snapshot and environment capture are figure
6), measures three things in turn, ROUNDS times, each round starting with the next of them:
  npsave         np.save of the array into the repository;
  loop           trellis.loop over one epoch, then commit;
  checkpointing  the same inside `trellis.checkpointing(state=...)`.
The checkpoint's cost is `checkpointing - loop`; both include commit(), so a checkpoint written
lazily, at commit, is still counted. The array changes before every measurement, so no
checkpoint is deduplicated against an earlier one, and each file is deleted after it is timed.

Why one process and turns: on a virtual machine a 100 MiB write costs 5-10x more when the
page cache has to take memory the host has taken back (freed memory is reported to the host
after a few seconds), whoever writes. Measured in separate processes, whichever measurement
came after a pause paid for it. In one process, alternating, each of the three meets the
same conditions; the medians are reported.
"""

import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

import trellis

MIB = 2**20
ROUNDS = 5


def main() -> None:
    # Random floats: incompressible, and not deduplicated against anything.
    state = np.random.default_rng(0).random(100 * MIB // 8)
    trellis.arg("epochs", 1)
    trellis.commit()
    time.sleep(1.0)
    objects = Path(".trellis", "objects")  # the default store of the repository it runs in

    def npsave(k: int) -> float:
        os.sync()
        t0 = time.perf_counter()
        np.save("state.npy", state)
        seconds = time.perf_counter() - t0
        os.remove("state.npy")
        return seconds

    def loop(k: int, checkpointed: bool) -> float:
        before = set(objects.rglob("*"))
        os.sync()
        t0 = time.perf_counter()
        if checkpointed:
            with trellis.checkpointing(state=state):
                for epoch in trellis.loop("epoch", range(1)):
                    state[0] = k
        else:
            for epoch in trellis.loop("epoch", range(1)):
                state[0] = k
        trellis.commit()
        seconds = time.perf_counter() - t0
        for path in set(objects.rglob("*")) - before:
            if path.is_file():
                path.unlink()
        return seconds

    measures = {
        "npsave": npsave,
        "loop": lambda k: loop(k, False),
        "checkpointing": lambda k: loop(k, True),
    }
    order = list(measures)
    seconds: dict[str, list[float]] = {name: [] for name in measures}
    k = 0
    for _ in range(ROUNDS):
        order.append(order.pop(0))
        for name in order:
            k += 1
            seconds[name].append(measures[name](k))
    result = {name: statistics.median(values) for name, values in seconds.items()}
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(result, out)


main()
