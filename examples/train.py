"""A small training script: logistic regression by minibatch SGD on synthetic data.

Run it with different arguments, then read every run back:

    python examples/train.py --lr 0.1
    python examples/train.py --lr 0.5 --epochs 8
    trellis dataframe acc
"""

import numpy as np

import trellis

lr = trellis.arg("lr", 0.1)
epochs = trellis.arg("epochs", 5)
batch_size = trellis.arg("batch_size", 32)
seed = trellis.arg("seed", 0)

rng = np.random.default_rng(seed)
features = np.concatenate([rng.normal(-1.0, 1.0, (500, 2)), rng.normal(1.0, 1.0, (500, 2))])
labels = np.concatenate([np.zeros(500), np.ones(500)])
weights = np.zeros(3)


def predict(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ weights[:2] + weights[2])))


with trellis.checkpointing(weights=weights):
    for epoch in trellis.loop("epoch", range(epochs)):
        order = rng.permutation(len(features))
        for step in trellis.loop("step", range(len(features) // batch_size)):
            batch = order[step * batch_size:(step + 1) * batch_size]
            x, y = features[batch], labels[batch]
            p = predict(x)
            loss = -np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9))
            weights[:2] -= lr * x.T @ (p - y) / len(batch)
            weights[2] -= lr * np.mean(p - y)
            trellis.log("loss", loss)
        accuracy = np.mean((predict(features) > 0.5) == labels)
        trellis.log("acc", accuracy)

print(f"lr={lr} epochs={epochs}: accuracy {accuracy:.3f}")
