"""Figure 1 for MLflow: `mlflow.log_metric` inside two nested loops.

MLflow writes each metric to its store as it is logged, so 300 calls (3 x 100)
give its per-call cost; there is nothing left to commit afterwards.
"""

import json
import os
import time

import mlflow

OUTER, INNER = 3, 100


def bare() -> float:
    for epoch in range(OUTER):
        for step in range(INNER):
            loss = 1.0 / (1 + epoch * INNER + step)
    return loss


def logged() -> None:
    for epoch in range(OUTER):
        for step in range(INNER):
            loss = 1.0 / (1 + epoch * INNER + step)
            mlflow.log_metric("loss", loss, step=epoch * INNER + step)


def main() -> None:
    with mlflow.start_run():
        mlflow.log_param("inner", INNER)
        t0 = time.perf_counter()
        bare()
        t1 = time.perf_counter()
        logged()
        t2 = time.perf_counter()
    result = {"log_us": ((t2 - t1) - (t1 - t0)) / (OUTER * INNER) * 1e6}
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(result, out)


main()
