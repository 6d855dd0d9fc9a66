"""Split every PDF into its pages: each page's lines of text (with their size and height on the
page) and its pictures, parsed with pypdf, into pages/ for featurize.py and the labelling app."""

import json
from pathlib import Path

from pypdf import PdfReader

import trellis

out = Path("pages")
out.mkdir(exist_ok=True)
pdfs = sorted(Path("raw").glob("doc_*.pdf"))
split = {}
for document in trellis.loop("document", [pdf.stem for pdf in pdfs]):
    reader = PdfReader(Path("raw", f"{document}.pdf"))
    pages = []
    for position in trellis.loop("page", range(len(reader.pages))):
        page = reader.pages[position]
        height = float(page.mediabox.height)
        lines = []

        def visit(text, cm, tm, font, size):
            if text.strip():
                # distance from the top of the page, as a share of its height; size in points
                top = 1 - (tm[5] * cm[3] + cm[5]) / height
                lines.append([round(top, 3), round(size * tm[3], 1), text.strip()])

        page.extract_text(visitor_text=visit)
        pictures = []
        for number, image in enumerate(page.images):
            path = out / f"{document}_{position}_{number}.png"
            image.image.save(path)
            pictures.append(path.name)
        pages.append({"lines": lines, "pictures": pictures})
    split[document] = pages
(out / "pages.json").write_text(json.dumps(split))
total = sum(map(len, split.values()))
trellis.log("pages", total)
print(f"{len(pdfs)} PDFs split into {total} pages")
