"""Notebook 02's tables and verdicts: each recipe across seeds, judged against `none` and the report's ranking."""
from __future__ import annotations

import pandas as pd
from IPython.display import Markdown

from helpers.core.recipes import get_recipe
from .results import NO_REFERENCE, REPORT_TEST_ACC, Reference, _as_list, final_spread, judged, seed_columns
from helpers.core.stats import Verdict, spread

FINAL, BEST, TRAIN, GAP = "final test acc (%)", "best test acc (%)", "final train acc (%)", "train−test gap (points)"


def recipe_forms(recipes) -> Markdown:
    """Return each recipe's torchvision pipeline, printed by torchvision itself, as Markdown."""
    return Markdown("\n\n".join(f"**`{r}`** — {get_recipe(r).about}\n\n```\n{get_recipe(r).train_transform()!r}\n```"
                                for r in recipes))


def recipe_table(runs: dict, per_seed: bool = False) -> pd.DataFrame:
    """Return one row per recipe ({recipe: its runs}): the report's and the measured accuracies, each seed if asked."""
    df = pd.DataFrame([{"recipe": recipe, "report test acc (%)": REPORT_TEST_ACC.get(recipe) or float("nan"),
                        FINAL: final_spread(rs), BEST: spread(r.best_acc for r in rs),
                        TRAIN: final_spread(rs, "train_acc"),
                        GAP: spread(float(r.history["train_acc"].iloc[-1]) - r.final_acc for r in rs)}
                       for recipe, rs in ((k, _as_list(v)) for k, v in runs.items())])
    return seed_columns(df, runs, "recipe", name="seed {seed} final test (%)") if per_seed else df


def recipe_verdicts(table: pd.DataFrame, ref: Reference = NO_REFERENCE) -> list[Verdict]:
    """Return notebook 02's verdicts: each recipe against `none`, the report's ranking, and the train–test gaps."""
    t = table.set_index("recipe")
    if "none" not in t.index:
        raise ValueError(f"parameter 'table' has recipes {list(t.index)}; valid: a table with a 'none' row")
    report = t["report test acc (%)"].dropna().sort_values(ascending=False)
    others = [r for r in t.index if r != "none"]
    pairs = [(r, "none") for r in others] + [(a, b) for a, b in zip(report.index, report.index[1:]) if b != "none"]
    said = {(a, b): f" (report: {report[a] - report[b]:+.2f} points)" for a in report.index for b in report.index}
    gaps = [(f"{r} narrows the train–test gap", r, t.loc[r, GAP], "none", t.loc["none", GAP]) for r in others]
    return judged([(f"{a} beats {b}{said.get((a, b), '')}", a, t.loc[a, FINAL], b, t.loc[b, FINAL]) for a, b in pairs]
                  + gaps, ref)
