"""README.md's results table and verdicts, and docs/results.md's tables of every reference run, rendered from
report/reference/ so that no figure in them is typed by hand."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers.core.config import PROFILE_SEEDS, Config, experiment_name, make_config
from helpers.core.runs import records
from helpers.core.stats import Verdict, spread, verdict_markdown
from helpers.tools.reference import profile_dir, profiles, reference_matches, replace_block, rewrite, scored, table
from .experiments import format_spread, report_figure, row_label

START, END = "<!-- results-table:start -->", "<!-- results-table:end -->"
DETAIL_START, DETAIL_END = "<!-- reference-detail:start -->", "<!-- reference-detail:end -->"
# The report's experiments, then the fast recipe: (recipe, lr or None for the profile's own, tested without Normalize)
EXPERIMENTS = (("none", None, False), ("flip_rotate", None, False), ("crop", None, False),
               ("normalize", None, False), ("normalize", None, True), ("normalize", 0.5, False),
               ("normalize", 0.5, True), ("fast", None, False))
COLUMNS = {"full": "full-scale reference", "quick": "quick reference runs, CPU"}
# The experiments whose reference spread judges a row, as its notebook pools them (01: the baseline; 02: the four
# recipes; 03: the baseline and both normalize experiments), so that a verdict here is the notebook's verdict.
RECIPES_02 = ("none", "flip_rotate", "crop", "crop_flip")
NOTEBOOK_POOLS = {"none": ("none",), "flip_rotate": RECIPES_02, "crop": RECIPES_02,
                  "normalize": ("none", "normalize", "normalize, lr 0.5")}


def config_for(recipe: str, lr=None) -> Config:
    """Return the full profile's config of `recipe` at `lr` (None: the profile's own lr for it)."""
    return make_config("full", recipe=recipe, data_dir="synthetic", **({"lr": lr} if lr else {}))


def matches(profile: str, recipe: str, lr=None, raw: bool = False, root=None) -> pd.DataFrame:
    """Return a profile's reference runs of `recipe` at `lr` scored on the test set (as reference_matches)."""
    runs = reference_matches(profile, experiment_name(config_for(recipe, lr)), raw, root)
    return runs[runs["eval_set"] == "test"]


def cell(runs: pd.DataFrame, column_scale, with_device: bool) -> str:
    """Return 'mean ± sd% (n=k, device)' for one experiment at one scale ('–' without runs)."""
    s = spread(runs["score"])
    if s.n == 0:
        return "–"
    notes = [f"n={s.n}"] + ([", ".join(sorted(set(runs["device"].dropna())))] if with_device else [])
    own = sorted(set(zip(runs["train_images"].astype(int), runs["epochs"].astype(int))))
    notes += ["; ".join(f"{e} epochs" for _, e in own)] if column_scale and own != [column_scale] else []
    return f"{format_spread(s)} ({', '.join(notes)})"


def results_table(root=None) -> str:
    """Return the Markdown results table (report | full | quick), then the full reference's verdict on each figure."""
    from helpers.notebook.results import REPORT_PROTOCOL, judge, reference_sd
    found = {(experiment_name(c := config_for(r, lr)), c.lr, raw): {p: matches(p, r, lr, raw, root) for p in COLUMNS}
             for r, lr, raw in EXPERIMENTS}
    scales = {}
    for p in COLUMNS:  # the (training images, epochs) most runs of a column share: its scale
        runs = pd.concat([f[p] for f in found.values()])[["train_images", "epochs"]].dropna().astype(int)
        scales[p] = tuple(runs.value_counts().index[0]) if len(runs) else None
    sizes = {p: f"{s[0]:,} training images, {s[1]} epochs" if s else "no runs recorded yet" for p, s in scales.items()}
    header = [f"the report (one run, {REPORT_PROTOCOL['train_images']:,} training images, "
              f"{REPORT_PROTOCOL['epochs']} epochs)"]
    header += [f"{label} ({sizes[p]}; mean ± sd, n{', device' if p == 'full' else ''})" for p, label in COLUMNS.items()]
    rows, verdicts = [], []
    for (name, lr, raw), runs in found.items():
        label, figure = row_label(name, lr, raw), report_figure(name, lr, raw)
        cells = [cell(runs[p], scales[p], p == "full") for p in COLUMNS]
        if figure or any(c != "–" for c in cells):
            rows.append([label, figure[1] if figure else "–", *cells])
        if figure and len(runs["full"]):
            ref = reference_sd("full", NOTEBOOK_POOLS[name.split(",")[0]])
            verdicts.append(Verdict(label, "full-scale reference", "the report",
                                    judge(runs["full"]["score"], [figure[0]], ref)))
    seeds = {p: "one seed" if PROFILE_SEEDS[p] == 1 else f"{PROFILE_SEEDS[p]} seeds" for p in ("quick", "full")}
    note = ("Test accuracy after the last epoch; n is the number of seeds. Rendered by `python -m "
            "helpers.tools.reference readme` from `report/reference/full/` and `report/reference/quick/` (their "
            "README.md gives each run's command, device, commit and date); see docs/reference.md. `make report` trains "
            f"{seeds['quick']} per experiment in the quick profile and {seeds['full']} in the full profile (`SEEDS=N` "
            "changes it). Each of the report's figures against the full-scale reference, under the notebooks' rule, "
            "with the reference spread of the notebook that measures it "
            "([seeds and spread](docs/seeds-and-spread.md)):")
    return "\n\n".join([table(["experiment", *header], rows), note, verdict_markdown(verdicts)])


def update_readme(path: Path, root=None) -> bool:
    """Rewrite the block between the results-table markers of README `path`; return whether it changed."""
    return update_block(path, START, END, results_table(root), "results table")


def detail_table(profile: str, root=None) -> str:
    """Return one profile's reference runs as a Markdown table: an experiment per row, each seed in its cell."""
    folder = profile_dir(profile, root)
    runs = records(folder)
    runs["train_acc"] = [float(pd.read_csv(folder / f / "history.csv")["train_acc"].iloc[-1]) for f in runs["folder"]]
    rows = []
    for (experiment, raw), g in scored(runs).sort_values("seed", kind="stable").groupby(["experiment", "raw"]):
        final, best, train = (spread(g[c]) for c in ("score", "best", "train_acc"))
        figure = report_figure(experiment, g["lr"].iloc[0], raw)
        rows.append([row_label(experiment, g["lr"].iloc[0], raw), g["epochs"].iloc[0], figure[1] if figure else "–",
                     f"{format_spread(final)} (n={final.n})", ", ".join(f"{s}: {v:.2f}" for s, v in
                                                                        zip(g["seed"], g["score"])),
                     f"{best.mean:.2f}%", f"{train.mean:.2f}%", -final.n])
    rows.sort(key=lambda r: (r[-1], r[0], r[1]))  # the experiments with most seeds first
    return table(["experiment", "epochs", "report", "last epoch (mean ± sd, n)", "each seed, last epoch",
                  "best epoch (mean)", "train acc, last epoch (mean)"], [r[:-1] for r in rows])


def detail_block(root=None) -> str:
    """Return docs/results.md's rendered block: a detail table per reference profile."""
    parts = [line for p in profiles(root) for line in (f"### `report/reference/{p}/`", "", detail_table(p, root), "")]
    return "\n".join(parts + ["Rendered by `python -m helpers.tools.reference readme` from each run's record.json; "
                              "each folder's README.md gives every run's command, device, commit and date."])


def update_details(path, root=None) -> bool:
    """Rewrite the block between the reference-detail markers of docs/results.md `path`; return whether it changed."""
    return update_block(path, DETAIL_START, DETAIL_END, detail_block(root), "reference tables")


def update_block(path, start: str, end: str, block: str, what: str) -> bool:
    """Rewrite the block between two markers of the page `path`; return whether it changed."""
    missing = f"{Path(path).name} has no {what} markers {start} ... {end}; add them where it goes"
    return rewrite(path, lambda text: replace_block(text, start, end, block, missing))
