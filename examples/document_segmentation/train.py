"""Train the first-page classifier on every page people labelled (by hand and in the app).

Features and labels are both read from the store with trellis.dataframe: the newest label of a
page wins, so each round of confirmations in the app grows or corrects the training set. The
model is a logistic regression on the standardised features, a checkpoint per epoch; each epoch
is scored on the validation and the held-out test PDFs, whose pages are never training labels.
"""

import json
from pathlib import Path

import numpy as np

import trellis
from segmentation import features, first_page_scores, split_of

lr = trellis.arg("lr", 0.5)
epochs = trellis.arg("epochs", 20)
steps = trellis.arg("steps", 10)

pages, x_all = features()
labels = trellis.dataframe("first_page", "labelled_at").sort_values("labelled_at", kind="stable")
labels = labels.drop_duplicates(["document_value", "page"], keep="last")  # the newest label wins
labelled = pages.reset_index().merge(labels[["document_value", "page", "first_page"]])
labelled = labelled[labelled["document_value"].map(split_of) == "pool"]  # never validation or test
x, y = x_all[labelled["index"].to_numpy()], labelled["first_page"].astype(bool).to_numpy()
trellis.log("human_labels", len(y))

answers = json.loads(Path("raw/answers.json").read_text())
truth = np.array([answers[d][p] for d, p in zip(pages["document_value"], pages["page"])])
split = pages["document_value"].map(split_of).to_numpy()

scale = x_all.std(axis=0)
model = {"mean": x_all.mean(axis=0), "scale": np.where(scale > 0, scale, 1.0),
         "weights": np.zeros(x_all.shape[1]), "bias": np.zeros(1)}
# first pages are the rarer class: weigh them up so that recall is not traded for accuracy
weight = np.where(y, (~y).sum() / max(1, y.sum()), 1.0)
standard = (x - model["mean"]) / model["scale"]


def scores(part: str) -> tuple[float, float]:
    predicted = first_page_scores(model, x_all[split == part]) > 0
    actual = truth[split == part]
    hits = (predicted & actual).sum()
    return float(hits / max(1, actual.sum())), float(hits / max(1, predicted.sum()))


with trellis.checkpointing(model=model):
    for epoch in trellis.loop("epoch", range(epochs)):
        for _ in range(steps):
            p = 1 / (1 + np.exp(-(standard @ model["weights"] + model["bias"][0])))
            error = (p - y) * weight
            model["weights"] -= lr * standard.T @ error / len(y)
            model["bias"] -= lr * error.mean()
        p = 1 / (1 + np.exp(-(standard @ model["weights"] + model["bias"][0])))
        trellis.log("loss", float(-np.mean(y * np.log(p + 1e-9) + (~y) * np.log(1 - p + 1e-9))))
        val_recall, val_precision = scores("validation")
        test_recall, test_precision = scores("test")
        trellis.log("val_recall", val_recall)
        trellis.log("val_precision", val_precision)
        trellis.log("test_recall", test_recall)
        trellis.log("test_precision", test_precision)

print(f"trained on {len(y)} pages labelled by people: validation recall {val_recall:.2f}")
