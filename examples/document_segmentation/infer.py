"""Segment every PDF with the exported model: predicted_first_page per loop("document") /
loop("page"), into the store, where the labelling app reads it."""

import numpy as np

import trellis
from segmentation import features, first_page_scores

model = np.load("model/model.npz")
pages, x = features()
first = dict(zip(zip(pages["document_value"], pages["page"]), (first_page_scores(model, x) > 0).tolist()))
documents = sorted(set(pages["document_value"]))
for document in trellis.loop("document", documents):
    count = int((pages["document_value"] == document).sum())
    for position in trellis.loop("page", range(count)):
        trellis.log("predicted_first_page", first[document, position])
print(f"segmented {len(documents)} PDFs: {sum(first.values())} documents found")
