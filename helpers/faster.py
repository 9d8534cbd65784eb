"""The `fast` recipe against the report's protocol: accuracy per epoch and per minute, and the verdict.

The fast run holds out a validation split of the training set: its per-epoch curve is measured on
that split, so nothing about the schedule was chosen by looking at the test set, which the run
scores exactly once, at the end.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .config import Config
from .results import REPORT_TEST_ACC, md, pct

REPORT_BEST = max(v for v in REPORT_TEST_ACC.values() if v is not None)  # the crop run, 83.98%


def default_validation(cfg_train_size: int | None) -> int:
    """Return the validation hold-out for a training-set size: a tenth, at least 100 images."""
    return max(100, (cfg_train_size or 50_000) // 10)


def first_reaching(history: pd.DataFrame, target: float, column: str = "test_acc"):
    """Return (epoch, minutes of training so far) of the first epoch at or above target, else (None, None)."""
    hit = history[history[column] >= target]
    if hit.empty:
        return None, None
    e = int(hit["epoch"].iloc[0])
    return e, float(history.loc[history["epoch"] <= e, "seconds"].sum() / 60)


def speed_table(reference, fast, target: float = REPORT_BEST) -> pd.DataFrame:
    """Return one row per run: schedule, epochs, minutes, accuracies, and when it first reached target."""
    rows = []
    for label, run in (("report protocol (crop, StepLR)", reference), ("fast (crop+flip, OneCycle)", fast)):
        c, m = run.config, run.metrics
        validation = m.get("eval_set") == "validation"
        epoch, minutes = first_reaching(run.history, target)
        rows.append({"run": label, "schedule": c.get("schedule", "step"), "epochs": len(run.history),
                     "minutes": run.history["seconds"].sum() / 60,
                     "per-epoch curve on": "validation split" if validation else "test set",
                     "final curve acc (%)": run.final_acc,
                     "test acc (%)": m["heldout_test_acc"] if validation else run.final_acc,
                     f"first epoch ≥ {target:.2f}%": epoch, "minutes to it": minutes})
    return pd.DataFrame(rows)


def plot_speed(reference, fast, target: float = REPORT_BEST, axes=None):
    """Draw accuracy per epoch and per minute of training for both runs, target marked; return the Figure."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    fig = axes[0].figure
    curves = (("report protocol (test)", reference, "tab:green"), ("fast (validation)", fast, "tab:red"))
    for label, run, color in curves:
        h = run.history
        axes[0].plot(h["epoch"], h["test_acc"], ".-", color=color, label=label)
        axes[1].plot(h["seconds"].cumsum() / 60, h["test_acc"], ".-", color=color, label=label)
    for ax, xlabel in zip(axes, ("epoch", "minutes of training (this machine)")):
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"report's best, {target:.2f}%")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("Accuracy per epoch")
    axes[1].set_title("Accuracy per minute of training")
    return fig


def speed_conclusion(table: pd.DataFrame, cfg: Config, target: float = REPORT_BEST):
    """Return the verdict on the fast recipe, rendered from the measured table."""
    ref, fast = table.iloc[0], table.iloc[1]
    reached = fast["test acc (%)"] >= target
    text = (f"The fast recipe trained **{fast['epochs']} epochs in {fast['minutes']:.1f} min** and scored "
            f"**{pct(fast['test acc (%)'])}** on the test set, looked at once. The report's protocol here "
            f"trained {ref['epochs']} epochs in {ref['minutes']:.1f} min for {pct(ref['test acc (%)'])}. ")
    if cfg.profile == "full":
        text += (f"Against the report's best figure, {target:.2f}% after 60 epochs: the fast recipe "
                 + ("**reaches it**" if reached else f"**misses it by {target - fast['test acc (%)']:.2f} points**")
                 + f" with {fast['epochs'] / 60:.0%} of the epochs.")
    else:
        diff = fast["test acc (%)"] - ref["test acc (%)"]
        text += (f"In the `{cfg.profile}` profile neither run can reach the report's {target:.2f}%; compared "
                 f"with each other, the fast recipe is {diff:+.2f} points with "
                 f"{fast['epochs'] / max(ref['epochs'], 1):.0%} of the epochs and "
                 f"{fast['minutes'] / max(ref['minutes'], 1e-9):.0%} of the time.")
    return md(text)
