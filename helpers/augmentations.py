"""Notebook 02's tables and rendered findings: each recipe across seeds, judged against `none` and the report."""
from __future__ import annotations


import pandas as pd
from IPython.display import Markdown

from .config import Config
from .recipes import get_recipe
from .results import (NO_REFERENCE, REPORT_TEST_ACC, Reference, _as_list, column_spread, comparability,
                      final_spread, judge, md, pct, rule_note, seed_columns, verdict)
from .stats import spread

FINAL, BEST, TRAIN, GAP = "final test acc (%)", "best test acc (%)", "final train acc (%)", "train−test gap (points)"


def recipe_forms(recipes) -> Markdown:
    """Return each recipe's torchvision pipeline, printed by torchvision itself, as Markdown."""
    parts = []
    for r in recipes:
        rec = get_recipe(r)
        parts.append(f"**`{r}`** — {rec.about}\n\n```\n{rec.train_transform()!r}\n```")
    return md("\n\n".join(parts))


def recipe_table(runs: dict, per_seed: bool = False) -> pd.DataFrame:
    """Return one row per recipe: the report's accuracy and the measured ones as mean ± sd (n), each seed if asked.

    `runs` maps a recipe to its run or to the list of its seeds' runs.
    """
    rows = []
    for recipe, rs in runs.items():
        rs = _as_list(rs)
        rows.append({"recipe": recipe, "report test acc (%)": REPORT_TEST_ACC.get(recipe),
                     FINAL: final_spread(rs), BEST: spread(r.best_acc for r in rs),
                     TRAIN: column_spread(rs, "train_acc"),
                     GAP: spread(float(r.history["train_acc"].iloc[-1]) - r.final_acc for r in rs)})
    df = pd.DataFrame(rows)
    df["report test acc (%)"] = pd.to_numeric(df["report test acc (%)"], errors="coerce")
    return seed_columns(df, runs, "recipe", name="seed {seed} final test (%)") if per_seed else df


def _against_report(recipe: str, verdict_: str, rep: float) -> tuple[str, bool]:
    """Return the sentence setting a measured verdict against the report's direction, and whether it is opposite."""
    d_rep = rep - REPORT_TEST_ACC["none"]
    said = f" Report: {pct(rep)} ({d_rep:+.2f} vs its `none`, one run each)"
    report_up = d_rep > 0
    if verdict_ == "not resolved":
        return said + " — no difference from `none` under the rule, so the measurement neither confirms nor opposes its direction.", False
    if (verdict_ == "higher") == report_up:
        return said + " — **same direction** as the report.", False
    return (said + " — **the opposite direction** to the report's: here the recipe differs from `none`, "
            + ("lower." if verdict_ == "lower" else "higher, where the report found it lower.")), True


def recipe_findings(table: pd.DataFrame, cfg: Config, ref: Reference = NO_REFERENCE) -> Markdown:
    """Return, per recipe, the change against `none` judged under the rule, beside the report's direction."""
    t = table.set_index("recipe")
    if "none" not in t.index:
        return md("No `none` run to compare against.")
    base = t.loc["none"]
    lines, comparisons, opposite = [], [], 0
    for recipe, row in t.drop(index="none").iterrows():
        c = judge(row[FINAL], base[FINAL], ref)
        comparisons.append(c)
        line = (f"- **{recipe}**: {pct(row[FINAL])} final; " + verdict(c, "final test accuracy", "`none`'s")
                + f". Train–test gap {row[GAP].mean:.1f} points (`none`: {base[GAP].mean:.1f}).")
        rep = row["report test acc (%)"]
        if not pd.isna(rep):
            said, contra = _against_report(recipe, c.verdict, rep)
            line += said
            opposite += contra
        else:
            line += (" The report did not try this recipe; "
                     + {"higher": "it helps here.", "lower": "it does **not** help here: it differs from `none`, lower.",
                        "not resolved": "under the rule it does not differ from `none` here."}[c.verdict])
        lines.append(line)
    means = t[FINAL].map(lambda s: s.mean)
    order = list(means.sort_values(ascending=False).index)
    ranked = " > ".join(order)
    report_known = [r for r in order if not pd.isna(t.loc[r, "report test acc (%)"])]
    report_order = sorted(report_known, key=lambda r: -t.loc[r, "report test acc (%)"])
    # the ranking differs only where the report has a above b and the measurement resolves b above a
    reversed_pairs = [(a, b) for i, a in enumerate(report_order) for b in report_order[i + 1:]
                      if judge(t.loc[b, FINAL], t.loc[a, FINAL], ref).verdict == "higher"]
    order_text = (f"Ranking by mean final test accuracy: {ranked}. "
                  + ("Among the report's recipes no pair differs in the opposite order to the report's ranking."
                     if not reversed_pairs else
                     f"Among the report's recipes this **differs** from the report's ranking "
                     f"({' > '.join(report_order)}): "
                     + "; ".join(f"{b} above {a} (they differ)" for a, b in reversed_pairs) + "."))
    gaps = t[GAP].map(lambda s: s.mean)
    overfit = (f"The mean train–test gap is largest for **{gaps.idxmax()}** ({gaps.max():.1f} points) and "
               f"smallest for **{gaps.idxmin()}** ({gaps.min():.1f})"
               + (": augmentation shrinks the gap, as it should if it fights overfitting."
                  if gaps.idxmax() == "none" else ", so here augmentation does not simply shrink the gap."))
    summary = (f"{opposite} result(s) in the opposite direction to the report's." if opposite else
               "No result differs in the opposite direction to the report's findings.")
    return md("\n".join(lines) + f"\n\n{order_text}\n\n{overfit}\n\n{summary} {comparability(cfg)}\n\n"
              + rule_note(comparisons, ref))
