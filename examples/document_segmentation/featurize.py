"""Demultiplex documents into pages and compute each page's features."""

import json
from pathlib import Path

import numpy as np

import trellis

names, positions, features = [], [], []
documents = sorted(Path("raw").glob("doc_*.json"))
for document in trellis.loop("document", [d.stem for d in documents]):
    pages = json.loads(Path("raw", f"{document}.json").read_text())["pages"]
    for position in trellis.loop("page", range(len(pages))):
        image = np.array(pages[position])
        ink = float(image.mean())
        centre = float(image[2:6, 2:6].mean())
        # the pixels plus two shape summaries: a cover page's 0 has ink on the rim, not the centre
        features.append(np.concatenate([image.ravel(), [ink, centre]]))
        names.append(document)
        positions.append(position)
        trellis.log("ink", ink)
        trellis.log("centre", centre)

Path("features").mkdir(exist_ok=True)
np.savez("features/pages.npz", features=np.array(features), document=np.array(names),
         position=np.array(positions))
trellis.log("pages", len(features))
print(f"{len(documents)} documents, {len(features)} pages featurized")
