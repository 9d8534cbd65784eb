"""Command line: `python -m helpers.cli train --profile quick --recipe none,crop --seeds 3` and `... summary`.

A comma-separated value of a training parameter (e.g. `--recipe none,crop --lr 0.1,0.05`) expands into one
run per combination, each with every seed of `--seeds` (seed, seed+1, ...; default: the profile's). The runs
train through helpers.sweep.train_many: one at a time on the CPU, several at once on CUDA (`--jobs N`), or
one job per run on a Slurm cluster (`--cluster slurm`, helpers.cluster). `--study` names the runs notebooks
01-05 load.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys

from .config import FIELDS, ConfigError, make_config, seed_list, _TYPES

SINGLE = ("profile", "seed", "data_dir", "device", "snapshot_epochs")  # one value each (seeds come from --seeds)


def _parse_value(name: str, text: str):
    want = _TYPES[name]
    if text.lower() == "none":
        return None
    if want is bool:
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ConfigError(f"parameter {name!r} = {text!r} is invalid; valid: true | false")
    if want is tuple:
        try:
            return tuple(int(v) for v in text.split(",") if v)
        except ValueError:
            raise ConfigError(f"parameter {name!r} = {text!r} is invalid; valid: comma-separated epochs") from None
    try:
        return want(text)
    except ValueError:
        raise ConfigError(f"parameter {name!r} = {text!r} is invalid; valid: a value of type {want.__name__}") from None


def _parse_values(name: str, text: str) -> list:
    """Return the values of a parameter: one, or several when it is comma-separated and may vary."""
    if name in SINGLE:
        return [_parse_value(name, text)]
    parts = [p.strip() for p in text.split(",")]
    if not all(parts):
        raise ConfigError(f"parameter {name!r} = {text!r} is invalid; valid: one value or comma-separated values")
    return [_parse_value(name, p) for p in parts]


def _positive(name: str, text: str | None) -> int | None:
    """Return a positive integer option (or None when absent); raise ConfigError naming it otherwise."""
    if text is None:
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise ConfigError(f"parameter {name!r} = {text!r} is invalid; valid: a positive integer")
    return int(text)


def expand_configs(params: dict, seeds: int | None = None) -> list:
    """Return one Config per combination of the given values, times every seed; raise ConfigError before any work."""
    values = {k: _parse_values(k, v) for k, v in params.items() if v is not None}
    names = list(values)
    configs = []
    for combo in itertools.product(*(values[n] for n in names)):
        base = make_config(**dict(zip(names, combo)))
        for s in seed_list(base.seed, seeds, base.profile):
            configs.append(make_config(**{**dict(zip(names, combo)), "seed": s}))
    return list(dict.fromkeys(configs))  # a value given twice is one run


def check_before_work(configs: list, device: bool = True):
    """Raise DataError or ConfigError now if a run's data or (with `device`) its device is missing."""
    from .data import data_identity
    from .train import resolve_device
    for c in configs if device else ():  # on a cluster, the device is the compute node's
        resolve_device(c.device)
    for data_dir in dict.fromkeys(c.data_dir for c in configs):
        c = next(c for c in configs if c.data_dir == data_dir)
        data_identity(c.data_dir, c.train_size, c.test_size, c.seed)


def _train(args) -> int:
    from .data import DataError
    from .runs import remove_run, runs_root
    from .sweep import SweepError, train_many
    try:
        params = {k: v for k, v in vars(args).items() if k in FIELDS}
        seeds = _positive("seeds", args.seeds)
        configs = _study(params, seeds) if args.study else expand_configs(params, seeds)
        jobs = _positive("jobs", args.jobs)
        executor = _cluster_executor(args, params)
        check_before_work(configs, device=executor is None)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for c in configs:
        print(f"config: {c}")
    if args.force:
        _remove(configs, remove_run, runs_root)
    try:
        if executor is not None and args.detach:
            from .cluster import train_on_cluster
            train_on_cluster(configs, executor, wait=False)
            return 0
        runs = train_many(configs, jobs=jobs) if executor is None else train_many(configs, executor=executor)
    except SweepError as e:
        # One line per failed run; its log's last lines were printed with the progress.
        for f in e.failures:
            print(f"error: {f.label} {f.message}", file=sys.stderr)
        return 2 if e.expected else 1
    except ConfigError as e:  # $RUN_JOBS
        print(f"error: {e}", file=sys.stderr)
        return 2
    for run in {r.id: r for r in runs}.values():  # configs are distinct, but two may be one run
        print(run)
        print(f"run folder: {run.path}")
    return 0


def _study(params: dict, seeds: int | None) -> list:
    """Return the runs notebooks 01-05 load, for --study (only --profile, --seed, --data-dir, --device apply)."""
    from .cluster import study_configs
    extra = sorted(k for k, v in params.items() if v is not None and k not in ("profile", "seed", "data_dir", "device"))
    if extra:
        raise ConfigError(f"parameter {extra[0]!r} cannot be combined with --study; valid with --study: "
                          "--profile, --seed, --seeds, --data-dir, --device")
    return study_configs(params.get("profile") or "auto", seeds, **{k: _parse_value(k, params[k])
                         for k in ("seed", "data_dir", "device") if params.get(k) is not None})


def _cluster_executor(args, params: dict):
    """Return the submitit executor of --cluster and its options (None without --cluster); raise ConfigError first."""
    from .cluster import SETTING_OPTIONS, ClusterSettings, check_can_submit, make_executor
    from .runs import runs_root
    given = {name: getattr(args, name) for name in SETTING_OPTIONS if getattr(args, name) is not None}
    if args.cluster is None:
        if given or args.detach:
            first = next(iter(given), "detach")
            raise ConfigError(f"parameter {first!r} needs --cluster; valid: add --cluster slurm or --cluster local")
        return None
    settings = ClusterSettings.from_env(kind=args.cluster, **given)
    if settings.kind == "slurm" and (params.get("profile") or "auto") == "auto" and not os.environ.get("PROFILE"):
        raise ConfigError("parameter 'profile' = 'auto' is invalid with --cluster slurm: it would choose by the CUDA "
                          "of the machine that submits; valid: --profile smoke | quick | full")
    root = runs_root().resolve()
    check_can_submit(settings, root)
    return make_executor(settings, root)


def _remove(configs, remove_run, runs_root):
    """Delete the stored runs of `configs` (--force: train them again)."""
    from .data import data_identity
    from .runs import run_id
    for c in configs:
        remove_run(runs_root() / run_id(c.identity(), data_identity(c.data_dir, c.train_size, c.test_size, c.seed)))


def main(argv=None) -> int:
    """Run the command line; return the exit code."""
    ap = argparse.ArgumentParser(prog="python -m helpers.cli", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train (or load from the run store) runs and print their summaries")
    for name in FIELDS:
        many = "" if name in SINGLE else " (comma-separated: one run per value)"
        tr.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar=_TYPES[name].__name__.upper(),
                        help=f"{name}{many}")
    tr.add_argument("--seeds", metavar="N", help="runs per setting, seeds seed..seed+N-1 (default: the profile's)")
    tr.add_argument("--jobs", metavar="N", help="runs at once (default: 1 on the CPU, all up to 8 on CUDA)")
    tr.add_argument("--force", action="store_true", help="discard stored runs and retrain")
    tr.add_argument("--study", action="store_true", help="the runs notebooks 01-05 load (with --profile, --seeds)")
    tr.add_argument("--cluster", metavar="KIND", help="send one job per run through submitit: slurm | local "
                    "(docs/cluster.md); the options below default to $CLUSTER_<NAME>")
    from .cluster import SETTING_OPTIONS
    for name, text in SETTING_OPTIONS.items():
        tr.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="VALUE", help=text)
    tr.add_argument("--detach", action="store_true", help="with --cluster: submit, print the job ids, and return")
    sub.add_parser("summary", help="print one line per finished run in the store")
    args = ap.parse_args(argv)
    if args.cmd == "summary":
        from .runs import records
        print(records().to_string(index=False))
        return 0
    return _train(args)


if __name__ == "__main__":
    sys.exit(main())
