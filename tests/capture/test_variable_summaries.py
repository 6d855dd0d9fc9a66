"""Variable summaries of values a notebook holds, classes among them."""

from __future__ import annotations

import pytest

from trellis.capture.variables import summarize


@pytest.mark.parametrize("load", [
    lambda: __import__("sklearn.linear_model", fromlist=["x"]).LinearRegression,
    lambda: __import__("numpy").ndarray,
    lambda: __import__("pandas").DataFrame,
    lambda: type("Local", (), {"shape": property(lambda self: (1,)), "fit": lambda self: self}),
    lambda: int,
])
def test_a_class_is_summarized_as_a_class(load):
    cls = load()
    summary = summarize(cls)
    assert "summary_error" not in summary
    assert summary["class"] == f"{cls.__module__}.{cls.__qualname__}"
    assert set(summary) == {"type", "class"}
