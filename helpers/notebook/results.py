"""What every notebook shares: the report's figures, profile and run notes, runs grouped by experiment with their
spread across seeds, the reference spread that judges single-seed differences, verdict notes and table styling."""
from __future__ import annotations

import dataclasses
import math

import pandas as pd
from IPython.display import Markdown

from helpers.core.config import Config, ConfigError
from helpers.core.recipes import CIFAR10_MEAN, CIFAR10_STD
from helpers.core.project import project_root
from helpers.core.runs import records
from helpers.core.stats import RULE, RULE_REFERENCE, Comparison, Spread, Verdict, compare, pooled_df, pooled_sd, spread

REPORT_PROTOCOL = dict(epochs=60, lr=0.1, momentum=0.9, weight_decay=5e-4, step_size=50, gamma=0.1,
                       batch_size=128, train_images=50_000, test_images=10_000)
REPORT_TEST_ACC = {"none": 79.44, "flip_rotate": 81.94, "crop": 83.98, "crop_flip": None}
# Its text's "decreased to 30%" and loss 0.01 round its log's figures (log_*, at REPORT_NORMALIZE_LOG_EPOCHS).
REPORT_NORMALIZE = {"test_acc": 30.0, "log_test_acc": (30.64, 32.38, 31.56), "train_loss": 0.01,
                    "log_train_loss": (0.032054922957916544, 0.015394367509857391, 0.009395566143695732),
                    "fix_lr": 0.5, "fix_test_acc": 76.37}
# Which test transform each normalize figure was measured with. The report shows its training transform only; the
# ≈30% fits its loader as written (ToTensor). The 76.37% could be either, so it sits beside both lr-0.5 settings.
REPORT_READING = {"collapse": "not shown; our reading: ToTensor", "fix": "not stated"}
REPORT_MEAN, REPORT_STD = CIFAR10_MEAN, CIFAR10_STD
# Its training progress bar: 391 batches per epoch over the 50,000 training images.
REPORT_STEPS_PER_EPOCH = 391
# Its normalization log prints each epoch's bar and training loss, then that epoch's test accuracy; the excerpt
# opens with a test accuracy, so its three accuracies fall at epochs 51-53 and its three losses at epochs 52-54.
REPORT_NORMALIZE_LOG_EPOCHS = {"log_test_acc": (51, 52, 53), "log_train_loss": (52, 53, 54)}
# Its remark on shorter training: 30 to 50 epochs gave test accuracies between 50% and 70%.
REPORT_SHORT_TRAINING = {"epochs": (30, 50), "test_acc": (50.0, 70.0)}
# Its CAM code: test_dataset.data[23], ClassifierOutputTarget(0), target_layers=[layer4]; its text names a cat.
REPORT_CAM = {"image_index": 23, "target_class": 0, "layer": "layer4", "text_class": "cat"}


def variant(cfg: Config, **changes) -> Config:
    """Return the config with some parameters changed, validated again."""
    try:
        return dataclasses.replace(cfg, **changes)
    except TypeError as e:
        raise ConfigError(f"unknown parameter in {sorted(changes)}: {e}") from None


def is_comparable(cfg: Config) -> bool:
    """Return whether the config follows the report's protocol, so its figures compare with the report's."""
    return (cfg.profile == "full" and cfg.data_dir != "synthetic" and cfg.epochs == REPORT_PROTOCOL["epochs"]
            and cfg.step_size == REPORT_PROTOCOL["step_size"] and cfg.batch_size == REPORT_PROTOCOL["batch_size"]
            and cfg.train_size in (None, 50_000) and cfg.test_size in (None, 10_000))


def comparability(cfg: Config) -> str:
    """Return one sentence saying whether this profile's figures compare with the report's, and why."""
    if is_comparable(cfg):
        return "**Comparable with the report**: this is its protocol (up to seed-to-seed variation)."
    why = ("the `full` profile was overridden (epochs, subset, batch size or data)" if cfg.profile == "full" else
           f"profile `{cfg.profile}` trains on less data for fewer epochs")
    return (f"**Not comparable with the report**: {why}; set against the report's figures, only the direction of an "
            "effect can be checked. Only profile `full` reproduces the report's protocol.")


def profile_note(cfg: Config, seeds: int | None = None) -> Markdown:
    """Return a note saying what the profile trains on, how many seeds per experiment, and whether it compares."""
    data = ("synthetic stand-in images" if cfg.data_dir == "synthetic"
            else f"real CIFAR-10 ({cfg.data_dir or 'official files'})")
    size = (f"{cfg.train_size or 50_000:,} training / {cfg.test_size or 10_000:,} test images, "
            f"{cfg.epochs} epochs, LR ×{cfg.gamma} after epoch {cfg.step_size}")
    from helpers.core.train import resolve_device
    device = f"device `{cfg.device}` ({resolve_device(cfg.device).type})"
    runs = "" if seeds is None else f"; {seeds} run(s) per experiment, seeds {cfg.seed} to {cfg.seed + seeds - 1}"
    return Markdown(f"Profile **`{cfg.profile}`**: {data}; {size}, {device}{runs}.  \n{comparability(cfg)}")


def run_note(run) -> Markdown:
    """Return a line naming a run, where it is stored, and how long its training took."""
    env, c = run.env, run.config
    return Markdown(f"Run `{run.id}` (recipe `{c['recipe']}`, lr {c['lr']}, seed {c.get('seed', '?')}): "
                    f"{len(run.history)} epochs, trained in {run.history['seconds'].sum() / 60:.1f} min on "
                    f"{env.get('device', '?')} ({env.get('threads', '?')} threads), finished "
                    f"{env.get('finished', '?')}; stored in `{run.path}`.")


def _as_list(runs) -> list:
    """Return a list of runs: the given list, or one run as a list."""
    return list(runs) if isinstance(runs, (list, tuple)) else [runs]


def runs_table(runs: dict) -> pd.DataFrame:
    """Return one row per run (a label maps to a run or a list of seeds' runs): id, seed, minutes, finished."""
    return pd.DataFrame([{"run": label, "seed": r.config.get("seed"), "id": r.id, "epochs": len(r.history),
                          "training minutes": round(r.history["seconds"].sum() / 60, 2),
                          "finished": r.env.get("finished")}
                         for label, rs in runs.items() for r in _as_list(rs)])


def group_runs(runs) -> dict:
    """Return {recipe: [runs in the given order]}: the seeds of each experiment together."""
    runs = list(runs)
    return {k: [r for r in runs if r.config["recipe"] == k] for k in dict.fromkeys(r.config["recipe"] for r in runs)}


def final_spread(runs, column: str | None = None) -> Spread:
    """Return the Spread across seeds of the final test accuracy, or of a history column at the last epoch."""
    return spread(r.final_acc if column is None else float(r.history[column].iloc[-1]) for r in _as_list(runs))


def seed_columns(table: pd.DataFrame, runs: dict, label: str, value=lambda r: r.final_acc,
                 name: str = "seed {seed} (%)") -> pd.DataFrame:
    """Return the table with one column per seed holding each seed's value, rows matched on `label`."""
    values = pd.DataFrame([(k, r.config.get("seed"), value(r)) for k, rs in runs.items() for r in _as_list(rs)],
                          columns=[label, "seed", "value"]).pivot(index=label, columns="seed", values="value")
    return table.join(values.rename(columns=lambda s: name.format(seed=s)), on=label)


def style_table(df: pd.DataFrame, precision: int = 2):
    """Return the table styled for display: fixed decimals, spreads as 'mean ± sd (n=k)', missing values as —."""
    return df.style.format(lambda x: x.format(precision, unit="") if isinstance(x, Spread) else
                           f"{x:.{precision}f}" if isinstance(x, float) else str(x), na_rep="—").hide(axis="index")


REFERENCE_FOLDER = "report/reference/{}/"  # a profile's reference runs, relative to the project


def stored_spread(profile: str, experiment: str, raw: bool = False) -> Spread:
    """Return the reference runs' Spread of one experiment's final test accuracy, with Normalize or (raw) without."""
    runs = records(project_root() / REFERENCE_FOLDER.format(profile)).query("experiment == @experiment")
    return spread(runs["raw_final_test_acc" if raw else "final_test_acc"])


# A profile whose reference has no experiment with two seeds borrows the spread measured at a smaller scale: the
# quick profile trains on 3,000 images and is assumed to vary at least as much from seed to seed as the full one,
# so the borrowed spread is the stricter one. Stated wherever it is used (verdict_note).
BORROWED_SPREAD = {"full": "quick"}


@dataclasses.dataclass(frozen=True)
class Reference:
    """The seed-to-seed sd measured in a profile's reference runs (nan when none has two seeds)."""
    profile: str
    sd: float
    experiments: int = 0            # experiments that had at least two seeds
    measured_in: str | None = None  # the profile whose runs gave the sd, when not this one (BORROWED_SPREAD)
    dof: int | None = None          # degrees of freedom of the pooled sd (None: at least one per experiment)

    folder = property(lambda self: REFERENCE_FOLDER.format(self.profile), doc="This profile's reference runs.")
    sd_folder = property(lambda self: REFERENCE_FOLDER.format(self.measured_in or self.profile),
                         doc="The folder the sd was measured in.")
    measured = property(lambda self: not math.isnan(self.sd), doc="Whether a seed-to-seed sd was measured.")
    borrowed = property(lambda self: self.measured and self.measured_in not in (None, self.profile),
                        doc="Whether the sd was measured in another profile's runs.")


def reference_sd(profile: str, experiments) -> Reference:
    """Return the pooled sd of the experiments' reference runs (both test transforms), else BORROWED_SPREAD's."""
    experiments = list(experiments)
    spreads = [stored_spread(profile, name, raw) for name in experiments for raw in (False, True)]
    own = Reference(profile, pooled_sd(spreads), sum(1 for s in spreads if s.n >= 2), dof=pooled_df(spreads))
    if own.measured or profile not in BORROWED_SPREAD:
        return own
    other = reference_sd(BORROWED_SPREAD[profile], experiments)
    return (Reference(profile, other.sd, other.experiments, other.profile, other.dof) if other.measured else own)


NO_REFERENCE = Reference("none", math.nan)


def judge(a, b, ref: Reference = NO_REFERENCE) -> Comparison:
    """Return the Comparison of A and B, with the reference spread standing in where a side has one seed."""
    return compare(a, b, ref.sd, ref.dof or max(ref.experiments, 1))


def judged(claims, ref: Reference = NO_REFERENCE) -> list[Verdict]:
    """Return a Verdict per (claim, A's label, A's Spread, B's label, B's Spread) whose two sides both hold a value."""
    return [Verdict(claim, a, b, judge(x, y, ref)) for claim, a, x, b, y in claims if x.n and y.n]


def report_side(figure: float, comparable: bool = True) -> Spread:
    """Return one of the report's figures as a one-run side; empty (so left out) where the runs are at another scale."""
    return spread([figure] if comparable else [])


def verdict_note(verdicts, ref: Reference = NO_REFERENCE, cfg: Config | None = None) -> Markdown:
    """Return the sentences under a verdict table: the rule, the reference runs it used, whether the runs compare."""
    text = f"*Rule*: {RULE}."
    if any(v.comparison.basis != "welch" for v in verdicts):
        text += (f" With one seed a side, {RULE_REFERENCE}: `{ref.sd_folder}`, pooled over {ref.experiments} "
                 "experiment(s)." if ref.measured else
                 f" `{ref.folder}` has no experiment here with two seeds, so a side with one seed is **not judged**.")
        if ref.borrowed:
            text += (f" `{ref.folder}` has none with two seeds; the {ref.measured_in} profile's smaller runs stand in, "
                     "assumed to vary from seed to seed at least as much.")
    return Markdown(text + (f"  \n{comparability(cfg)}" if cfg is not None else ""))
