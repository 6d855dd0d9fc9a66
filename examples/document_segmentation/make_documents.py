"""Make the raw PDFs: scanned batches, each holding one to three letters, invoices or reports.

The task is to find where each document of a batch starts (its first page). A letter opens
with a letterhead, a logo and "Dear ..."; an invoice with a large INVOICE heading; a report with
a title page; a memo with To/From/Subject lines. Continuation pages carry page numbers, section headings and figures — cues that
resemble a first page's (letterhead paper on every page, section headings as large as titles,
the scanner's page numbers stamped over the batch) often enough that a few labels are not enough. Everything is made here
from the words and pictures below, deterministically; nothing is downloaded.

Writes raw/doc_*.pdf and raw/answers.json: the true first pages, which only the simulated people
(hand_label.py, feedback.py) and the scoring of held-out documents read.
"""

import json
import textwrap
from pathlib import Path

import numpy as np
from fpdf import FPDF
from PIL import Image, ImageDraw

DOCUMENTS = 120
rng = np.random.default_rng(7)

COMPANIES = ["Northwind Trading", "Blue Harbor Freight", "Acme Instruments", "Larkspur Dairy",
             "Orchid Software", "Granite Mutual", "Fieldstone Clinic", "Silverline Rail"]
PEOPLE = ["Ms. Alvarez", "Mr. Okafor", "Dr. Lindqvist", "Ms. Tanaka", "Mr. Moreau", "Dr. Patel"]
TITLES = ["Annual Safety Review", "Quarterly Sales Summary", "Field Trial Results",
          "Maintenance Plan", "Audit of Supplier Contracts", "Network Upgrade Proposal"]
SECTIONS = ["Background", "Method", "Findings", "Costs", "Risks", "Next Steps", "Appendix"]
WORDS = ("the shipment order account schedule review payment delivery contract invoice quarter "
         "report figure table result customer supplier service period balance record request "
         "meeting agreed total amount please find attached regarding following update").split()


def sentence() -> str:
    words = rng.choice(WORDS, size=int(rng.integers(8, 16)))
    return " ".join(words).capitalize() + "."


def paragraph() -> str:
    return " ".join(sentence() for _ in range(int(rng.integers(2, 5))))


def picture(kind: str) -> Image.Image:
    """A logo (a coloured badge) or a figure (a bar chart), drawn here."""
    image = Image.new("RGB", (120, 80), "white")
    draw = ImageDraw.Draw(image)
    colour = tuple(int(c) for c in rng.integers(40, 220, size=3))
    if kind == "logo":
        draw.ellipse((10, 5, 80, 75), fill=colour)
        draw.rectangle((60, 30, 115, 50), fill=colour[::-1])
    else:
        for bar in range(6):
            height = int(rng.integers(10, 70))
            draw.rectangle((8 + bar * 18, 78 - height, 20 + bar * 18, 78), fill=colour)
    return image


def footer(pdf: FPDF, text: str) -> None:
    pdf.set_font("Helvetica", size=9)
    pdf.set_xy(20, 280)
    pdf.cell(170, 5, text, align="C")


def body(pdf: FPDF, paragraphs: int) -> None:
    pdf.set_font("Helvetica", size=10)
    for _ in range(paragraphs):
        # wrapped here, a line per cell: fpdf2's own line breaking is slow for hundreds of pages
        for line in textwrap.wrap(paragraph(), 95):
            pdf.set_x(20)
            pdf.cell(170, 5, line, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)


def letterhead(pdf: FPDF, company: str) -> None:
    if rng.random() < 0.8:
        pdf.image(picture("logo"), x=20, y=12, w=24)
        pdf.set_xy(48, 16)
    pdf.set_font("Helvetica", "B", size=int(rng.integers(15, 21)))
    pdf.cell(0, 10, company)
    pdf.set_xy(20, 40)


def letter(pdf: FPDF) -> int:
    pages = int(rng.integers(1, 4))
    numbered = pages > 1 and rng.random() < 0.5
    company = str(rng.choice(COMPANIES))
    headed = rng.random() < 0.8  # some letters come on plain paper
    every_page = headed and rng.random() < 0.4  # and some on letterhead paper throughout
    for page in range(pages):
        pdf.add_page()
        pdf.set_xy(20, 20)
        if headed and (page == 0 or every_page):
            letterhead(pdf, company)
        if page == 0:
            pdf.set_font("Helvetica", size=10)
            pdf.cell(0, 6, f"{int(rng.integers(1, 29))} March 2024", new_x="LMARGIN", new_y="NEXT")
            pdf.set_x(20)
            if rng.random() < 0.6:
                pdf.cell(0, 8, f"Dear {rng.choice(PEOPLE)},", new_x="LMARGIN", new_y="NEXT")
            else:
                pdf.cell(0, 8, f"Re: {rng.choice(SECTIONS)}", new_x="LMARGIN", new_y="NEXT")
        elif not every_page and rng.random() < 0.5:
            pdf.set_font("Helvetica", size=9)
            pdf.cell(0, 6, f"{company} - continued", new_x="LMARGIN", new_y="NEXT")
        pdf.set_x(20)
        body(pdf, int(rng.integers(2, 5)))
        if page == pages - 1:
            pdf.set_x(20)
            pdf.cell(0, 8, "Yours sincerely,")
        if numbered:
            footer(pdf, f"Page {page + 1} of {pages}")
    return pages


def invoice(pdf: FPDF) -> int:
    pages = 1 if rng.random() < 0.7 else 2
    number = int(rng.integers(1000, 9999))
    for page in range(pages):
        pdf.add_page()
        if page == 0:
            if rng.random() < 0.9:
                pdf.image(picture("logo"), x=160, y=12, w=30)
            pdf.set_xy(20, 18)
            pdf.set_font("Helvetica", "B", size=22)
            pdf.cell(0, 12, "INVOICE", new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", size=10)
            pdf.set_x(20)
            pdf.cell(0, 6, f"Invoice no. {number}   {rng.choice(COMPANIES)}", new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.set_xy(20, 20)
            pdf.set_font("Helvetica", size=10)
            pdf.cell(0, 6, f"Invoice no. {number} (continued)", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
        for _ in range(int(rng.integers(5, 14))):
            pdf.set_x(20)
            pdf.cell(120, 6, " ".join(rng.choice(WORDS, size=3)))
            pdf.cell(40, 6, f"{rng.integers(10, 999)}.00", align="R", new_x="LMARGIN", new_y="NEXT")
        if pages > 1:
            footer(pdf, f"Page {page + 1}")
    return pages


def memo(pdf: FPDF) -> int:
    """A memo opens plainly: a small heading and To/From/Subject lines, no logo, no number."""
    pages = int(rng.integers(1, 3))
    for page in range(pages):
        pdf.add_page()
        pdf.set_xy(20, 20)
        if page == 0:
            pdf.set_font("Helvetica", "B", size=12)
            pdf.cell(0, 8, "MEMORANDUM", new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", size=10)
            for field in (f"To: {rng.choice(PEOPLE)}", f"From: {rng.choice(PEOPLE)}",
                          f"Subject: {rng.choice(SECTIONS)}"):
                pdf.set_x(20)
                pdf.cell(0, 6, field, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
        pdf.set_x(20)
        body(pdf, int(rng.integers(2, 5)))
    return pages


def report(pdf: FPDF) -> int:
    pages = int(rng.integers(2, 5))
    for page in range(pages):
        pdf.add_page()
        if page == 0:
            pdf.set_xy(20, float(rng.integers(60, 110)))
            pdf.set_font("Helvetica", "B", size=int(rng.integers(20, 27)))
            pdf.cell(170, 12, str(rng.choice(TITLES)), align="C", new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", size=12)
            pdf.set_x(20)
            pdf.cell(170, 8, f"Prepared by {rng.choice(PEOPLE)}", align="C", new_x="LMARGIN", new_y="NEXT")
            if rng.random() < 0.5:
                pdf.image(picture("figure"), x=75, y=170, w=60)
            continue
        pdf.set_xy(20, 20)
        if rng.random() < 0.7:
            pdf.set_font("Helvetica", "B", size=int(rng.integers(14, 25)))
            pdf.cell(0, 10, str(rng.choice(SECTIONS)), new_x="LMARGIN", new_y="NEXT")
        if rng.random() < 0.4:
            pdf.image(picture("figure"), x=20, y=pdf.get_y() + 2, w=50)
            pdf.set_y(pdf.get_y() + 40)
        pdf.set_x(20)
        body(pdf, int(rng.integers(2, 5)))
        if rng.random() < 0.7:
            footer(pdf, str(page + 1))
    return pages


raw = Path("raw")
raw.mkdir(exist_ok=True)
answers = {}
for number in range(DOCUMENTS):
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_margins(20, 20)
    first_pages = []
    for _ in range(int(rng.integers(1, 4))):
        pages = rng.choice([letter, invoice, report, memo], p=[0.3, 0.2, 0.3, 0.2])(pdf)
        first_pages += [True] + [False] * (pages - 1)
    if rng.random() < 0.4:  # the scanner stamps the batch's own page numbers over the documents'
        for page in range(pdf.pages_count):
            pdf.page = page + 1
            footer(pdf, f"Page {page + 1}")
        pdf.page = pdf.pages_count
    name = f"doc_{number:03d}"
    pdf.output(str(raw / f"{name}.pdf"))
    answers[name] = first_pages
(raw / "answers.json").write_text(json.dumps(answers, indent=1))
print(f"{DOCUMENTS} PDFs in {raw}/, {sum(map(len, answers.values()))} pages")
