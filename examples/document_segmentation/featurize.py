"""Text and layout features of every page, logged per loop("document") / loop("page"): the store
is the feature store that train.py, infer.py and the labelling app read back with
trellis.dataframe."""

import json
import re
from pathlib import Path

import trellis

FIELD = re.compile(r"^(To|From|Subject|Date):")
PAGE_NUMBER = re.compile(r"^(?:page\s+)?(\d+)(?:\s+of\s+\d+)?$", re.IGNORECASE)

split = json.loads(Path("pages/pages.json").read_text())
documents = sorted(split)
pages = 0
for document in trellis.loop("document", documents):
    for position in trellis.loop("page", range(len(split[document]))):
        lines, pictures = split[document][position]["lines"], split[document][position]["pictures"]
        text = " ".join(line[2] for line in lines)
        largest = max(lines, key=lambda line: line[1], default=[1.0, 0.0, ""])
        topmost = min(lines, key=lambda line: line[0], default=[1.0, 0.0, ""])
        # the printed page number: the last line at the foot of the page that is only a number
        footers = [PAGE_NUMBER.match(line[2]) for line in lines if line[0] > 0.9]
        numbers = [int(match.group(1)) for match in footers if match]
        trellis.log("heading", largest[2])
        trellis.log("heading_size", largest[1])
        trellis.log("heading_top", largest[0])
        trellis.log("top_line_size", topmost[1])
        trellis.log("page_number", numbers[-1] if numbers else 0)
        trellis.log("words", len(text.split()))
        trellis.log("pictures", len(pictures))
        trellis.log("fields", sum(bool(FIELD.match(line[2])) for line in lines))
        trellis.log("greeting", any(line[2].startswith("Dear ") for line in lines))
        trellis.log("text", text)
        pages += 1
trellis.log("pages", pages)
print(f"{len(documents)} documents, {pages} pages featurized")
