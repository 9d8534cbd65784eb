"""README.md's results table, rendered from report/reference/ so that no figure in it is typed by hand:
experiment | the report | full-scale reference | quick reference runs (CPU), each column labelled with its scale."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config import experiment_name, make_config
from ..reference import profile_dir, reference_matches, replace_block
from ..runs import records
from .experiments import format_spread, report_figure, row_label

START, END = "<!-- results-table:start -->", "<!-- results-table:end -->"
# The report's experiments, then the fast recipe: (recipe, lr or None for the profile's own, tested without Normalize)
EXPERIMENTS = (("none", None, False), ("flip_rotate", None, False), ("crop", None, False),
               ("normalize", None, False), ("normalize", None, True), ("normalize", 0.5, False),
               ("normalize", 0.5, True), ("fast", None, False))
COLUMNS = {"full": "full-scale reference", "quick": "quick reference runs, CPU"}


def matches(profile: str, name: str, raw: bool, root=None) -> pd.DataFrame:
    """Return a reference profile's runs of one experiment scored on the test set (none without a folder)."""
    runs = reference_matches(profile, name, raw, root)
    return runs[runs["eval_set"] == "test"]


def scale(runs: list[pd.DataFrame]) -> tuple[int, int] | None:
    """Return the (training images, epochs) most of these runs share: the column's scale."""
    both = pd.concat([r for r in runs if len(r)], ignore_index=True) if any(len(r) for r in runs) else None
    if both is None:
        return None
    return tuple(both[["train_images", "epochs"]].astype(int).value_counts().index[0])


def cell(runs: pd.DataFrame, column_scale, with_device: bool) -> str:
    """Return 'mean ± sd% (n=k, device)' for one experiment at one scale ('–' without runs)."""
    from ..stats import spread
    s = spread(runs["score"])
    if s.n == 0:
        return "–"
    notes = [f"n={s.n}"] + ([", ".join(sorted(set(runs["device"].dropna())))] if with_device else [])
    own = sorted(set(zip(runs["train_images"].astype(int), runs["epochs"].astype(int))))
    if column_scale and own != [column_scale]:
        notes.append("; ".join(f"{e} epochs" for _, e in own))
    return f"{format_spread(s)} ({', '.join(notes)})"


def results_table(root=None) -> str:
    """Return the Markdown results table: experiment | report | full-scale reference | quick reference runs."""
    from ..results import REPORT_PROTOCOL
    configs = {(r, lr): make_config("full", recipe=r, data_dir="synthetic", **({"lr": lr} if lr else {}))
               for r, lr, _ in EXPERIMENTS}
    found = {(r, lr, m): {p: matches(p, experiment_name(configs[r, lr]), m, root) for p in COLUMNS}
             for r, lr, m in EXPERIMENTS}
    scales = {p: scale([f[p] for f in found.values()]) for p in COLUMNS}
    header = [f"the report (one run, {REPORT_PROTOCOL['train_images']:,} training images, "
              f"{REPORT_PROTOCOL['epochs']} epochs)"]
    for p, label in COLUMNS.items():
        size = f"{scales[p][0]:,} training images, {scales[p][1]} epochs" if scales[p] else "no runs recorded yet"
        header.append(f"{label} ({size}; mean ± sd, n{', device' if p == 'full' else ''})")
    lines = ["| experiment | " + " | ".join(header) + " |", "|---" * (1 + len(header)) + "|"]
    for (recipe, lr, raw), runs in found.items():
        cfg = configs[recipe, lr]
        figure = report_figure(experiment_name(cfg), cfg.lr, raw)
        cells = [cell(runs[p], scales[p], p == "full") for p in COLUMNS]
        if figure is None and all(c == "–" for c in cells):
            continue
        lines.append(f"| {row_label(experiment_name(cfg), cfg.lr, raw)} | {figure[1] if figure else '–'} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Test accuracy after the last epoch; n is the number of seeds. Rendered by "
              "`python -m helpers.reference readme` from `report/reference/full/` and `report/reference/quick/` "
              "(their README.md gives each run's command, device, commit and date); see docs/reference.md. "
              f"`make report` trains {seeds_phrase('quick')} per experiment in the quick profile and "
              f"{seeds_phrase('full')} in the full profile (`SEEDS=N` changes it)."]
    return "\n".join(lines)


def seeds_phrase(profile: str) -> str:
    """Return how many seeds `make report` trains per experiment in a profile, in words ('one seed', '3 seeds')."""
    from ..config import PROFILE_SEEDS
    n = PROFILE_SEEDS[profile]
    return "one seed" if n == 1 else f"{n} seeds"


def update_readme(path: Path, root=None) -> bool:
    """Rewrite the block between the results-table markers of README `path`; return whether it changed."""
    return update_block(path, START, END, results_table(root), "results table")


# ---- docs/results.md: every reference run, per profile, with each seed --------------------------------------

DETAIL_START, DETAIL_END = "<!-- reference-detail:start -->", "<!-- reference-detail:end -->"


def detail_table(profile: str, root=None) -> str:
    """Return one profile's reference runs as a Markdown table: an experiment per row, each seed in its cell."""
    from ..stats import spread
    folder = profile_dir(profile, root)
    runs = records(folder)
    runs["train_acc"] = [float(pd.read_csv(folder / f / "history.csv")["train_acc"].iloc[-1]) for f in runs["folder"]]
    groups = []
    for (experiment, raw), g in pd.concat([runs.assign(raw=False), runs.assign(
            raw=True, final_test_acc=runs["raw_final_test_acc"], best_test_acc=runs["raw_best_test_acc"])]).dropna(
            subset=["final_test_acc"]).groupby(["experiment", "raw"]):
        g = g.sort_values("seed")
        groups.append((-len(g), row_label(experiment, g["lr"].iloc[0], raw), g["epochs"].iloc[0], experiment, raw, g))
    lines = ["| experiment | epochs | report | last epoch (mean ± sd, n) | each seed, last epoch | best epoch (mean) "
             "| train acc, last epoch (mean) |", "|---" * 7 + "|"]
    for _, name, epochs, experiment, raw, g in sorted(groups, key=lambda t: t[:3]):
        final, best, train = (spread(g[c]) for c in ("final_test_acc", "best_test_acc", "train_acc"))
        figure = report_figure(experiment, g["lr"].iloc[0], raw)
        each = ", ".join(f"{s}: {v:.2f}" for s, v in zip(g["seed"], g["final_test_acc"]))
        lines.append(f"| {name} | {epochs} | {figure[1] if figure else '–'} | {format_spread(final)} (n={final.n}) "
                     f"| {each} | {best.mean:.2f}% | {train.mean:.2f}% |")
    return "\n".join(lines)


def detail_block(root=None) -> str:
    """Return docs/results.md's rendered block: a detail table per reference profile."""
    from ..reference import profiles
    parts = []
    for profile in profiles(root):
        parts += [f"### `report/reference/{profile}/`", "", detail_table(profile, root), ""]
    parts.append("Rendered by `python -m helpers.reference readme` from each run's record.json; "
                 "each folder's README.md gives every run's command, device, commit and date.")
    return "\n".join(parts)


def update_block(path: Path, start: str, end: str, block: str, what: str) -> bool:
    """Rewrite the block between two markers of the page `path`; return whether it changed."""
    path = Path(path)
    text = path.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{path.name} has no {what} markers {start} ... {end}; add them where the table goes")
    new = replace_block(text, start, end, block)
    if new != text:
        path.write_text(new)
    return new != text
