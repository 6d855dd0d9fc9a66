"""Generate the raw documents: multi-page scans made of scikit-learn's bundled digit images.

Every document starts with a cover page (mostly a 0, sometimes a 6) followed by content pages
(other digits, now and then a 0 as well), so telling first pages apart is learnable but not
trivial. Deterministic, and nothing is downloaded. A few documents come with labels.
"""

import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

DOCUMENTS = 200
LABELLED = 6

digits = load_digits()
by_class = {c: np.flatnonzero(digits.target == c) for c in range(10)}
rng = np.random.default_rng(7)
raw = Path("raw")
raw.mkdir(exist_ok=True)
labels = {}
for number in range(DOCUMENTS):
    pages = []
    for position in range(int(rng.integers(2, 7))):
        if position == 0:
            digit = 0 if rng.random() < 0.75 else 6
        else:
            digit = 0 if rng.random() < 0.08 else int(rng.integers(1, 10))
        image = digits.images[rng.choice(by_class[digit])]
        pages.append((image / 16.0).round(3).tolist())
    name = f"doc_{number:03d}"
    (raw / f"{name}.json").write_text(json.dumps({"name": name, "pages": pages}))
    if number < LABELLED:
        labels[name] = [position == 0 for position in range(len(pages))]
(raw / "labels.json").write_text(json.dumps(labels, indent=1))
print(f"{DOCUMENTS} documents in {raw}/, {LABELLED} of them labelled")
