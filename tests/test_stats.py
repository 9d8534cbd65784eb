"""The spread of an experiment and the rule that resolves a difference: every branch."""
import math

import pytest

from helpers.stats import compare, pooled_sd, spread


def test_spread_mean_sd_min_max_and_format():
    s = spread([80.0, 82.0, 84.0])
    assert (s.n, s.mean, s.sd, s.lo, s.hi) == (3, 82.0, 2.0, 80.0, 84.0)
    assert s.format() == "82.00 ± 2.00% (n=3)"
    one = spread([81.5])
    assert one.n == 1 and math.isnan(one.sd) and one.format() == "81.50% (n=1)"
    assert spread([1.0, float("nan")]).n == 1


def test_welch_resolves_a_clear_difference_and_not_a_small_one():
    a, b = [84.0, 84.2, 83.8], [81.0, 81.3, 80.7]
    c = compare(a, b)
    assert c.basis == "welch" and c.resolved and c.verdict == "higher"
    assert c.threshold == pytest.approx(2 * math.sqrt(0.04 / 3 + 0.09 / 3))
    assert compare(b, a).verdict == "lower"
    close = compare([81.0, 82.0, 83.0], [81.5, 82.5, 80.5])
    assert close.basis == "welch" and not close.resolved and close.verdict == "not resolved"


def test_one_seed_is_not_resolved_without_a_measured_spread():
    c = compare([84.0], [79.0])
    assert c.basis == "too few seeds" and c.threshold is None and c.verdict == "not resolved"
    assert "not judged" in c.describe()


def test_one_seed_is_judged_against_the_reference_spread():
    big = compare([84.0], [79.0], reference_sd=0.5)    # 5 points against 2 * 0.5 * sqrt(2) = 1.41
    assert big.basis == "reference" and big.resolved and big.verdict == "higher"
    small = compare([80.0], [79.0], reference_sd=0.6)  # 1 point against 1.70
    assert small.basis == "reference" and not small.resolved


def test_compare_needs_values_and_pooled_sd_ignores_single_seeds():
    with pytest.raises(ValueError, match="at least one value"):
        compare([], [1.0])
    assert pooled_sd([spread([1.0, 3.0]), spread([5.0])]) == pytest.approx(math.sqrt(2.0))
    assert math.isnan(pooled_sd([spread([1.0])]))
