"""What train.py, export_model.py and infer.py share: the features as a matrix, and the split of
the PDFs into those people may label, a validation set that chooses the epoch and a held-out
test set that scores the exported model."""

import numpy as np

FEATURES = ["heading_size", "heading_top", "top_line_size", "page_number", "words", "pictures",
            "fields", "greeting"]
VALIDATION_FROM, TEST_FROM = 70, 95  # doc_070 .. doc_094 validate, doc_095 .. doc_119 test


def split_of(document: str) -> str:
    number = int(document.split("_")[1])
    return "test" if number >= TEST_FROM else "validation" if number >= VALIDATION_FROM else "pool"


def features():
    """Every page's features from the newest featurize run: (frame, matrix)."""
    import trellis  # here, so that feedback.py, which only needs split_of, is no run of its own

    frame = trellis.dataframe(*FEATURES, latest=True).sort_values(["document", "page"])
    frame = frame.reset_index(drop=True)
    values = frame[FEATURES].astype(float).to_numpy()
    # where the page sits in its PDF, and whether it says it is a page 1 or a later page
    layout = np.column_stack([frame["page"] == 0, frame["page_number"] == 1, frame["page_number"] > 1])
    return frame, np.column_stack([values, layout.astype(float)])


def first_page_scores(model, x):
    """The model's log-odds that each page is a first page (positive: it is)."""
    return (x - model["mean"]) / model["scale"] @ model["weights"] + model["bias"][0]
