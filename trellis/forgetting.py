"""``trellis forget``: remove runs (a notebook's epochs, or runs by id) from the store.

Every row of the runs goes, in one transaction; a reproduction of a forgotten run stays, no
longer linked to it. Objects (outputs, checkpoints) stay in the object folder: they are
content-addressed and may be shared with runs that remain.
"""

from __future__ import annotations

from trellis.store.connection import Store
from trellis.store.schema import BY_RUN, BY_STEP, RUN_SHIFT


def describe(store: Store, run_ids: list[int]) -> dict[str, int]:
    """How much forgetting ``run_ids`` removes: runs and the executions (steps) in them."""
    marks = ", ".join("?" * len(run_ids))
    (steps,) = store.execute(f"SELECT COUNT(*) FROM steps WHERE run IN ({marks})", run_ids)[0]
    return {"runs": len(run_ids), "executions": steps}


def forget(store: Store, run_ids: list[int]) -> dict[str, int]:
    counts = describe(store, run_ids)
    marks = ", ".join("?" * len(run_ids))
    with store.transaction():
        for table in BY_STEP:
            for run in run_ids:
                store.execute(f"DELETE FROM {table} WHERE step BETWEEN ? AND ?",
                              (run << RUN_SHIFT, ((run + 1) << RUN_SHIFT) - 1))
        store.execute(f"DELETE FROM dependencies WHERE depends_on IN"
                      f" (SELECT id FROM steps WHERE run IN ({marks}))", run_ids)
        store.execute(f"DELETE FROM log_names WHERE run IN ({marks})", run_ids)
        store.execute(f"UPDATE runs SET parent_run = NULL WHERE parent_run IN ({marks})", run_ids)
        for table, column in BY_RUN.items():
            if table != "runs":
                store.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", run_ids)
        store.execute(f"DELETE FROM runs WHERE id IN ({marks})", run_ids)
    return counts
