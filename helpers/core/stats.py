"""Spread across seeds, the one rule that says whether two experiments differ (`RULE`; with one seed on a side,
`RULE_REFERENCE`, else not judged), and the verdict table built on it."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import pandas as pd

ALPHA = 0.05  # two-sided level of the t-test
RULE = ("A differs from B when Welch's t-test finds their means different at the 5% level (two-sided, "
        "Welch–Satterthwaite degrees of freedom, at least two seeds a side); otherwise they are consistent")
RULE_REFERENCE = ("the seed-to-seed sd of the reference runs stands in for both sides' sd, with its degrees of freedom "
                  "(an assumption: that these runs vary from seed to seed as those do)")


@dataclass(frozen=True)
class Spread:
    """The values of one experiment across seeds, with their n, mean and sample sd (nan when too few)."""
    values: tuple

    n = property(lambda self: len(self.values))
    mean = property(lambda self: statistics.fmean(self.values) if self.n else math.nan)
    sd = property(lambda self: statistics.stdev(self.values) if self.n >= 2 else math.nan)

    def format(self, digits: int = 2, unit: str = "%") -> str:
        """Return 'mean ± sd (n=k)', or 'value (n=1)' for one seed."""
        sd = f" ± {self.sd:.{digits}f}" if self.n > 1 else ""
        return f"{self.mean:.{digits}f}{sd}{unit} (n={self.n})" if self.n else "–"

    __str__ = format


def spread(values) -> Spread:
    """Return the Spread of an iterable of numbers (NaNs dropped)."""
    return Spread(tuple(float(v) for v in values if v is not None and not math.isnan(float(v))))


@dataclass(frozen=True)
class Comparison:
    """A against B: the difference of means, its standard error, degrees of freedom, p-value and verdict."""
    a: Spread
    b: Spread
    diff: float                  # mean(A) - mean(B), in points
    se: float | None             # standard error of the difference (None: cannot be judged)
    df: float | None             # degrees of freedom of the t-test
    basis: str                   # "welch" | "reference" | "too few seeds"

    @property
    def p(self) -> float | None:
        """Return the two-sided p-value of the t-test (None when the difference cannot be judged)."""
        if not self.se:
            return None if self.se is None else float(self.diff == 0)
        from scipy.special import stdtr  # Student-t CDF; scipy comes with grad-cam
        return float(2.0 * stdtr(self.df, -abs(self.diff / self.se)))

    judged = property(lambda self: self.se is not None, doc="Whether there was a spread to judge the difference with.")
    resolved = property(lambda self: self.judged and self.p < ALPHA, doc="Whether A and B differ at the 5% level.")


def compare(a, b, reference_sd: float | None = None, reference_df: float | None = None) -> Comparison:
    """Return the Comparison of A and B (Spreads or values); one seed a side: `reference_sd` (df 1) stands in."""
    a, b = (x if isinstance(x, Spread) else spread(x) for x in (a, b))
    if a.n == 0 or b.n == 0:
        raise ValueError(f"compare needs at least one value on each side; got n={a.n} and n={b.n}")
    diff = a.mean - b.mean
    if a.n >= 2 and b.n >= 2:
        va, vb = a.sd ** 2 / a.n, b.sd ** 2 / b.n  # Welch–Satterthwaite; no spread at all: n_A + n_B - 2
        df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1)) if va + vb else float(a.n + b.n - 2)
        return Comparison(a, b, diff, math.sqrt(va + vb), df, "welch")
    if reference_sd is not None and not math.isnan(reference_sd):
        return Comparison(a, b, diff, reference_sd * math.sqrt(1 / a.n + 1 / b.n), float(reference_df or 1),
                          "reference")
    return Comparison(a, b, diff, None, None, "too few seeds")


def pooled_sd(spreads) -> float:
    """Return the pooled seed-to-seed sd of several experiments (nan when none has two seeds)."""
    dof = pooled_df(spreads)
    return math.sqrt(sum((s.n - 1) * s.sd ** 2 for s in spreads if s.n >= 2) / dof) if dof else math.nan


def pooled_df(spreads) -> int:
    """Return the degrees of freedom of the pooled sd: the sum of n - 1 over experiments with two seeds or more."""
    return sum(s.n - 1 for s in spreads if s.n >= 2)


VERDICT_COLUMNS = ("claim", "A", "B", "difference", "spread", "rule", "verdict")


@dataclass(frozen=True)
class Verdict:
    """One judged claim: side A against side B, with the Comparison that judges it."""
    claim: str              # what is judged, short: "random crop beats no augmentation"
    a: str                  # label of side A, e.g. "crop"
    b: str                  # label of side B, e.g. "none" or "the report"
    comparison: Comparison

    def row(self, digits: int = 2) -> dict:
        """Return the row as text: claim, A, B, difference, spread, rule and verdict."""
        c = self.comparison
        judged = ("–", "not judged: one seed a side", "not judged")
        if c.judged:
            p = "p < 0.001" if c.p < 0.001 else f"p = {c.p:.3f}"
            judged = (f"se {c.se:.{digits}f}", f"Welch t, df {c.df:.1f}" if c.basis == "welch" else
                      f"reference sd {c.se / math.sqrt(1 / c.a.n + 1 / c.b.n):.{digits}f}, df {c.df:g}",
                      f"differs ({p}), {'higher' if c.diff > 0 else 'lower'}" if c.resolved else f"consistent ({p})")
        sides = f"{self.a} {c.a.format(digits)}", f"{self.b} {c.b.format(digits)}"
        return dict(zip(VERDICT_COLUMNS, (self.claim, *sides, f"{c.diff:+.{digits}f} points", *judged)))


def verdict_frame(verdicts) -> pd.DataFrame:
    """Return one row per Verdict, with the columns claim, A, B, difference, spread, rule and verdict."""
    return pd.DataFrame([v.row() for v in verdicts], columns=list(VERDICT_COLUMNS))


def verdict_markdown(verdicts) -> str:
    """Return the verdict rows as a Markdown table (landing page, README)."""
    rows = [list(VERDICT_COLUMNS), ["---"] * len(VERDICT_COLUMNS)]
    rows += [[str(x).replace("|", "\\|") for x in v.row().values()] for v in verdicts]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)
