"""Provenance in the forms of the standards, and the notebook's own metadata.

Each format is registered here by name with the module that writes it; a module is imported
only when its format is asked for (rdflib and prov are optional and slow to import).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

FORMATS = {
    "prov-json": "prov", "prov-n": "prov", "prov-xml": "prov",
    "turtle": "rdf", "trig": "rdf", "json-ld": "rdf",
    "html": "html",
}


def serialize(data: dict[str, Any], format: str) -> str:
    """``data`` (from ``queries.provenance``) as text in ``format``, one of ``FORMATS``."""
    return import_module(f"trellis.exporting.{FORMATS[format]}").serialize(data, format)
