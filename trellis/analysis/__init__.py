"""Static analysis of source code: pure functions, no store, no other trellis layer.

Only the standard library is imported here; IPython is imported lazily, and only to rewrite a
cell that uses its syntax.
"""

from trellis.analysis.cells import CellAnalysis, Import, analyze_cell
from trellis.analysis.dependencies import VariableVersion, dependencies, version_graph

__all__ = [
    "CellAnalysis",
    "Import",
    "VariableVersion",
    "analyze_cell",
    "dependencies",
    "version_graph",
]
