"""Segment every document with the checkpoint that had the best recall, and export it."""

import json
from pathlib import Path

import numpy as np

import trellis

pages = np.load("features/pages.npz")
try:
    scores = trellis.dataframe("acc", "recall")
except trellis.UnknownNameError:
    scores = None
model = None
if scores is not None and len(scores):
    checkpointed = trellis.query(
        "SELECT r.uuid AS run_id, c.idx AS epoch FROM checkpoints c JOIN runs r ON r.id = c.run"
    )
    candidates = scores.merge(checkpointed, on=["run_id", "epoch"])
    if len(candidates):
        best = candidates.sort_values(["recall", "acc", "tstamp"]).iloc[-1]
        model = trellis.load_checkpoint(best.run_id, int(best.epoch))["model"]
        trellis.log("chosen_run", best.run_id)
        trellis.log("chosen_epoch", int(best.epoch))
        trellis.log("chosen_recall", float(best.recall))
if model is None:
    # no trained model yet: the fallback says every document is one page long
    model = {"weights": np.zeros(pages["features"].shape[1]), "bias": np.array([-1.0])}
    trellis.log("chosen_run", "fallback")

Path("model").mkdir(exist_ok=True)
np.savez("model/model.npz", weights=model["weights"], bias=model["bias"])

probability = 1.0 / (1.0 + np.exp(-(pages["features"] @ model["weights"] + model["bias"][0])))
predictions: dict[str, list[bool]] = {}
for document in trellis.loop("document", sorted(set(pages["document"].tolist()))):
    rows = np.flatnonzero(pages["document"] == document)
    rows = rows[np.argsort(pages["position"][rows])]
    flags = []
    for position in trellis.loop("page", range(len(rows))):
        first = bool(probability[rows[position]] > 0.5)
        flags.append(first)
        trellis.log("first_page", first)
    predictions[document] = flags
Path("predictions.json").write_text(json.dumps(predictions, indent=1))
print(f"segmented {len(predictions)} documents")
