"""The spread of an experiment and the rule that says whether two differ (Welch's t-test at 5%): every branch,
and the Student-t distribution against known values."""
import math

import pytest

from helpers.core.stats import Verdict, compare, pooled_df, pooled_sd, spread, verdict_frame, verdict_markdown


def t_two_sided_p(t, df):
    """The p of a difference t with standard error 1: one seed a side, a reference sd of 1/sqrt(2) with `df`."""
    return compare([t], [0.0], reference_sd=math.sqrt(0.5), reference_df=df).p


def test_spread_mean_sd_min_max_and_format():
    s = spread([80.0, 82.0, 84.0])
    assert (s.n, s.mean, s.sd) == (3, 82.0, 2.0)
    assert s.format() == "82.00 ± 2.00% (n=3)"
    one = spread([81.5])
    assert one.n == 1 and math.isnan(one.sd) and one.format() == "81.50% (n=1)"
    assert spread([1.0, float("nan")]).n == 1


@pytest.mark.parametrize("t, df, p", [
    (12.706205, 1, 0.05), (4.302653, 2, 0.05), (3.182446, 3, 0.05), (2.776445, 4, 0.05), (2.228139, 10, 0.05),
    (4.032143, 5, 0.01), (1.812461, 10, 0.10), (1.959964, 1e7, 0.05), (0.0, 3, 1.0)])
def test_student_t_matches_the_tables(t, df, p):
    assert t_two_sided_p(t, df) == pytest.approx(p, abs=2e-7)
    assert t_two_sided_p(-t, df) == pytest.approx(p, abs=2e-7)


@pytest.mark.parametrize("t", [0.1, 0.7, 1.0, 2.5, 9.0, 40.0])
def test_student_t_matches_the_closed_forms_for_one_and_two_degrees_of_freedom(t):
    assert t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-10)  # Cauchy
    assert t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10)


def test_welch_finds_a_clear_difference_and_not_a_small_one():
    a, b = [84.0, 84.2, 83.8], [81.0, 81.3, 80.7]
    c = compare(a, b)
    se = math.sqrt(0.04 / 3 + 0.09 / 3)
    df = (0.04 / 3 + 0.09 / 3) ** 2 / ((0.04 / 3) ** 2 / 2 + (0.09 / 3) ** 2 / 2)
    assert c.basis == "welch" and c.se == pytest.approx(se) and c.df == pytest.approx(df)
    assert c.p == pytest.approx(t_two_sided_p(3.0 / se, df)) and c.resolved and c.diff > 0
    assert c.diff / c.se == pytest.approx(14.41, abs=0.01) and Verdict("x", "a", "b", c).row()["verdict"] == "differs (p < 0.001), higher"
    assert compare(b, a).resolved and compare(b, a).diff < 0
    close = compare([81.0, 82.0, 83.0], [81.5, 82.5, 80.5])
    assert close.basis == "welch" and not close.resolved and close.p > 0.5


def test_two_seeds_a_side_at_two_standard_errors_is_not_a_difference():
    """The old rule (beyond 2 SE) called this resolved; with df = 2 the t-test does not (p = 0.17)."""
    c = compare([81.0, 83.0], [78.0, 80.0])  # diff 3, se sqrt(2), t = 2.12
    t = 3 / math.sqrt(2)
    assert c.diff / c.se == pytest.approx(t) and c.df == pytest.approx(2.0) and abs(c.diff) > 2 * c.se
    assert c.p == pytest.approx(1 - t / math.sqrt(2 + t * t)) and not c.resolved


def test_one_seed_is_not_judged_without_a_measured_spread():
    c = compare([84.0], [79.0])
    assert c.basis == "too few seeds" and c.se is None and c.p is None and not c.judged and not c.resolved
    assert Verdict("x", "a", "b", c).row()["verdict"] == "not judged"


def test_one_seed_is_judged_against_the_reference_spread_with_its_degrees_of_freedom():
    big = compare([84.0], [79.0], reference_sd=0.5, reference_df=6)  # t = 5 / (0.5 * sqrt 2) = 7.07
    assert big.basis == "reference" and big.df == 6 and big.resolved and big.diff > 0
    assert big.p == pytest.approx(t_two_sided_p(5 / (0.5 * math.sqrt(2)), 6))
    assert Verdict("x", "a", "b", big).row()["rule"] == "reference sd 0.50, df 6"
    small = compare([80.0], [79.0], reference_sd=0.6, reference_df=6)
    assert small.basis == "reference" and not small.resolved


def test_compare_needs_values_and_pooled_sd_ignores_single_seeds():
    with pytest.raises(ValueError, match="at least one value"):
        compare([], [1.0])
    assert pooled_sd([spread([1.0, 3.0]), spread([5.0])]) == pytest.approx(math.sqrt(2.0))
    assert pooled_df([spread([1.0, 3.0, 4.0]), spread([5.0]), spread([1.0, 2.0])]) == 3
    assert math.isnan(pooled_sd([spread([1.0])]))
    flat = compare([1.0, 1.0], [2.0, 2.0])  # no spread at all: df n_A + n_B - 2, and any difference differs
    assert (flat.df, flat.se, flat.p, flat.resolved) == (2, 0, 0.0, True) and compare([1.0, 1.0], [1.0, 1.0]).p == 1


def test_verdict_rows_render_a_welch_a_reference_and_a_not_judged_comparison():
    welch = Verdict("crop beats none", "crop", "none", compare([84.0, 84.2, 83.8], [81.0, 81.3, 80.7]))
    ref = Verdict("measured matches the report", "measured", "the report",
                  compare([80.0], [79.0], reference_sd=0.6, reference_df=6))
    alone = Verdict("one seed each", "a", "b", compare([84.0], [79.0]))
    frame = verdict_frame([welch, ref, alone])
    assert list(frame.columns) == ["claim", "A", "B", "difference", "spread", "rule", "verdict"]
    assert frame.iloc[0].to_dict() == {
        "claim": "crop beats none", "A": "crop 84.00 ± 0.20% (n=3)", "B": "none 81.00 ± 0.30% (n=3)",
        "difference": "+3.00 points", "spread": f"se {math.sqrt(0.13 / 3):.2f}", "rule": "Welch t, df 3.5",
        "verdict": "differs (p < 0.001), higher"}
    p = t_two_sided_p(1 / (0.6 * math.sqrt(2)), 6)
    assert frame.iloc[1].to_dict() == {
        "claim": "measured matches the report", "A": "measured 80.00% (n=1)", "B": "the report 79.00% (n=1)",
        "difference": "+1.00 points", "spread": f"se {0.6 * math.sqrt(2):.2f}", "rule": "reference sd 0.60, df 6",
        "verdict": f"consistent (p = {p:.3f})"}
    assert frame.iloc[2][["difference", "spread", "rule", "verdict"]].tolist() == [
        "+5.00 points", "–", "not judged: one seed a side", "not judged"]
    assert Verdict("x", "a", "b", compare([1.0, 2.0, 3.0], [9.0, 9.5, 10.0])).row()["verdict"].endswith(", lower")
    assert welch.row(digits=1)["A"] == "crop 84.0 ± 0.2% (n=3)"


def test_verdict_markdown_is_a_table_of_the_same_rows():
    rows = [Verdict("a | b", "x", "y", compare([84.0, 84.2, 83.8], [81.0, 81.3, 80.7])),
            Verdict("one seed", "x", "y", compare([84.0], [79.0]))]
    lines = verdict_markdown(rows).splitlines()
    assert lines[0] == "| claim | A | B | difference | spread | rule | verdict |"
    assert lines[1] == "| --- | --- | --- | --- | --- | --- | --- |"
    assert lines[2].startswith("| a \\| b | x 84.00 ± 0.20% (n=3) | y 81.00 ± 0.30% (n=3) | +3.00 points |")
    assert lines[2].endswith("| Welch t, df 3.5 | differs (p < 0.001), higher |")
    assert lines[3].endswith("| – | not judged: one seed a side | not judged |") and len(lines) == 4
