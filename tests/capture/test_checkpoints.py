"""checkpointing: saved at loop boundaries, content-addressed, adaptive, loadable."""

from __future__ import annotations

import numpy as np
import pytest

import trellis


@pytest.fixture
def in_project(project, monkeypatch):
    monkeypatch.chdir(project.root)
    return project


STATEFUL = """
    class Model:
        '''Follows the state_dict protocol of torch modules.'''
        def __init__(self):
            self.weight = 0.0
        def state_dict(self):
            return {"weight": self.weight}
        def load_state_dict(self, state):
            self.weight = state["weight"]
"""


def test_every_boundary_is_saved_when_the_budget_allows(in_project):
    in_project.write("slow.py", STATEFUL + """
    import time
    import numpy as np
    import trellis
    model = Model()
    table = np.zeros(4)
    with trellis.checkpointing(model=model, table=table, history=[]):
        for epoch in trellis.loop("epoch", range(4)):
            for step in trellis.loop("step", range(2)):
                model.weight += 1.0
                table[epoch] = epoch + 1
            time.sleep(0.05)
    """)
    in_project.run("slow.py", TRELLIS_CHECKPOINT_SHARE="1")
    listed = in_project.cli("checkpoints", "latest", "--json")
    import json
    rows = json.loads(listed.stdout)
    assert sorted({r["iteration"] for r in rows}) == [0, 1, 2, 3]
    assert {r["loop"] for r in rows} == {"epoch"}
    assert {(r["name"], r["format"]) for r in rows} == {("model", "pickle"), ("table", "npy"), ("history", "pickle")}
    # the unchanged empty list is stored once: content addressing deduplicates it
    assert len({r["object"] for r in rows if r["name"] == "history"}) == 1

    states = trellis.load_checkpoint("latest", 1)
    assert states["model"] == {"weight": 4.0}
    assert states["table"].tolist() == [1.0, 2.0, 0.0, 0.0]

    live_table = np.full(4, -1.0)
    exec(STATEFUL.replace("\n    ", "\n"), globals())
    live_model = Model()  # noqa: F821
    trellis.load_checkpoint("latest", 2, model=live_model, table=live_table)
    assert live_model.weight == 6.0 and live_table.tolist() == [1.0, 2.0, 3.0, 0.0]


def test_checkpoints_stay_within_their_share_of_loop_time(in_project):
    in_project.write("fast.py", """
    import numpy as np
    import trellis
    state = np.zeros(2_000_000)
    with trellis.checkpointing(state=state):
        for epoch in trellis.loop("epoch", range(200)):
            state += 1
    """)
    in_project.run("fast.py", TRELLIS_CHECKPOINT_SHARE="0.05")
    timing = trellis.query(
        "SELECT (SELECT SUM(seconds) FROM checkpoints) AS spent,"
        " (SELECT MAX(ended) - MIN(started) FROM iterations) AS loop_time,"
        " (SELECT COUNT(*) FROM checkpoints) AS saved"
    ).iloc[0]
    assert 1 <= timing["saved"] < 200
    # the first checkpoint is taken blind to measure the cost; the rest keep within budget
    first = trellis.query("SELECT seconds FROM checkpoints ORDER BY idx LIMIT 1")["seconds"][0]
    assert timing["spent"] - first <= 0.05 * timing["loop_time"] + 1e-3


def test_missing_checkpoint_is_a_clear_error(in_project):
    in_project.write("once.py", """
    import time, trellis
    with trellis.checkpointing(value={"a": 1}):
        for epoch in trellis.loop("epoch", range(2)):
            time.sleep(0.05)
    """)
    in_project.run("once.py", TRELLIS_CHECKPOINT_SHARE="1")
    with pytest.raises(trellis.NoCheckpointError, match=r"no checkpoint at iteration 7; it has: 0, 1"):
        trellis.load_checkpoint("latest", 7)
    assert trellis.load_checkpoint("latest") == {"value": {"a": 1}}
