"""The statistics of `axp results`, against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from pytest_axp.query import stats


def test_wilson_8_of_10():
    # p = 0.8, z^2 = 3.841459; denominator 1 + z^2/n = 1.3841459
    # centre = (0.8 + z^2/20) / 1.3841459 = 0.9920729 / 1.3841459 = 0.7167402
    # half = z * sqrt(0.8*0.2/10 + z^2/400) / 1.3841459 = 1.959964 * 0.1600114 / 1.3841459
    #      = 0.2265777; published: 0.4902 to 0.9433
    low, high = stats.wilson_interval(8, 10)
    assert low == pytest.approx(0.490162, abs=1e-6)
    assert high == pytest.approx(0.943318, abs=1e-6)


def test_wilson_edges():
    # 0/5: centre = (z^2/10) / (1 + z^2/5) = half, so the interval starts at exactly 0;
    # upper = z^2/5 / (1 + z^2/5) = 0.768292 / 1.768292 = 0.434482.
    low, high = stats.wilson_interval(0, 5)
    assert low == 0.0
    assert high == pytest.approx(0.434482, abs=1e-6)
    low, high = stats.wilson_interval(5, 5)
    assert low == pytest.approx(1 - 0.434482, abs=1e-6) and high == 1.0
    # Nothing observed: nothing known.
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        stats.wilson_interval(3, 2)


def test_wilson_3_of_6_is_wider_than_half():
    # centre 0.5; half = z * sqrt(0.25/6 + z^2/144) / (1 + z^2/6)
    #                  = 1.959964 * 0.2614258 / 1.6402431 = 0.3123837
    low, high = stats.wilson_interval(3, 6)
    assert low == pytest.approx(0.187616, abs=1e-6)
    assert high == pytest.approx(0.812384, abs=1e-6)
    assert high - low > 0.5


def test_fisher_8_2_1_9():
    # Margins: rows 10/10, first column 9, n 20; C(20,9) = 167960.
    # P(a) = C(10,a) C(10,9-a) / 167960 for a = 0..9:
    #   10, 450, 5400, 25200, 52920, 52920, 25200, 5400, 450, 10   (sum 167960)
    # Observed a = 8 (450); tables no more likely: a in {0, 1, 8, 9} -> 920 / 167960.
    assert stats.fisher_exact([[8, 2], [1, 9]]) == pytest.approx(920 / 167960, rel=1e-9)
    assert stats.fisher_exact([[8, 2], [1, 9]]) == pytest.approx(0.0054775, abs=1e-7)


def test_fisher_other_tables():
    # [[6,0],[3,3]]: rows 6/6, column 9, n 12; C(12,9) = 220; P(a), a = 3..6: 20, 90, 90, 20.
    assert stats.fisher_exact([[6, 0], [3, 3]]) == pytest.approx(40 / 220, rel=1e-9)
    # [[5,0],[0,5]]: C(10,5) = 252; only the two extreme tables are as unlikely.
    assert stats.fisher_exact([[5, 0], [0, 5]]) == pytest.approx(2 / 252, rel=1e-9)
    # Identical rows: p = 1 (every table is at least as extreme as the most likely one).
    assert stats.fisher_exact([[3, 3], [3, 3]]) == pytest.approx(1.0)
    # A zero margin: nothing to test.
    assert stats.fisher_exact([[0, 0], [2, 3]]) == 1.0
    assert stats.fisher_exact([[4, 0], [2, 0]]) == 1.0
    # Symmetric in the rows and in the columns.
    assert stats.fisher_exact([[1, 9], [8, 2]]) == pytest.approx(
        stats.fisher_exact([[8, 2], [1, 9]])
    )
    assert stats.fisher_exact([[2, 8], [9, 1]]) == pytest.approx(
        stats.fisher_exact([[8, 2], [1, 9]])
    )


def test_pass_hat_k():
    groups = [[True, True, True], [True, False, True], [True, True, True], [False, False, False]]
    assert stats.pass_hat_k(groups, 3) == 0.5
    # A set cut short does not count as a complete one.
    assert stats.pass_hat_k([*groups, [True]], 3) == 0.5
    assert stats.pass_hat_k([[True], [False], [True], [True]], 1) == 0.75
    assert stats.pass_hat_k([[True, True]], 3) is None
    with pytest.raises(ValueError):
        stats.pass_hat_k(groups, 0)


def test_median_and_mean():
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 3, 2]) == 2.5
    assert stats.median([]) is None
    assert stats.mean([1, 2, 3, 4]) == 2.5
    assert stats.mean([]) is None
    assert math.isclose(stats.mean([0.1] * 10), 0.1)
