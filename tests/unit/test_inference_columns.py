"""Online rows into a model's feature order: identity, reordering, subsets, missing features."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.inference.columns import column_indices


def test_the_same_order_needs_no_copy() -> None:
    assert column_indices(["a", "b", "c"], ["a", "b", "c"]) is None


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [(["c", "a", "b"], [2, 0, 1]), (["b"], [1]), (["c", "c"], [2, 2])],
)
def test_indices_pick_the_wanted_columns_in_order(wanted: list[str], expected: list[int]) -> None:
    indices = column_indices(["a", "b", "c"], wanted)
    assert indices is not None
    rows = np.arange(6).reshape(2, 3)  # columns a, b, c
    np.testing.assert_array_equal(rows[:, indices], rows[:, expected])


def test_a_feature_not_computed_online_is_named() -> None:
    with pytest.raises(KeyError, match="'d'"):
        column_indices(["a", "b"], ["a", "d"])
