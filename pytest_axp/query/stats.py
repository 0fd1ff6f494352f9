"""Small, exact statistics for comparing variants: stdlib only, no approximations we can avoid."""

from __future__ import annotations

import math
from collections.abc import Sequence

# The two-sided 95% normal quantile, to the digits that matter.
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Chosen over the normal ("Wald") interval because it stays inside [0, 1] and is
    still sensible at 0/n and n/n, which is exactly where small experiments land.
    With n == 0 nothing is known: the interval is the whole of [0, 1].
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} not within 0..{n}")
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # Clamp float noise at the edges (0/n and n/n give exactly 0 and 1 in theory).
    return max(0.0, center - half), min(1.0, center + half)


def pass_hat_k(groups: Sequence[Sequence[bool]], k: int) -> float | None:
    """pass^k: the fraction of groups of k repeats in which every repeat passed.

    Only groups of exactly k outcomes count, so a run set cut short does not
    masquerade as a complete one. None when there is no complete group.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    complete = [g for g in groups if len(g) == k]
    if not complete:
        return None
    return sum(1 for g in complete if all(g)) / len(complete)


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(table: Sequence[Sequence[int]]) -> float:
    """Two-sided Fisher exact test p-value of a 2x2 table [[a, b], [c, d]].

    Two-sided in the usual sense (R's fisher.test, SciPy's default): the sum of the
    probabilities of every table with the same margins that is no more likely than
    the observed one. A small relative tolerance keeps tables whose probability
    equals the observed one's up to rounding on the right side of the comparison.
    """
    (a, b), (c, d) = table
    if min(a, b, c, d) < 0:
        raise ValueError("counts must be non-negative")
    row1, row2, col1 = a + b, c + d, a + c
    n = row1 + row2
    if n == 0 or row1 == 0 or row2 == 0 or col1 == 0 or col1 == n:
        return 1.0  # a margin is zero: every table with these margins is the observed one

    def log_p(x: int) -> float:
        # Hypergeometric: x successes in row 1 given the margins.
        return _log_comb(row1, x) + _log_comb(row2, col1 - x) - _log_comb(n, col1)

    lo, hi = max(0, col1 - row2), min(row1, col1)
    observed = log_p(a)
    threshold = observed + math.log1p(1e-7)
    total = sum(math.exp(log_p(x)) for x in range(lo, hi + 1) if log_p(x) <= threshold)
    return min(1.0, total)


def median(values: Sequence[float]) -> float | None:
    """The middle value (mean of the two middle ones for an even count); None when empty."""
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    mid = len(data) // 2
    if len(data) % 2:
        return float(data[mid])
    return (data[mid - 1] + data[mid]) / 2


def mean(values: Sequence[float]) -> float | None:
    data = [v for v in values if v is not None]
    if not data:
        return None
    return math.fsum(data) / len(data)
