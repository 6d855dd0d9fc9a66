"""Comparing a replayed segment's recomputed values with the recorded ones (pure functions)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from trellis.replaying.verifying import verify
from trellis.store.cells import cell

EPOCH = (("epoch", 0, 1),)


def recorded_of(*values: float) -> dict:
    return {("loss", EPOCH): [cell(v) for v in values]}


def checks_of(*values: float) -> list:
    return [["loss", [list(step) for step in EPOCH], *cell(v)] for v in values]


@given(st.floats(allow_nan=True))
def test_a_float_equals_only_itself_bit_for_bit(value):
    assert verify(checks_of(value), recorded_of(value), "epoch", {1}, False).exact
    other = math.nextafter(value, math.inf) if not math.isnan(value) and value != math.inf else 0.5
    if not (math.isnan(value) or other == value):
        verdict = verify(checks_of(other), recorded_of(value), "epoch", {1}, False)
        assert not verdict.exact and verdict.mismatch.startswith("loss at epoch 1: ")


def test_zero_and_negative_zero_differ_unless_a_tolerance_allows():
    assert not verify(checks_of(-0.0), recorded_of(0.0), "epoch", {1}, False).exact
    assert verify(checks_of(1.0 + 1e-12), recorded_of(1.0), "epoch", {1}, False, tolerance=1e-9).exact
    assert not verify(checks_of(1.0 + 1e-6), recorded_of(1.0), "epoch", {1}, False, tolerance=1e-9).exact


def test_a_value_the_replay_did_not_log_in_an_iteration_it_ran_in_full_is_a_mismatch():
    verdict = verify(checks_of(0.5), recorded_of(0.5, 0.25), "epoch", {1}, False)
    assert verdict.mismatch == "loss at epoch 1: the run logged 0.25, the replay did not"
    # The same iteration with its inner loops restored logs only part of it: not a mismatch.
    assert verify(checks_of(0.5), recorded_of(0.5, 0.25), "epoch", set(), False).exact
    extra = verify(checks_of(0.5, 0.25), recorded_of(0.5), "epoch", {1}, False)
    assert extra.mismatch == "loss at epoch 1: the replay logged 0.25, the run logged no such value"
