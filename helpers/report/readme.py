"""README.md's results table and verdicts, and docs/results.md's tables of every reference run, rendered from
report/reference/ so that no figure in them is typed by hand."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config import PROFILE_SEEDS, make_config
from ..reference import ReferenceMissingError, reference_matches, replace_block
from ..runs import atomic_write_bytes
from ..stats import Verdict, spread, verdict_markdown
from .experiments import evaluations, experiment_name, format_spread, report_figure

START, END = "<!-- results-table:start -->", "<!-- results-table:end -->"
DETAIL_START, DETAIL_END = "<!-- reference-detail:start -->", "<!-- reference-detail:end -->"
# The report's experiments, then the fast recipe: (recipe, lr or None for the profile's own, tested without Normalize)
EXPERIMENTS = (("none", None, False), ("flip_rotate", None, False), ("crop", None, False),
               ("normalize", None, False), ("normalize", None, True), ("normalize", 0.5, False),
               ("normalize", 0.5, True), ("fast", None, False))
COLUMNS = {"full": "full-scale reference", "quick": "quick reference runs, CPU"}


def matches(profile: str, recipe: str, lr=None, raw: bool = False, root=None) -> pd.DataFrame:
    """Return a reference profile's runs of one experiment with their `score` (raw: tested without Normalize), lr None
    for the profile's own; none when the profile has no folder."""
    try:
        return reference_matches(profile, recipe=recipe, lr=lr, mismatch=raw, root=root)
    except ReferenceMissingError:
        return pd.DataFrame(columns=["folder", "score", "best_test_acc", "device", "epochs", "train_images"])


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
    """Return the Markdown results table (experiment | report | full-scale reference | quick reference runs), then
    the full-scale reference's verdict against each of the report's figures."""
    from ..results import REPORT_PROTOCOL, judge, reference_sd
    found = {(r, lr, m): {p: matches(p, r, lr, m, root) for p in COLUMNS} for r, lr, m in EXPERIMENTS}
    scales = {}
    for p in COLUMNS:  # the (training images, epochs) most runs of a column share: its scale
        runs = pd.concat([f[p] for f in found.values()])[["train_images", "epochs"]].dropna().astype(int)
        scales[p] = tuple(runs.value_counts().index[0]) if len(runs) else None
    header = [f"the report (one run, {REPORT_PROTOCOL['train_images']:,} training images, "
              f"{REPORT_PROTOCOL['epochs']} epochs)"]
    sizes = {p: f"{s[0]:,} training images, {s[1]} epochs" if s else "no runs recorded yet" for p, s in scales.items()}
    header += [f"{label} ({sizes[p]}; mean ± sd, n{', device' if p == 'full' else ''})" for p, label in COLUMNS.items()]
    lines, verdicts = ["| experiment | " + " | ".join(header) + " |", "|---" * (1 + len(header)) + "|"], []
    ref = reference_sd("full", [(r, lr or REPORT_PROTOCOL["lr"], m) for r, lr, m in EXPERIMENTS])
    for (recipe, lr, mismatch), runs in found.items():
        config = {**make_config("full", recipe=recipe, data_dir="synthetic",
                                **({"lr": lr} if lr else {})).to_dict(), "mismatch": mismatch}
        name, figure, cells = experiment_name(config), report_figure(config), [cell(runs[p], scales[p], p == "full")
                                                                                for p in COLUMNS]
        if figure or any(c != "–" for c in cells):
            lines.append(f"| {name} | {figure[1] if figure else '–'} | " + " | ".join(cells) + " |")
        if figure and len(runs["full"]):
            verdicts.append(Verdict(name, "full-scale reference", "the report",
                                    judge(runs["full"]["score"], [figure[0]], ref)))
    seeds = {p: "one seed" if PROFILE_SEEDS[p] == 1 else f"{PROFILE_SEEDS[p]} seeds" for p in ("quick", "full")}
    return "\n".join(lines + [
        "", "Test accuracy after the last epoch; n is the number of seeds. Rendered by `python -m helpers.reference "
        "readme` from `report/reference/full/` and `report/reference/quick/` (their README.md gives each run's command, "
        f"device, commit and date); see docs/reference.md. `make report` trains {seeds['quick']} per experiment in the "
        f"quick profile and {seeds['full']} in the full profile (`SEEDS=N` changes it). Each of the report's figures "
        "against the full-scale reference, under the notebooks' rule ([seeds and spread](docs/seeds-and-spread.md)):",
        "", verdict_markdown(verdicts)])


def update_readme(path: Path, root=None) -> bool:
    """Rewrite the block between the results-table markers of README `path`; return whether it changed."""
    return update_block(path, START, END, results_table(root), "results table")


def detail_table(profile: str, root=None) -> str:
    """Return one profile's reference runs as a Markdown table: an experiment per row, each seed in its cell."""
    from ..reference import CURRENT, experiment_key, profile_dir, reference_runs
    from ..runs import read_json
    runs = reference_runs(profile, root)
    groups: dict = {}
    for name in runs.loc[runs["status"] == CURRENT, "folder"]:
        folder = profile_dir(profile, root) / name
        config, metrics = read_json(folder / "config.json"), read_json(folder / "metrics.json")
        train = float(pd.read_csv(folder / "history.csv")["train_acc"].iloc[-1])
        for conf, scores in evaluations(config, metrics):
            g = groups.setdefault((experiment_key(conf), bool(conf.get("mismatch"))), {"config": conf, "seeds": {}})
            g["seeds"][conf["seed"]] = (float(scores["final_test_acc"]), float(scores["best_test_acc"]), train)
    lines = ["| experiment | epochs | report | last epoch (mean ± sd, n) | each seed, last epoch | best epoch (mean) "
             "| train acc, last epoch (mean) |", "|---" * 7 + "|"]
    order = lambda g: (-len(g["seeds"]), experiment_name(g["config"]), g["config"]["epochs"])  # noqa: E731
    for g in sorted(groups.values(), key=order):
        name, epochs, seeds = experiment_name(g["config"]), g["config"]["epochs"], dict(sorted(g["seeds"].items()))
        final, best, train = (spread(v[i] for v in seeds.values()) for i in range(3))
        figure = report_figure(g["config"])
        each = ", ".join(f"{s}: {v[0]:.2f}" for s, v in seeds.items())
        lines.append(f"| {name} | {epochs} | {figure[1] if figure else '–'} | {format_spread(final)} (n={final.n}) "
                     f"| {each} | {best.mean:.2f}% | {train.mean:.2f}% |")
    return "\n".join(lines)


def detail_block(root=None) -> str:
    """Return docs/results.md's rendered block: a detail table per reference profile."""
    from ..reference import profiles
    parts = [line for p in profiles(root) for line in (f"### `report/reference/{p}/`", "", detail_table(p, root), "")]
    return "\n".join(parts + ["Rendered by `python -m helpers.reference readme` from the runs whose provenance is "
                              "current; each folder's README.md gives every run's command, device, commit and date."])


def rewrite(path, render) -> bool:
    """Rewrite the page `path` as render(its text); return whether it changed."""
    path = Path(path)
    text = path.read_text()
    new = render(text)
    if new != text:
        atomic_write_bytes(path, new.encode())
    return new != text


def update_block(path, start: str, end: str, block: str, what: str) -> bool:
    """Rewrite the block between two markers of the page `path`; return whether it changed."""
    def render(text: str) -> str:
        if start not in text or end not in text:
            raise ValueError(f"{Path(path).name} has no {what} markers {start} ... {end}; add them where the table goes")
        return replace_block(text, start, end, block)
    return rewrite(path, render)
