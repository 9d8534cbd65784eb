"""Writing report/reference/<profile>/ from a run store, with a README giving each run's command, device, commit
and date (rendered from the runs' own files)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..config import FIELDS, ConfigError, make_config
from ..runs import CorruptRunError, atomic_write_bytes, is_complete, read_json, runs_root
from .folder import REFERENCE_DIR, ReferenceMissingError, shown
from .provenance import CURRENT, current_run_id, provenance

RUN_FILES = ("config.json", "history.csv", "metrics.json", "env.json")  # never checkpoints
TABLE_START, TABLE_END = "<!-- runs-table:start -->", "<!-- runs-table:end -->"


def run_command(config: dict) -> str:
    """Return the training command that makes this run: the profile, the recipe and every departure from them."""
    profile, recipe = config.get("profile", "auto"), config.get("recipe", "none")
    try:
        defaults = make_config(profile, recipe=recipe, seed=0, data_dir="synthetic").to_dict()
    except ConfigError:
        defaults = {}
    args = [f"--profile {profile}", f"--recipe {recipe}"]
    for name in FIELDS:
        if name in ("profile", "recipe", "data_dir", "device", "seed") or name not in config:
            continue
        value, default = config[name], defaults.get(name)
        if name == "snapshot_epochs" and value is not None:
            value, default = list(value), list(default or ())
        if name == "step_size" and value == max(1, round(config.get("epochs", 0) * 5 / 6)):
            continue  # make_config derives it from epochs
        if name == "snapshot_epochs" and config.get("epochs") != defaults.get("epochs"):
            continue  # derived from epochs too
        if value != default:
            text = (",".join(map(str, value)) if isinstance(value, list)
                    else str(value).lower() if isinstance(value, bool) else value)
            args.append(f"--{name.replace('_', '-')} {text}")
    args.append(f"--seed {config.get('seed', 0)}")
    if config.get("device") not in (None, "auto", "cpu"):
        args.append(f"--device {config['device']}")
    return "python -m helpers.cli train " + " ".join(args)


def folder_name(config: dict) -> str:
    """Return a reference folder's name: recipe, what departs from the profile's defaults, and the seed."""
    command = run_command(config).split(" --recipe ", 1)[1]
    parts = [config.get("recipe", "run")]
    for arg in command.split(" --")[1:]:
        name, _, value = arg.partition(" ")
        if name not in ("seed", "device"):
            parts.append(f"{name.replace('-', '_')}{value.replace(',', '-')}")
    return "_".join(parts + [f"seed{config.get('seed')}"])


def store_runs(profile: str, runs_dir=None) -> list[Path]:
    """Return the finished runs of `profile` in a run store (config["profile"] == profile), oldest first."""
    found = []
    for m in sorted(runs_root(runs_dir).glob("*/metrics.json")):
        try:
            if read_json(m.parent / "config.json").get("profile") == profile:
                found.append(m.parent)
        except (CorruptRunError, FileNotFoundError):
            continue
    return found


def _table_cell(text) -> str:
    return str(text).replace("|", "\\|")


def runs_table(folder: Path) -> str:
    """Return the Markdown table of a profile folder's runs: command, final accuracy, device, commit, date, status."""
    lines = ["| folder | command | final test acc | other evaluation | device | torch | commit | date | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m in sorted(Path(folder).glob("*/metrics.json")):
        config, metrics = read_json(m.parent / "config.json"), read_json(m)
        env = read_json(m.parent / "env.json") if (m.parent / "env.json").exists() else {}
        other = metrics.get("other_eval")
        other_text = (f"{other['final_test_acc']:.2f}% {'without' if other['mismatch'] else 'with'} Normalize"
                      if other else "–")
        lines.append("| " + " | ".join(_table_cell(v) for v in (
            f"`{m.parent.name}`", f"`{run_command(config)}`", f"{float(metrics['final_test_acc']):.2f}%", other_text,
            env.get("device_name") or env.get("device") or "?", (env.get("torch") or "?").split("+")[0],
            env.get("git_commit") or "?", (env.get("finished") or "?")[:10], provenance(config))) + " |")
    return "\n".join(lines)


def replace_block(text: str, start: str, end: str, body: str) -> str:
    """Return `text` with what lies between the markers `start` and `end` replaced by `body`."""
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"markers {start} ... {end} not found (in this order)")
    return text[:i + len(start)] + "\n" + body.strip("\n") + "\n" + text[j:]


def default_readme(profile: str) -> str:
    """Return the README of a profile folder written for the first time (its table is filled in after)."""
    return (f"# Reference runs: profile `{profile}`\n\n"
            f"Written by `make reference PROFILE={profile}` (`python -m helpers.reference write {profile}`) from the "
            "run store's finished runs of this profile. Each folder holds the run's `config.json`, `history.csv`, "
            "`metrics.json` and `env.json` (no checkpoints). The table is rendered from those files; `status` is "
            "the provenance check (docs/reference.md).\n\n"
            f"{TABLE_START}\n{TABLE_END}\n")


def write_readme(folder: Path, profile: str, previous: Path | None = None):
    """Write <folder>/README.md: the previous README's text (else a default) with its runs table regenerated."""
    text = previous.read_text() if previous and previous.exists() else default_readme(profile)
    if TABLE_START not in text:
        text = text.rstrip("\n") + f"\n\n{TABLE_START}\n{TABLE_END}\n"
    atomic_write_bytes(Path(folder) / "README.md", replace_block(text, TABLE_START, TABLE_END,
                                                                 runs_table(folder)).encode())


def _copy_run(src: Path, dest: Path, rehash: bool):
    dest.mkdir(parents=True)
    for name in RUN_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, dest / name)
    if rehash:
        config = read_json(dest / "config.json")
        config["run_id"] = current_run_id(config)
        (dest / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def write_reference(profile: str, runs_dir=None, *, root=None, add: bool = False, rehash: bool = False,
                    log=print) -> Path:
    """Write report/reference/<profile>/ from a run store's finished runs of that profile; return the folder.

    The folder is built beside the old one and swapped in with renames, so a reader never sees half of it.
    add=True keeps the runs already there (a run of the same name is replaced). Runs from an older version are
    skipped, unless rehash=True gives them today's run id (only right when the id's definition changed, not the
    training; say so in the README). The README keeps its text and gets its runs table regenerated.
    """
    if profile not in ("smoke", "quick", "full"):
        raise ConfigError(f"parameter 'profile' = {profile!r} is invalid; valid: smoke | quick | full")
    base = Path(root or REFERENCE_DIR)
    target = base / profile
    runs = store_runs(profile, runs_dir)
    if not runs:
        raise ReferenceMissingError(f"no finished {profile!r} runs in the run store {shown(runs_root(runs_dir))}; "
                                    f"train them first (make report PROFILE={profile})")
    tmp = base / f".{profile}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if add and target.is_dir():
            for old in target.iterdir():
                if old.is_dir() and is_complete(old):
                    shutil.copytree(old, tmp / old.name)
        written = set()
        for src in runs:
            config = read_json(src / "config.json")
            status = provenance(config)
            if status != CURRENT and (not rehash or status.startswith("older version: field")
                                      or "no data identity" in status):
                log(f"skipped {src.name}: {status}")
                continue
            name = folder_name(config)
            name = f"{name}_{src.name}" if name in written else name  # same settings, other data
            written.add(name)
            dest = tmp / name
            shutil.rmtree(dest, ignore_errors=True)
            _copy_run(src, dest, rehash and status != CURRENT)
            log(f"{src.name} -> {shown(target / dest.name)}")
        write_readme(tmp, profile, previous=target / "README.md")
        old = base / f".{profile}.{os.getpid()}.old"
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
