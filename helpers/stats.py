"""Spread across seeds, and the one rule that says whether a difference between two experiments is resolved.

Rule (rendered into every conclusion by `RULE`): A differs from B only when the difference of their mean test
accuracies exceeds two standard errors of that difference (Welch: sqrt(sd_A²/n_A + sd_B²/n_B)), with at least two
seeds on each side. With fewer seeds, a measured seed-to-seed sd from elsewhere (the reference runs) can stand in
for both sides' sd; without one, the difference is not resolved.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

RESOLVE_SE = 2.0  # a difference is resolved beyond this many standard errors of it
RULE = ("a difference counts only when it exceeds two standard errors of the difference of the means "
        "(Welch), with at least two seeds on each side")
RULE_REFERENCE = ("with a single seed, a difference counts only when it exceeds two standard errors computed "
                  "from the seed-to-seed spread measured in the reference runs")


@dataclass(frozen=True)
class Spread:
    """The values of one experiment across seeds, with their mean, sd, n, min and max."""
    values: tuple

    @property
    def n(self) -> int:
        """Return the number of seeds."""
        return len(self.values)

    @property
    def mean(self) -> float:
        """Return the mean (nan when empty)."""
        return sum(self.values) / self.n if self.n else math.nan

    @property
    def sd(self) -> float:
        """Return the sample standard deviation (n-1; nan with fewer than two values)."""
        if self.n < 2:
            return math.nan
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (self.n - 1))

    @property
    def lo(self) -> float:
        """Return the smallest value."""
        return min(self.values) if self.n else math.nan

    @property
    def hi(self) -> float:
        """Return the largest value."""
        return max(self.values) if self.n else math.nan

    def format(self, digits: int = 2, unit: str = "%") -> str:
        """Return 'mean ± sd (n=k)', or 'value (n=1)' for one seed."""
        if self.n == 0:
            return "–"
        if self.n == 1:
            return f"{self.mean:.{digits}f}{unit} (n=1)"
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}{unit} (n={self.n})"

    def __str__(self):
        return self.format()


def spread(values) -> Spread:
    """Return the Spread of an iterable of numbers (NaNs dropped)."""
    return Spread(tuple(float(v) for v in values if v is not None and not math.isnan(float(v))))


@dataclass(frozen=True)
class Comparison:
    """A against B: the difference of means, the threshold it must exceed, and the verdict."""
    a: Spread
    b: Spread
    diff: float                  # mean(A) - mean(B), in points
    threshold: float | None      # the difference must exceed this to be resolved (None: cannot be judged)
    basis: str                   # "welch" | "reference" | "too few seeds"

    @property
    def resolved(self) -> bool:
        """Return whether the difference exceeds its threshold."""
        return self.threshold is not None and abs(self.diff) > self.threshold

    @property
    def verdict(self) -> str:
        """Return 'higher', 'lower' (A against B) or 'not resolved'."""
        if not self.resolved:
            return "not resolved"
        return "higher" if self.diff > 0 else "lower"

    def describe(self, digits: int = 2) -> str:
        """Return the difference with its threshold, e.g. '+2.31 points (threshold ±0.84, Welch)'."""
        if self.threshold is None:
            return f"{self.diff:+.{digits}f} points (one seed a side and no measured spread: not judged)"
        basis = "Welch, 2 SE" if self.basis == "welch" else "2 SE from the reference runs' spread"
        return f"{self.diff:+.{digits}f} points (threshold ±{self.threshold:.{digits}f}, {basis})"


def compare(a, b, reference_sd: float | None = None) -> Comparison:
    """Return the Comparison of A and B (Spreads or lists of values) under the module's rule."""
    a, b = (x if isinstance(x, Spread) else spread(x) for x in (a, b))
    if a.n == 0 or b.n == 0:
        raise ValueError(f"compare needs at least one value on each side; got n={a.n} and n={b.n}")
    diff = a.mean - b.mean
    if a.n >= 2 and b.n >= 2:
        return Comparison(a, b, diff, RESOLVE_SE * math.sqrt(a.sd ** 2 / a.n + b.sd ** 2 / b.n), "welch")
    if reference_sd is not None and not math.isnan(reference_sd):
        return Comparison(a, b, diff, RESOLVE_SE * reference_sd * math.sqrt(1 / a.n + 1 / b.n), "reference")
    return Comparison(a, b, diff, None, "too few seeds")


def pooled_sd(spreads) -> float:
    """Return the pooled seed-to-seed sd of several experiments (nan when none has two seeds)."""
    num = sum((s.n - 1) * s.sd ** 2 for s in spreads if s.n >= 2)
    dof = sum(s.n - 1 for s in spreads if s.n >= 2)
    return math.sqrt(num / dof) if dof else math.nan
