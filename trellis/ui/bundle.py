"""The one JS bundle (built by esbuild from ``frontend/`` and the npm packages in
``package.json``) and how to put it, with data, into a page."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from trellis._errors import TrellisError

BUNDLE = Path(__file__).parent / "static" / "trellis.js"


def bundle_text() -> str:
    try:
        return BUNDLE.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrellisError(
            "the trellis UI bundle is not built: in the trellis source folder run `make` "
            "(or `npm ci && npm run build`)"
        ) from None


def script_safe(text: str) -> str:
    """JavaScript text that cannot end the inline ``<script>`` element holding it (in strings
    and regular expressions, which is where such text can occur, ``<\\/`` means ``</``)."""
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE).replace("<!--", "<\\u0021--")


def json_for_script(data: Any) -> str:
    """JSON for a ``<script type="application/json">`` element: markup characters escaped, so
    no value (a cell's source, a file name) can close the element or open a comment."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    for character, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                               ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(character, escaped)
    return text
