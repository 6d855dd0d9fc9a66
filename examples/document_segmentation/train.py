"""Train the first-page classifier on every labelled page, human feedback included.

Labels come from raw/labels.json and from the confirmations people made in the labelling app,
read back through trellis.dataframe: each round of feedback grows the training set.
"""

import json
from pathlib import Path

import numpy as np

import trellis

lr = trellis.arg("lr", 1.0)
epochs = trellis.arg("epochs", 20)
steps = trellis.arg("steps", 10)
VALIDATION_FROM = 140

pages = np.load("features/pages.npz")
index = {(d, int(p)): i for i, (d, p) in enumerate(zip(pages["document"], pages["position"]))}
labels = {}
for document, flags in json.loads(Path("raw/labels.json").read_text()).items():
    for position, first in enumerate(flags):
        labels[document, position] = first

feedback = 0
try:
    confirmed = trellis.dataframe("confirmed_first_page")
except trellis.UnknownNameError:
    confirmed = None  # nobody has confirmed anything yet
if confirmed is not None:
    # the newest confirmation of a page wins
    for row in confirmed.sort_values("tstamp").itertuples():
        labels[row.document_value, int(row.page)] = bool(row.confirmed_first_page)
        feedback += 1

# Held-out documents, never shown for labelling, scored against their true structure (a
# document's first page is its first page), so that every round is measured the same way.
held_out = {d for d in pages["document"].tolist() if int(d.split("_")[1]) >= VALIDATION_FROM}
train_keys = [k for k in labels if k in index and k[0] not in held_out]
valid_keys = [k for k in index if k[0] in held_out]
x = pages["features"][[index[k] for k in train_keys]]
y = np.array([labels[k] for k in train_keys], dtype=float)
x_valid = pages["features"][[index[k] for k in valid_keys]]
y_valid = np.array([position == 0 for _, position in valid_keys])
trellis.log("training_pages", len(train_keys))
trellis.log("feedback_labels", feedback)

model = {"weights": np.zeros(x.shape[1]), "bias": np.zeros(1)}


def probability(features):
    return 1.0 / (1.0 + np.exp(-(features @ model["weights"] + model["bias"][0])))


# First pages are the rarer class: weigh them up so that recall is not traded for accuracy.
weight = np.where(y == 1, (y == 0).sum() / max(1, (y == 1).sum()), 1.0)

with trellis.checkpointing(model=model):
    for epoch in trellis.loop("epoch", range(epochs)):
        for step in range(steps):
            error = (probability(x) - y) * weight
            model["weights"] -= lr * x.T @ error / len(y)
            model["bias"] -= lr * error.mean()
        p = probability(x)
        loss = float(-np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9)))
        predicted = probability(x_valid) > 0.5
        accuracy = float(np.mean(predicted == y_valid))
        recall = float(predicted[y_valid].mean()) if y_valid.any() else 0.0
        trellis.log("loss", loss)
        trellis.log("acc", accuracy)
        trellis.log("recall", recall)

print(f"trained on {len(train_keys)} pages ({feedback} from feedback): recall {recall:.3f}")
