"""Reference runs kept inside the project: report/reference/<profile>/<run>/ holds a finished run's record.json and
history.csv (never checkpoints), and each profile folder a README.md listing every run's command, device, commit and
date. `python -m helpers.tools.reference write quick | readme | show full` (docs/reference.md)."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import pandas as pd

from helpers.core.config import FIELDS, ConfigError, make_config
from helpers.core.project import portable_path as shown, project_root
from helpers.core.runs import RECORD, atomic_write_bytes, read_json, records, runs_root

REFERENCE_DIR = project_root() / "report" / "reference"
RUN_FILES = (RECORD, "history.csv")  # never checkpoints
TABLE_START, TABLE_END = "<!-- runs-table:start -->", "<!-- runs-table:end -->"


class ReferenceMissingError(FileNotFoundError):
    """A profile has no reference folder."""


def profiles(root=None) -> list[str]:
    """Return the profiles that have a reference folder."""
    base = Path(root or REFERENCE_DIR)
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.is_dir() else []


def profile_dir(profile: str, root=None) -> Path:
    """Return report/reference/<profile>; raise ReferenceMissingError naming the valid profiles when absent."""
    folder = Path(root or REFERENCE_DIR) / str(profile)
    if not folder.is_dir():
        raise ReferenceMissingError(f"no reference runs for profile {profile!r} in {shown(folder.parent)}; "
                                    f"valid: {' | '.join(profiles(root)) or 'none yet (make reference PROFILE=...)'}")
    return folder


def scored(runs: pd.DataFrame) -> pd.DataFrame:
    """Return each run scored with Normalize (raw False) and, if normalizing, without (raw True): `score`, `best`."""
    both = [runs.assign(raw=raw, score=runs.get(f"{p}final_test_acc"), best=runs.get(f"{p}best_test_acc"))
            for raw, p in ((False, ""), (True, "raw_"))]
    return pd.concat(both).dropna(subset=["score"]).sort_index(kind="stable")


def reference_matches(profile: str, experiment: str, raw: bool = False, root=None) -> pd.DataFrame:
    """Return a profile's scored runs of one experiment, tested with Normalize or (raw=True) without; none if absent."""
    runs = scored(records(Path(root or REFERENCE_DIR) / str(profile)))  # an absent folder has no runs
    runs = runs[(runs["experiment"] == experiment) & (runs["raw"] == raw)]
    if runs["data"].nunique() > 1:  # never pooled
        raise ValueError(f"reference {profile!r}: experiment {experiment!r} has runs on different data (folders "
                         f"{', '.join(runs['folder'])}); keep one data set in {shown(Path(root or REFERENCE_DIR))}")
    return runs


def run_command(config: dict) -> str:
    """Return the training command that makes this run: the profile, the recipe and every departure from them."""
    profile, recipe = config["profile"], config["recipe"]
    defaults = make_config(profile, recipe=recipe, data_dir="synthetic").to_dict()
    skip = {"profile", "recipe", "data_dir", "device", "seed"}
    skip |= {"step_size", "snapshot_epochs"} if config.get("epochs") != defaults["epochs"] else set()  # follow epochs
    words = [f"--profile {profile}", f"--recipe {recipe}"]
    for name, value in ((n, config.get(n)) for n in FIELDS if n not in skip and config.get(n) != defaults[n]):
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value).lower() if isinstance(
            value, bool) else value
        words.append(f"--{name.replace('_', '-')} {text}")
    words += [f"--seed {config['seed']}"] + ([f"--device {config['device']}"] if config.get("device") not in (
        None, "auto", "cpu") else [])
    return "python -m helpers.tools.cli train " + " ".join(words)


def folder_name(record: dict) -> str:
    """Return a reference folder's name: the experiment's name, then the seed ("normalize_lr0.5_seed0")."""
    return record["experiment"].replace(", ", "_").replace(" ", "") + f"_seed{record['config']['seed']}"


def table(header: list[str], rows: list[list]) -> str:
    """Return a Markdown table (a `|` inside a cell escaped)."""
    lines = ["| " + " | ".join(str(v).replace("|", "\\|") for v in r) + " |" for r in [header, *rows]]
    return "\n".join([lines[0], "|---" * len(header) + "|", *lines[1:]])


def runs_table(folder: Path) -> str:
    """Return the Markdown table of a profile folder's runs: command, final accuracy, device, commit, date."""
    rows = []
    for path in sorted(Path(folder).glob(f"*/{RECORD}")):
        r = read_json(path)
        res, env, raw = r["results"], r["env"], r["results"].get("raw_final_test_acc")
        rows.append([f"`{path.parent.name}`", f"`{run_command(r['config'])}`", f"{res['final_test_acc']:.2f}%",
                     "–" if raw is None else f"{raw:.2f}%", env.get("device_name") or env.get("device") or "?",
                     (env.get("torch") or "?").split("+")[0], env.get("git_commit") or "?",
                     (env.get("finished") or "?")[:10]])
    return table(["folder", "command", "final test acc", "without Normalize", "device", "torch", "commit", "date"],
                 rows)


def replace_block(text: str, start: str, end: str, body: str, missing: str) -> str:
    """Return `text` with what lies between the markers `start` and `end` replaced by `body`; ValueError(missing)."""
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise ValueError(missing)
    return text[:i + len(start)] + "\n" + body.strip("\n") + "\n" + text[j:]


def rewrite(path, render) -> bool:
    """Rewrite the page `path` as render(its text); return whether it changed."""
    text = Path(path).read_text()
    new = render(text)
    if new != text:
        atomic_write_bytes(Path(path), new.encode())
    return new != text


def write_reference(profile: str, runs_dir=None, *, root=None, add: bool = False, log=print) -> Path:
    """Write report/reference/<profile>/ from a store's finished runs (add=True keeps those there); return it."""
    if profile not in ("smoke", "quick", "full"):
        raise ConfigError(f"parameter 'profile' = {profile!r} is invalid; valid: smoke | quick | full")
    base, store = Path(root or REFERENCE_DIR), runs_root(runs_dir)
    target, runs = base / profile, records(store)
    runs = runs[runs["profile"] == profile]
    if runs.empty:
        raise ReferenceMissingError(f"no finished {profile!r} runs in the run store {shown(store)}; "
                                    f"train them first (make report PROFILE={profile})")
    tmp, old = base / f".{profile}.{os.getpid()}.tmp", base / f".{profile}.{os.getpid()}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if add and target.is_dir():
            for kept in target.glob(f"*/{RECORD}"):
                shutil.copytree(kept.parent, tmp / kept.parent.name)
        written = set()
        for run in runs["folder"]:
            name = folder_name(read_json(store / run / RECORD))
            name = f"{name}_{run}" if name in written else name  # the same experiment and seed at another scale
            written.add(name)
            (tmp / name).mkdir(exist_ok=True)  # a kept run of the same name: its files are overwritten
            for file in RUN_FILES:
                shutil.copy2(store / run / file, tmp / name / file)
            log(f"{run} -> {shown(target / name)}")
        readme = target / "README.md"  # its text kept (else a short default), its runs table regenerated
        text = readme.read_text() if readme.exists() else (
            f"# Reference runs: profile `{profile}`\n\nWritten by `make reference PROFILE={profile}` (`python -m "
            f"helpers.tools.reference write {profile}`) from the run store's finished runs of this profile. Each "
            "folder holds the run's `record.json` and `history.csv` (no checkpoints); the table is rendered from "
            "them.\n")
        if TABLE_START not in text:
            text = text.rstrip("\n") + f"\n\n{TABLE_START}\n{TABLE_END}\n"
        missing = f"{profile}/README.md: markers out of order"
        (tmp / "README.md").write_text(replace_block(text, TABLE_START, TABLE_END, runs_table(tmp), missing))
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)  # built beside the old folder and swapped in: never seen half-written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv=None) -> int:
    """Run `python -m helpers.tools.reference write|readme|show`; return the exit code."""
    ap = argparse.ArgumentParser(prog="python -m helpers.tools.reference", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    wr = sub.add_parser("write", help="write report/reference/<profile>/ from the run store's finished runs")
    wr.add_argument("profile", help="smoke | quick | full")
    wr.add_argument("--runs", help="run store folder (default: $RUNS_DIR, else runs/)")
    wr.add_argument("--add", action="store_true", help="keep the runs already in the folder")
    rd = sub.add_parser("readme", help="render README.md's results table, docs/results.md's tables and "
                                       "docs/course-report.md's figures from report/reference/")
    for flag, page in (("--readme", "README.md"), ("--results", "docs/results.md"),
                       ("--course", "docs/course-report.md")):
        rd.add_argument(flag, default=str(project_root() / page), help=f"the page to update (default {page})")
    sh = sub.add_parser("show", help="list a profile's reference runs: experiment, seed, scores, device, commit")
    sh.add_argument("profile")
    for p in (wr, rd, sh):
        p.add_argument("--root", help="reference folder (default report/reference)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "write":
            folder = write_reference(args.profile, args.runs, root=args.root, add=args.add)
            print(f"wrote {shown(folder)}/ ({sum(1 for p in folder.iterdir() if p.is_dir())} runs)")
        elif args.cmd == "readme":
            from helpers.tools.report import course, readme  # the tables need the report's figures: a top-level job
            for page, what, update in ((args.readme, "results table", readme.update_readme),
                                       (args.results, "reference tables", readme.update_details),
                                       (args.course, "rendered figures", course.update_page)):
                changed = update(Path(page), root=args.root)
                print(f"{shown(page)}: {what} {'updated' if changed else 'already up to date'}")
        else:
            print(records(profile_dir(args.profile, args.root)).to_string(index=False))
    except (ReferenceMissingError, ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
