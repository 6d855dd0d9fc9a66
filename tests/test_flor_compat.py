"""A script written against the FlorDB paper runs with only its import changed."""

from __future__ import annotations

PAPER_SCRIPT = """
from trellis import flor

hidden = flor.arg("hidden", 500)
lr = flor.arg("lr", 1e-3)
weights = [0.0]

with flor.checkpointing(weights=weights):
    for epoch in flor.loop("epoch", range(3)):
        for step in flor.loop("step", range(5)):
            weights[0] += lr
            flor.log("loss", 1.0 / (1 + epoch * 5 + step))
        flor.log("acc", 0.5 + epoch / 10)

for page in ["p1", "p2"]:
    with flor.iteration("page", None, page):
        flor.log("label", page.upper())
flor.commit()
"""


def test_paper_script_runs_and_reads_back(project, monkeypatch):
    monkeypatch.chdir(project.root)
    project.write("paper.py", PAPER_SCRIPT)
    project.run("paper.py", "--hidden", "100")
    project.run("paper.py")
    from trellis import flor

    frame = flor.dataframe("loss", "acc")
    assert len(frame) == 2 * (15 + 3)
    latest = flor.utils.latest(frame)
    assert latest["run_id"].nunique() == 1 and len(latest) == 18
    assert latest["run_id"].iloc[0] == frame["run_id"].iloc[-1]
    params = flor.dataframe()
    assert sorted(params["hidden"]) == [100, 500]
    labels = flor.dataframe("label")
    assert labels["page"].tolist() == [0, 1, 0, 1]
    assert labels["page_value"].tolist() == ["p1", "p2", "p1", "p2"]
    assert labels["label"].tolist() == ["P1", "P2", "P1", "P2"]
