"""Command line: `python -m helpers.tools.cli train --profile quick --recipe none,crop --seeds 3` and `... summary`.
Comma-separated values give one run per combination, each with every seed of `--seeds`, trained by
helpers.core.sweep.train_many (`--jobs N`, `--cluster slurm|local`); `--study` names the runs notebooks 01-05 load."""
from __future__ import annotations

import argparse
import itertools
import os
import sys

from helpers.core.config import FIELDS, ConfigError, _TYPES, make_config, seed_list, with_seeds

SINGLE = ("profile", "seed", "data_dir", "device", "snapshot_epochs")  # one value each (seeds come from --seeds)
STUDY_OPTIONS = ("profile", "seed", "data_dir", "device")  # the training parameters --study takes


def _parse_value(name: str, text: str):
    """Return one command-line value in its parameter's type; raise ConfigError naming it otherwise."""
    want = _TYPES[name]
    valid = {bool: "true | false", tuple: "comma-separated epochs"}.get(want, f"a value of type {want.__name__}")
    if text.lower() == "none":
        return None
    try:
        if want is bool:
            return {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}[text.lower()]
        return tuple(int(v) for v in text.split(",") if v) if want is tuple else want(text)
    except (KeyError, ValueError):
        raise ConfigError(f"parameter {name!r} = {text!r} is invalid; valid: {valid}") from None


def _positive(name: str, text: str | None) -> int | None:
    """Return a positive integer option (or None when absent); raise ConfigError naming it otherwise."""
    if text is not None and (not text.strip().isdigit() or int(text) < 1):
        raise ConfigError(f"parameter {name!r} = {text!r} is invalid; valid: a positive integer")
    return None if text is None else int(text)


def expand_configs(params: dict, seeds: int | None = None) -> list:
    """Return one Config per combination of the given values, times every seed; raise ConfigError before any work."""
    values = {}
    for name, text in params.items():
        parts = [text] if name in SINGLE else [p.strip() for p in text.split(",")]
        if not all(parts):
            raise ConfigError(f"parameter {name!r} = {text!r} is invalid; valid: one value or comma-separated values")
        values[name] = [_parse_value(name, p) for p in parts]
    configs = [c for combo in itertools.product(*values.values())
               for c in with_seeds(make_config(**dict(zip(values, combo))), seeds)]
    return list(dict.fromkeys(configs))  # a value given twice is one run


def study_configs(profile: str = "auto", seeds: int | None = None, **base) -> list:
    """Return the runs notebooks 01-05 load, built as they build them, every experiment's first seed first."""
    from helpers.notebook.cam.wrappers import cifar_stem_config
    from helpers.notebook.faster import default_validation
    from helpers.notebook.results import variant
    first = make_config(profile=profile, **base)
    experiments = [first] + [variant(first, recipe=r) for r in ("flip_rotate", "crop", "crop_flip", "normalize")]
    experiments.append(variant(first, recipe="normalize", lr=0.5))  # notebook 03's fix_lr default
    hold = default_validation(first.train_size)
    experiments.append(make_config(profile=profile, recipe="fast", validation=hold, **base))
    configs = [variant(e, seed=s) for s in seed_list(first.seed, seeds, first.profile) for e in experiments]
    configs.insert(len(experiments), cifar_stem_config(first))  # notebook 04's CIFAR-stem model: one seed
    return configs


def _configs_and_executor(args) -> tuple[list, object]:
    """Return the runs the command line asks for and the executor of --cluster (or None); raise ConfigError first."""
    from helpers.core.cluster import SETTING_OPTIONS, resolve_executor
    from helpers.core.runs import runs_root
    params = {k: v for k, v in vars(args).items() if k in FIELDS and v is not None}
    seeds, extra = _positive("seeds", args.seeds), sorted(set(params) - set(STUDY_OPTIONS))
    if args.study and extra:
        raise ConfigError(f"parameter {extra[0]!r} cannot be combined with --study; valid with --study: "
                          "--profile, --seed, --seeds, --data-dir, --device")
    profile = params.get("profile") or "auto"
    configs = study_configs(profile, seeds, **{k: _parse_value(k, v) for k, v in params.items() if k != "profile"}) \
        if args.study else expand_configs(params, seeds)
    given = {name: getattr(args, name) for name in SETTING_OPTIONS if getattr(args, name) is not None}
    if args.cluster is None and (given or args.detach):
        raise ConfigError(f"parameter {next(iter(given), 'detach')!r} needs --cluster; "
                          "valid: add --cluster slurm or --cluster local")
    if args.cluster == "slurm" and profile == "auto" and not os.environ.get("PROFILE"):
        raise ConfigError("parameter 'profile' = 'auto' is invalid with --cluster slurm: it would choose by the CUDA "
                          "of the machine that submits; valid: --profile smoke | quick | full")
    return configs, args.cluster and resolve_executor(args.cluster, runs_root().resolve(), **given)


def _train(args) -> int:
    """Check everything, then train (or submit) the runs; return the exit code."""
    from helpers.core.data import DataError
    from helpers.core.runs import remove_run, runs_root
    from helpers.core.sweep import SweepError, config_run_id, train_many
    from helpers.core.train import resolve_device
    try:
        configs, executor = _configs_and_executor(args)
        jobs, identities = _positive("jobs", args.jobs), {}
        for c in configs:  # missing data, or (here, not on a cluster) an absent device, stops every run now
            config_run_id(c, identities)
            if executor is None:
                resolve_device(c.device)
        for c in configs:
            print(f"config: {c}")
            if args.force:
                remove_run(runs_root() / config_run_id(c, identities))
        runs = train_many(configs, jobs=jobs, executor=executor, wait=not args.detach)
    except SweepError as e:  # one line per failed run; its log's last lines were printed with the progress
        print("\n".join(f"error: {f.label} {f.message}" for f in e.failures), file=sys.stderr)
        return 2 if e.expected else 1
    except (ConfigError, DataError) as e:  # bad values, missing data, $RUN_JOBS
        print(f"error: {e}", file=sys.stderr)
        return 2
    for run in {r.id: r for r in runs or ()}.values():  # configs are distinct, but two may be one run
        print(f"{run}\nrun folder: {run.path}")
    return 0


def main(argv=None) -> int:
    """Run the command line; return the exit code."""
    from helpers.core.cluster import SETTING_OPTIONS
    ap = argparse.ArgumentParser(prog="python -m helpers.tools.cli", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train (or load from the run store) runs and print their summaries")
    options = {name: (_TYPES[name].__name__.upper(), name + ("" if name in SINGLE else " (comma-separated: one run "
                                                               "per value)")) for name in FIELDS}
    options.update(seeds=("N", "runs per setting, seeds seed..seed+N-1 (default: the profile's)"),
                   jobs=("N", "runs at once (default: 1 on the CPU; on CUDA what free memory and cores allow)"),
                   cluster=("KIND", "send one job per run through submitit: slurm | local (docs/cluster.md); "
                                    "the options below default to $CLUSTER_<NAME>, else as shown"),
                   **{name: ("VALUE", text) for name, text in SETTING_OPTIONS.items()})
    for name, (metavar, text) in options.items():
        tr.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar=metavar, help=text)
    for flag, text in (("force", "discard stored runs and retrain"),
                       ("study", "the runs notebooks 01-05 load (with --profile, --seeds)"),
                       ("detach", "with --cluster: submit, print the job ids, and return")):
        tr.add_argument(f"--{flag}", action="store_true", help=text)
    sub.add_parser("summary", help="print one line per finished run in the store")
    args = ap.parse_args(argv)
    if args.cmd == "summary":
        from helpers.core.runs import records
        print(records().to_string(index=False))
        return 0
    return _train(args)


if __name__ == "__main__":
    sys.exit(main())
