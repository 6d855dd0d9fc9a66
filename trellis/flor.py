"""The FlorDB paper's names over trellis: change ``import flor`` to ``from trellis import flor``.

``flor.log/arg/loop/checkpointing/commit/dataframe/iteration`` behave as in the paper, and
``flor.utils.latest(df)`` keeps the rows of each script's newest run.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

from trellis import arg, checkpointing, commit, dataframe, iteration, log, loop

if TYPE_CHECKING:
    import pandas


def _latest(frame: "pandas.DataFrame") -> "pandas.DataFrame":
    """The rows of the newest run of each script in ``frame``."""
    if frame.empty:
        return frame
    newest = frame.groupby("filename", dropna=False)["tstamp"].transform("max")
    return frame[frame["tstamp"] == newest]


def pivot(*names: str) -> "pandas.DataFrame":
    """FlorDB's older name for ``dataframe``."""
    return dataframe(*names)


utils = SimpleNamespace(latest=_latest)

__all__ = ["log", "arg", "loop", "checkpointing", "commit", "dataframe", "pivot", "iteration", "utils"]
