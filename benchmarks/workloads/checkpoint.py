"""Figure 5: checkpointing a 100 MiB numpy array, against `np.save` of it.

BENCH_MODE picks one of three measurements, each in its own process:
  npsave         np.save of the array into the repository;
  loop           trellis.loop over one epoch, then commit;
  checkpointing  the same inside `trellis.checkpointing(state=...)`.
The checkpoint's cost is `checkpointing - loop`, measured once the run has started (its
snapshot and environment capture, figure 6, are done). Both include commit(), so a
checkpoint written lazily, at commit, is still counted. Dirty pages left by
earlier writes are flushed (untimed) first: the kernel throttles a writer while
there are many, which would make whichever measurement follows a big write slow.
"""

import json
import os
import time

import numpy as np

MIB = 2**20


def main() -> None:
    # Random floats: incompressible, and not deduplicated against anything.
    state = np.random.default_rng(0).random(100 * MIB // 8)
    mode = os.environ["BENCH_MODE"]
    if mode == "npsave":
        os.sync()
        t0 = time.perf_counter()
        np.save("state.npy", state)
        seconds = time.perf_counter() - t0
    else:
        import trellis

        trellis.arg("epochs", 1)
        # Measure in steady state: the run's one-off start (snapshot, environment) is figure 6,
        # and would otherwise compete with whichever measurement runs first.
        trellis.commit()
        time.sleep(1.0)
        os.sync()
        t0 = time.perf_counter()
        if mode == "checkpointing":
            with trellis.checkpointing(state=state):
                for epoch in trellis.loop("epoch", range(1)):
                    state[0] = epoch
        else:
            for epoch in trellis.loop("epoch", range(1)):
                state[0] = epoch
        trellis.commit()
        seconds = time.perf_counter() - t0
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump({"seconds": seconds}, out)


main()
