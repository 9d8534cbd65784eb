"""docs/course-report.md's figures, rendered from the report's constants (helpers.results) and report/reference/.

The page quotes every claim of the course report with the project's verdict. Its numbers sit in blocks between
`<!-- course:NAME:start -->` and `<!-- course:NAME:end -->`; `python -m helpers.reference readme` rewrites them,
and tests/test_course_report.py checks the committed page equals the rendering, so no figure there is typed by hand.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..config import experiment_name, make_config
from ..runs import RECORD, atomic_write_bytes, read_json
from ..reference import profile_dir, reference_matches, replace_block
from ..stats import Spread, spread
from .experiments import format_spread

FULL, QUICK = "full", "quick"
AUGMENTATION = (("none", "no augmentation"), ("flip_rotate", "random flip + rotation"), ("crop", "random crop"))
LR_RECIPES = ("none", "flip_rotate", "crop", "normalize")  # the 60-epoch lr-0.1 reference runs


def marker(name: str) -> tuple[str, str]:
    """Return the start and end markers of one rendered block of the page."""
    return f"<!-- course:{name}:start -->", f"<!-- course:{name}:end -->"


def _runs(profile: str, recipe: str, lr=None, raw: bool = False, root=None) -> pd.DataFrame:
    """Return one reference experiment's runs with their `score` (none when the profile has no folder)."""
    cfg = make_config(profile, recipe=recipe, data_dir="synthetic", **({"lr": lr} if lr else {}))
    return reference_matches(profile, experiment_name(cfg), raw, root)


def _histories(recipe: str, lr=None, root=None) -> list[pd.DataFrame]:
    """Return the history.csv of every full-scale reference run of one experiment, indexed by epoch."""
    folder = profile_dir(FULL, root)
    return [pd.read_csv(folder / name / "history.csv").set_index("epoch")
            for name in _runs(FULL, recipe, lr, root=root)["folder"]]


def at_epoch(histories: list[pd.DataFrame], column: str, epoch: int) -> Spread:
    """Return the Spread over runs of one history column at one epoch."""
    return spread(float(h.loc[epoch, column]) for h in histories if epoch in h.index and column in h)


def _value(s: Spread, digits: int = 2, unit: str = "%") -> str:
    """Return a Spread as its value (one run) or 'mean ± sd (n=k)'; '–' when empty."""
    if s.n == 0:
        return "–"
    return f"{s.mean:.{digits}f}{unit}" if s.n == 1 else s.format(digits, unit)


def _n_note(histories) -> str:
    return f"n={len(histories)}" if histories else "no run"


# ---- the protocol, and the batch size the progress bar implies ------------------------------------------------

def batch_sizes_for(steps: int, images: int, drop_last: bool = False) -> list[int]:
    """Return every batch size that gives `steps` batches per epoch over `images` images."""
    count = (lambda b: images // b) if drop_last else (lambda b: math.ceil(images / b))
    return [b for b in range(1, images + 1) if count(b) == steps]


def protocol_block() -> str:
    """Return the protocol table (the report's settings beside the `full` profile's) and the batch-size derivation."""
    from ..results import REPORT_PROTOCOL, REPORT_STEPS_PER_EPOCH
    full = make_config(FULL, recipe="none", data_dir="synthetic").to_dict()
    rows = [("epochs", "epochs"), ("SGD learning rate", "lr"), ("momentum", "momentum"),
            ("weight decay", "weight_decay"), ("StepLR step (epochs)", "step_size"), ("StepLR factor", "gamma"),
            ("batch size", "batch_size")]
    lines = ["| setting | the report | profile `full` | same |", "|---|---|---|---|"]
    for label, key in rows:
        mine, theirs = REPORT_PROTOCOL[key], full[key]
        lines.append(f"| {label} | {mine:g} | {theirs:g} | {'yes' if mine == theirs else '**no**'} |")
    images, steps = REPORT_PROTOCOL["train_images"], REPORT_STEPS_PER_EPOCH
    fits, dropping = batch_sizes_for(steps, images), batch_sizes_for(steps, images, drop_last=True)
    b = REPORT_PROTOCOL["batch_size"]
    lines += ["", f"The report never prints its batch size; its progress bar counts {steps} batches per epoch. "
              f"Over {images:,} training images, ⌈{images:,} / b⌉ = {steps} holds for b = "
              f"{', '.join(map(str, fits)) or 'no batch size'} only (b = {b - 1} gives "
              f"{math.ceil(images / (b - 1))} batches, b = {b + 1} gives {math.ceil(images / (b + 1))}); "
              f"dropping the last partial batch, {', '.join(map(str, dropping)) or 'no batch size'} would give "
              f"{steps}. So the batch size is {', '.join(map(str, fits))}, with the last batch kept "
              f"({images - (steps - 1) * b:,} images)."]
    return "\n".join(lines)


# ---- the three augmentation figures -----------------------------------------------------------------------------

def augmentation_rows(root=None) -> list[dict]:
    """Return, per augmentation experiment, the report's figure and the full and quick reference scores."""
    from ..results import REPORT_TEST_ACC
    rows = []
    for recipe, label in AUGMENTATION:
        full, quick = _runs(FULL, recipe, root=root), _runs(QUICK, recipe, root=root)
        rows.append({"recipe": recipe, "label": label, "report": REPORT_TEST_ACC[recipe],
                     "full": spread(full["score"]), "full_best": spread(full["best"]),
                     "quick": spread(quick["score"])})
    return rows


def _order(values: dict) -> str:
    return " < ".join(k for k, _ in sorted(values.items(), key=lambda kv: kv[1]))


def augmentation_block(root=None) -> str:
    """Return the table of the three augmentation figures against both reference scales, and the order verdict."""
    rows = augmentation_rows(root)
    lines = ["| experiment | the report | full-scale reference, last epoch | report − reference | "
             "full-scale reference, best epoch | quick build, last epoch (mean ± sd, n) |", "|---" * 6 + "|"]
    for r in rows:
        gap = f"{r['report'] - r['full'].mean:+.2f} points" if r["full"].n else "–"
        lines.append(f"| {r['label']} | {r['report']:.2f}% | {_value(r['full'])} | {gap} | {_value(r['full_best'])} "
                     f"| {r['quick'].format() if r['quick'].n else '–'} |")
    orders = {"the report": _order({r["label"]: r["report"] for r in rows})}
    for key, name in (("full", "full-scale reference"), ("quick", "quick build")):
        if all(r[key].n for r in rows):
            orders[name] = _order({r["label"]: r[key].mean for r in rows})
    same = [name for name, o in orders.items() if name != "the report" and o == orders["the report"]]
    differ = [name for name, o in orders.items() if name != "the report" and o != orders["the report"]]
    verdict = (f"Order of the three: {orders['the report']} in the report; "
               + ("; ".join(f"{n}: {orders[n]}" for n in orders if n != "the report") or "no reference runs")
               + ". ")
    if same and not differ:
        verdict += "**The order is reproduced** at both scales (one run per setting at full scale)."
    elif differ:
        verdict += f"**The order differs** in the {', '.join(differ)}."
    return "\n".join(lines + ["", verdict])


# ---- the normalization log at epochs 51-54 ---------------------------------------------------------------------

def normalize_log_block(root=None) -> str:
    """Return the report's epoch-52-54 log beside the lr-0.1 normalize reference run at the same epochs."""
    from ..results import REPORT_NORMALIZE, REPORT_NORMALIZE_LOG_EPOCHS
    acc = dict(zip(REPORT_NORMALIZE_LOG_EPOCHS["log_test_acc"], REPORT_NORMALIZE["log_test_acc"]))
    loss = dict(zip(REPORT_NORMALIZE_LOG_EPOCHS["log_train_loss"], REPORT_NORMALIZE["log_train_loss"]))
    hist = _histories("normalize", root=root)
    lines = [f"| epoch | the report: training loss | reference: training loss | the report: test accuracy | "
             f"reference: test accuracy, test images without Normalize | reference: test accuracy, with Normalize |",
             "|---" * 6 + "|"]
    for epoch in sorted(set(acc) | set(loss)):
        lines.append(f"| {epoch} | {f'{loss[epoch]:.4f}' if epoch in loss else '–'} "
                     f"| {_value(at_epoch(hist, 'train_loss', epoch), 4, '')} "
                     f"| {f'{acc[epoch]:.2f}%' if epoch in acc else '–'} "
                     f"| {_value(at_epoch(hist, 'raw_test_acc', epoch))} | {_value(at_epoch(hist, 'test_acc', epoch))} |")
    lines += ["", f"Reference: `report/reference/full/`, normalization, lr 0.1 ({_n_note(hist)}); its second "
              "evaluation runs the same weights on test images without Normalize after every epoch."]
    if hist:
        gaps = [abs(at_epoch(hist, "train_loss", e).mean - v) for e, v in loss.items()]
        window = sorted(set(acc) | set(loss))
        without = [at_epoch(hist, "raw_test_acc", e).mean for e in window]
        with_norm = [at_epoch(hist, "test_acc", e).mean for e in window]
        lines += ["", f"At epochs {min(loss)}–{max(loss)} the reference's training loss is within "
                  f"{max(gaps):.4f} of the report's. At epochs {window[0]}–{window[-1]} its test accuracy is "
                  f"{min(without):.2f}–{max(without):.2f}% on test images without Normalize (the report, epochs "
                  f"{min(acc)}–{max(acc)}: {min(acc.values()):.2f}–{max(acc.values()):.2f}%) and "
                  f"{min(with_norm):.2f}–{max(with_norm):.2f}% with it."]
    return "\n".join(lines)


# ---- 30 and 50 epochs ------------------------------------------------------------------------------------------

def short_training_block(root=None) -> str:
    """Return the lr-0.1 reference runs' test accuracy at the report's shorter lengths, against its 50-70% range."""
    from ..results import REPORT_PROTOCOL, REPORT_SHORT_TRAINING
    from .experiments import RECIPE_LABELS
    epochs, (lo, hi) = REPORT_SHORT_TRAINING["epochs"], REPORT_SHORT_TRAINING["test_acc"]
    last = REPORT_PROTOCOL["epochs"]
    lines = [f"The report: {' to '.join(map(str, epochs))} epochs of training gave {lo:.0f}% to {hi:.0f}%. The "
             "reference runs' test accuracy at those epochs of their 60:", "",
             "| reference run (lr 0.1) | " + " | ".join(f"epoch {e}" for e in epochs) + f" | epoch {last} |",
             "|---" * (len(epochs) + 2) + "|"]
    inside = total = 0
    lrs, lifts = set(), []
    for recipe in LR_RECIPES:
        hist = _histories(recipe, root=root)
        if not hist:
            continue
        cells = []
        for e in epochs:
            s = at_epoch(hist, "test_acc", e)
            lrs |= {float(h.loc[e, "lr"]) for h in hist if e in h.index}
            total += 1
            inside += lo <= s.mean <= hi
            cells.append(_value(s) + ("" if lo <= s.mean <= hi else " (outside)"))
        final = at_epoch(hist, "test_acc", last)
        lifts.append(final.mean - at_epoch(hist, "test_acc", epochs[-1]).mean)
        lines.append(f"| {RECIPE_LABELS[recipe]} | " + " | ".join(cells) + f" | {_value(final)} |")
    lines += ["", f"{inside} of {total} cells fall inside the report's {lo:.0f}–{hi:.0f}% range. The learning rate "
              f"at those epochs is {', '.join(f'{v:g}' for v in sorted(lrs)) or '–'}: StepLR lowers it only after "
              f"epoch {REPORT_PROTOCOL['step_size']}, so a run of {' or '.join(map(str, epochs))} epochs with this "
              f"schedule never reaches the drop. From epoch {epochs[-1]} to epoch {last}, across the drop, "
              + (f"the runs gain {min(lifts):.2f} to {max(lifts):.2f} points." if lifts else "no run is recorded.")]
    return "\n".join(lines)


# ---- the lr-0.5 "fix" ------------------------------------------------------------------------------------------

def fix_block(root=None) -> str:
    """Return one sentence: the lr-0.5 run against the lr-0.1 run, tested with and without Normalize."""
    from ..results import REPORT_NORMALIZE
    fix_lr = REPORT_NORMALIZE["fix_lr"]
    cells = {(lr, m): spread(_runs(FULL, "normalize", lr, m, root)["score"]) for lr in (None, fix_lr)
             for m in (False, True)}
    if any(s.n == 0 for s in cells.values()):
        return "The full-scale reference holds no lr-0.1 and lr-0.5 normalization runs to test the fix with."
    better = [m for m in (False, True) if cells[(fix_lr, m)].mean > cells[(None, m)].mean]
    verdict = ("**Reproduced** " + " and ".join("without Normalize" if m else "with Normalize" for m in better)
               if better else "**Not reproduced**, whether the test images get Normalize or not")
    return (f"{verdict}: at full scale, lr {fix_lr:g} scores {format_spread(cells[(fix_lr, False)])} with Normalize "
            f"(lr 0.1: {format_spread(cells[(None, False)])}) and {format_spread(cells[(fix_lr, True)])} without "
            f"(lr 0.1: {format_spread(cells[(None, True)])}), against the report's "
            f"{REPORT_NORMALIZE['fix_test_acc']:.2f}%.")


# ---- why the full-scale figures land under the report's -------------------------------------------------------

def gap_block(root=None) -> str:
    """Return the gaps between the report's three figures and the full-scale reference, and what is known of them."""
    from ..results import reference_sd
    rows = [r for r in augmentation_rows(root) if r["full"].n]
    if not rows:
        return "No full-scale reference runs: the gap is not measured."
    last = [r["report"] - r["full"].mean for r in rows]
    best = [r["report"] - r["full_best"].mean for r in rows]
    n = sorted({r["full"].n for r in rows})
    quick = reference_sd(QUICK, [r["recipe"] for r in rows])
    folder = profile_dir(FULL, root)
    data = sorted({read_json(folder / name / RECORD)["config"].get("data_dir", "?")
                   for r in rows for name in _runs(FULL, r["recipe"], root=root)["folder"]})
    sd = (f"a pooled seed-to-seed sd of {quick.sd:.2f} points at the quick scale ({quick.experiments} experiments "
          f"of `{quick.folder}`)" if quick.measured else "no measured seed-to-seed spread")
    return (f"The report's figure is above the reference's in {sum(g > 0 for g in last)} of {len(last)} settings: "
            f"by {min(last):.2f} to {max(last):.2f} points at the last epoch, {min(best):.2f} to {max(best):.2f} "
            f"at the reference's best epoch. The reference holds {' or '.join(map(str, n))} "
            f"run{'s' if n != [1] else ''} per setting "
            f"(data: {', '.join(f'`{d}`' for d in data)}); the only spread measured between seeds is {sd}.")


# ---- the CAM image ---------------------------------------------------------------------------------------------

def cam_block() -> str:
    """Return the report's CAM code as facts: which test image, which class, which layer, and what its text names."""
    from ..data import CLASSES
    from ..results import REPORT_CAM
    i, k = REPORT_CAM["image_index"], REPORT_CAM["target_class"]
    return "\n".join([
        f"- the image: `test_dataset.data[{i}]`, image {i} (counting from 0) of torchvision's CIFAR-10 test set, "
        "which keeps the order of the official test batch;",
        f"- the explained class: `ClassifierOutputTarget({k})`, class {k}, which is *{CLASSES[k]}*;",
        f"- the layer: `target_layers=[ResNet18.{REPORT_CAM['layer']}]`;",
        f"- its text, on the figures: a {REPORT_CAM['text_class']}."])


BLOCKS = {"protocol": protocol_block, "augmentation": augmentation_block, "normalize-log": normalize_log_block,
          "short-training": short_training_block, "fix": fix_block, "cam": cam_block, "gap": gap_block}


def render_page(text: str, root=None) -> str:
    """Return the page's text with every rendered block replaced by its rendering."""
    for name, block in BLOCKS.items():
        start, end = marker(name)
        if start not in text or end not in text:
            raise ValueError(f"the course-report page has no {name!r} block; add the markers {start} ... {end}")
        body = block() if name in ("protocol", "cam") else block(root)
        text = replace_block(text, start, end, body)
    return text


def update_page(path: Path, root=None) -> bool:
    """Rewrite the rendered blocks of the course-report page `path`; return whether it changed."""
    path = Path(path)
    text = path.read_text()
    new = render_page(text, root)
    if new != text:
        atomic_write_bytes(path, new.encode())
    return new != text
