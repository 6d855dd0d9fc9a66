"""Whether a link between two cell executions carries data, or only code.

A cell that uses ``pd`` or ``RandomForestClassifier`` from the cell that imported them depends
on that cell, but none of the files that cell read flowed into what it built. Lineage shows such
a link but does not walk on into that cell's reads, and the provenance exports make it an
influence (``prov:wasInfluencedBy``) rather than information, when the name it goes through was
bound there by an import, a ``def``, a ``class`` or a literal (``analysis.cells.code_names``).
"""

from __future__ import annotations

from trellis.analysis.cells import code_names
from trellis.store.connection import Store


class DataFlow:
    """Answers ``carries_data(step, name)`` for the links of one store, reading each source once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.code: dict[int, frozenset[str]] = {}

    def carries_data(self, step: int, name: str) -> bool:
        """Whether the value of ``name`` that ``step`` left can hold anything it read."""
        if step not in self.code:
            found = self.store.execute("SELECT source FROM steps WHERE id = ?", (step,))
            source = found[0][0] if found else None
            self.code[step] = code_names(source) if isinstance(source, str) else frozenset()
        return name not in self.code[step]
