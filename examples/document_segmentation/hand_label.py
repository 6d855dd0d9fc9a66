"""The first labels, made by hand: a person marks the first pages of a few PDFs, logged as
first_page per loop("document") / loop("page"), as the labelling app logs later confirmations.
The person here is simulated: their answers are the true ones, from raw/answers.json."""

import json
import time
from pathlib import Path

import trellis

HAND_LABELLED = 4

answers = json.loads(Path("raw/answers.json").read_text())
for document in trellis.loop("document", sorted(answers)[:HAND_LABELLED]):
    for position in trellis.loop("page", range(len(answers[document]))):
        trellis.log("first_page", answers[document][position])
        trellis.log("labelled_at", time.time())
print(f"{HAND_LABELLED} PDFs labelled by hand")
