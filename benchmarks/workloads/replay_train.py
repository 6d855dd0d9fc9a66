"""The replay benchmark's training script: a deterministic two-layer numpy network.

BENCH_TOOL picks the library (`trellis` or `flordb`; both expose arg/loop/log/checkpointing).
BENCH_CHECKPOINT=0 swaps `checkpointing` for a no-op, to measure what checkpoints cost.
BENCH_OUT, when set, receives the loop's wall time. The benchmark edits this text to make its
second code version and the new log statements (the lines marked below).
"""

import contextlib
import json
import os
import time

import numpy as np

if os.environ["BENCH_TOOL"] == "trellis":
    import trellis as lib
else:
    import flordb as lib

hidden = lib.arg("hidden", 192)
lr = lib.arg("lr", 0.01)
epochs = lib.arg("epochs", 10)
steps = lib.arg("steps", 40)

rng = np.random.default_rng(0)
X = rng.normal(size=(steps * 64, 256))
y = np.tanh(X @ rng.normal(size=(256, 8)) * 0.1)
W1 = rng.normal(size=(256, hidden)) * 0.05
W2 = rng.normal(size=(hidden, 8)) * 0.05
saving = lib.checkpointing(W1=W1, W2=W2) if os.environ.get("BENCH_CHECKPOINT", "1") == "1" else contextlib.nullcontext()

started = time.perf_counter()
with saving:
    for epoch in lib.loop("epoch", range(epochs)):
        for step in lib.loop("step", range(steps)):
            rows = slice(step * 64, step * 64 + 64)
            for _ in range(50):  # about 1.5 s per epoch on one core
                h = np.tanh(X[rows] @ W1)
                error = h @ W2 - y[rows]
                g2 = h.T @ error / 64
                g1 = X[rows].T @ ((error @ W2.T) * (1 - h ** 2)) / 64
            W2 -= lr * g2  # VERSION-2 MARK
            W1 -= lr * g1
            lib.log("loss", float(np.mean(error ** 2)))
        lib.log("val", float(np.mean((np.tanh(X @ W1) @ W2 - y) ** 2)))
if os.environ.get("BENCH_OUT"):
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump({"loop_s": time.perf_counter() - started}, out)
