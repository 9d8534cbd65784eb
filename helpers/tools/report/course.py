"""docs/course-report.md's figures, rendered from the report's constants (helpers.notebook.results) and
report/reference/ into its `<!-- course:NAME:start/end -->` blocks by `python -m helpers.tools.reference readme`."""
from __future__ import annotations

import math

import pandas as pd

from helpers.core.config import make_config
from helpers.core.data import CLASSES
from helpers.core.runs import RECORD, read_json
from helpers.core.stats import Spread, spread
from helpers.notebook.results import (REPORT_CAM, REPORT_NORMALIZE, REPORT_NORMALIZE_LOG_EPOCHS, REPORT_PROTOCOL,
                                      REPORT_SHORT_TRAINING, REPORT_STEPS_PER_EPOCH, REPORT_TEST_ACC, reference_sd)
from helpers.tools.reference import profile_dir, replace_block, rewrite, table
from .experiments import RECIPE_LABELS, format_spread
from .readme import matches as runs

FULL, QUICK = "full", "quick"
AUGMENTATION = ("none", "flip_rotate", "crop")
LR_RECIPES = ("none", "flip_rotate", "crop", "normalize")  # the 60-epoch lr-0.1 reference runs


def marker(name: str) -> tuple[str, str]:
    """Return the start and end markers of one rendered block of the page."""
    return f"<!-- course:{name}:start -->", f"<!-- course:{name}:end -->"


def histories(recipe: str, root=None) -> list[pd.DataFrame]:
    """Return the history.csv of every full-scale lr-0.1 reference run of one recipe, indexed by epoch."""
    return [pd.read_csv(profile_dir(FULL, root) / name / "history.csv").set_index("epoch")
            for name in runs(FULL, recipe, root=root)["folder"]]


def at_epoch(hist: list[pd.DataFrame], column: str, epoch: int) -> Spread:
    """Return the Spread over runs of one history column at one epoch."""
    return spread(float(h.loc[epoch, column]) for h in hist if epoch in h.index and column in h)


def value(s: Spread, digits: int = 2, unit: str = "%") -> str:
    """Return a Spread as its value (one run) or 'mean ± sd (n=k)'; '–' when empty."""
    return f"{s.mean:.{digits}f}{unit}" if s.n == 1 else s.format(digits, unit)


def batch_sizes_for(steps: int, images: int, drop_last: bool = False) -> list[int]:
    """Return every batch size that gives `steps` batches per epoch over `images` images."""
    return [b for b in range(1, images + 1) if (images // b if drop_last else math.ceil(images / b)) == steps]


def protocol_block() -> str:
    """Return the protocol table (the report's settings beside the `full` profile's) and the batch-size derivation."""
    full = make_config(FULL, recipe="none", data_dir="synthetic").to_dict()
    labels = {"epochs": "epochs", "lr": "SGD learning rate", "momentum": "momentum", "weight_decay": "weight decay",
              "step_size": "StepLR step (epochs)", "gamma": "StepLR factor", "batch_size": "batch size"}
    rows = [[label, f"{REPORT_PROTOCOL[k]:g}", f"{full[k]:g}", "yes" if REPORT_PROTOCOL[k] == full[k] else "**no**"]
            for k, label in labels.items()]
    images, steps, b = REPORT_PROTOCOL["train_images"], REPORT_STEPS_PER_EPOCH, REPORT_PROTOCOL["batch_size"]
    fits, dropping = batch_sizes_for(steps, images), batch_sizes_for(steps, images, drop_last=True)
    return (table(["setting", "the report", "profile `full`", "same"], rows) + "\n\n"
            f"The report never prints its batch size; its progress bar counts {steps} batches per epoch. "
            f"Over {images:,} training images, ⌈{images:,} / b⌉ = {steps} holds for b = "
            f"{', '.join(map(str, fits)) or 'no batch size'} only (b = {b - 1} gives {math.ceil(images / (b - 1))} "
            f"batches, b = {b + 1} gives {math.ceil(images / (b + 1))}); dropping the last partial batch, "
            f"{', '.join(map(str, dropping)) or 'no batch size'} would give {steps}. So the batch size is "
            f"{', '.join(map(str, fits))}, with the last batch kept ({images - (steps - 1) * b:,} images).")


def augmentation_rows(root=None) -> list[dict]:
    """Return, per augmentation experiment, the report's figure and the full and quick reference scores."""
    return [{"recipe": r, "label": RECIPE_LABELS[r], "report": REPORT_TEST_ACC[r], "full": spread(full["score"]),
             "full_best": spread(full["best"]), "quick": spread(runs(QUICK, r, root=root)["score"])}
            for r, full in ((r, runs(FULL, r, root=root)) for r in AUGMENTATION)]


def augmentation_block(root=None) -> str:
    """Return the table of the three augmentation figures against both reference scales, and the order verdict."""
    rows = augmentation_rows(root)
    body = [[r["label"], f"{r['report']:.2f}%", value(r["full"]), f"{r['report'] - r['full'].mean:+.2f} points"
             if r["full"].n else "–", value(r["full_best"]), r["quick"].format()] for r in rows]
    sides = {"the report": {r["label"]: r["report"] for r in rows}}
    for k, name in (("full", "full-scale reference"), ("quick", "quick build")):
        sides |= {name: {r["label"]: r[k].mean for r in rows}} if all(r[k].n for r in rows) else {}
    orders = {name: " < ".join(sorted(v, key=v.get)) for name, v in sides.items()}
    same, differ = ([n for n in list(orders)[1:] if (orders[n] == orders["the report"]) == want] for want in (1, 0))
    return (table(["experiment", "the report", "full-scale reference, last epoch", "report − reference",
                   "full-scale reference, best epoch", "quick build, last epoch (mean ± sd, n)"], body) + "\n\n"
            + f"Order of the three: {orders['the report']} in the report; "
            + ("; ".join(f"{n}: {orders[n]}" for n in list(orders)[1:]) or "no reference runs") + ". "
            + (f"**The order differs** in the {', '.join(differ)}." if differ else
               f"**The order is reproduced** in the {' and the '.join(same)}." if same else ""))


def normalize_log_block(root=None) -> str:
    """Return the report's epoch-51-54 log beside the lr-0.1 normalize reference run at the same epochs."""
    acc = dict(zip(REPORT_NORMALIZE_LOG_EPOCHS["log_test_acc"], REPORT_NORMALIZE["log_test_acc"]))
    loss = dict(zip(REPORT_NORMALIZE_LOG_EPOCHS["log_train_loss"], REPORT_NORMALIZE["log_train_loss"]))
    hist, window = histories("normalize", root), sorted(set(acc) | set(loss))
    ref = {c: [at_epoch(hist, c, e) for e in window] for c in ("train_loss", "raw_test_acc", "test_acc")}
    rows = [[e, f"{loss[e]:.4f}" if e in loss else "–", value(ref["train_loss"][i], 4, ""),
             f"{acc[e]:.2f}%" if e in acc else "–", value(ref["raw_test_acc"][i]), value(ref["test_acc"][i])]
            for i, e in enumerate(window)]
    text = [table(["epoch", "the report: training loss", "reference: training loss", "the report: test accuracy",
                   "reference: test accuracy, test images without Normalize",
                   "reference: test accuracy, with Normalize"], rows),
            f"Reference: `report/reference/full/`, normalization, lr 0.1 ({f'n={len(hist)}' if hist else 'no run'}); "
            "its second evaluation runs the same weights on test images without Normalize after every epoch."]
    if hist:
        gap = max(abs(s.mean - loss[e]) for e, s in zip(window, ref["train_loss"]) if e in loss)
        span = {c: f"{min(s.mean for s in v):.2f}–{max(s.mean for s in v):.2f}%" for c, v in ref.items()}
        text.append(f"At epochs {min(loss)}–{max(loss)} the reference's training loss is within {gap:.4f} of the "
                    f"report's. At epochs {window[0]}–{window[-1]} its test accuracy is {span['raw_test_acc']} on "
                    f"test images without Normalize (the report, epochs {min(acc)}–{max(acc)}: "
                    f"{min(acc.values()):.2f}–{max(acc.values()):.2f}%) and {span['test_acc']} with it.")
    return "\n\n".join(text)


def short_training_block(root=None) -> str:
    """Return the lr-0.1 reference runs' test accuracy at the report's shorter lengths, against its 50-70% range."""
    epochs, (lo, hi) = REPORT_SHORT_TRAINING["epochs"], REPORT_SHORT_TRAINING["test_acc"]
    last = REPORT_PROTOCOL["epochs"]
    found = {r: h for r in LR_RECIPES if (h := histories(r, root))}
    cells = {r: [at_epoch(h, "test_acc", e) for e in (*epochs, last)] for r, h in found.items()}
    rows = [[RECIPE_LABELS[r]] + [value(s) + ("" if lo <= s.mean <= hi else " (outside)") for s in c[:-1]]
            + [value(c[-1])] for r, c in cells.items()]
    inside = sum(lo <= s.mean <= hi for c in cells.values() for s in c[:-1])
    lrs = sorted({float(h.loc[e, "lr"]) for hs in found.values() for h in hs for e in epochs if e in h.index})
    lifts = [c[-1].mean - c[-2].mean for c in cells.values()]
    return (f"The report: {' to '.join(map(str, epochs))} epochs of training gave {lo:.0f}% to {hi:.0f}%. The "
            "reference runs' test accuracy at those epochs of their 60:\n\n"
            + table(["reference run (lr 0.1)"] + [f"epoch {e}" for e in (*epochs, last)], rows) + "\n\n"
            f"{inside} of {len(cells) * len(epochs)} cells fall inside the report's {lo:.0f}–{hi:.0f}% range. The "
            f"learning rate at those epochs is {', '.join(f'{v:g}' for v in lrs) or '–'}: StepLR lowers it only after "
            f"epoch {REPORT_PROTOCOL['step_size']}, so a run of {' or '.join(map(str, epochs))} epochs with this "
            f"schedule never reaches the drop. From epoch {epochs[-1]} to epoch {last}, across the drop, "
            + (f"the runs gain {min(lifts):.2f} to {max(lifts):.2f} points." if lifts else "no run is recorded."))


def fix_block(root=None) -> str:
    """Return one sentence: the lr-0.5 run against the lr-0.1 run, tested with and without Normalize."""
    fix_lr = REPORT_NORMALIZE["fix_lr"]
    s = {(lr, raw): spread(runs(FULL, "normalize", lr, raw, root)["score"]) for lr in (None, fix_lr) for raw in (0, 1)}
    if any(v.n == 0 for v in s.values()):
        return "The full-scale reference holds no lr-0.1 and lr-0.5 normalization runs to test the fix with."
    better = [("with Normalize", "without Normalize")[raw] for raw in (0, 1)
              if s[(fix_lr, raw)].mean > s[(None, raw)].mean]
    return (("**Reproduced** " + " and ".join(better) if better else
             "**Not reproduced**, whether the test images get Normalize or not")
            + f": at full scale, lr {fix_lr:g} scores {format_spread(s[(fix_lr, 0)])} with Normalize (lr 0.1: "
            f"{format_spread(s[(None, 0)])}) and {format_spread(s[(fix_lr, 1)])} without (lr 0.1: "
            f"{format_spread(s[(None, 1)])}), against the report's {REPORT_NORMALIZE['fix_test_acc']:.2f}%.")


def gap_block(root=None) -> str:
    """Return the gaps between the report's three figures and the full-scale reference, and what is known of them."""
    rows = [r for r in augmentation_rows(root) if r["full"].n]
    if not rows:
        return "No full-scale reference runs: the gap is not measured."
    last, best = ([r["report"] - r[k].mean for r in rows] for k in ("full", "full_best"))
    n = sorted({r["full"].n for r in rows})
    quick = reference_sd(QUICK, [r["recipe"] for r in rows])
    data = sorted({read_json(profile_dir(FULL, root) / name / RECORD)["config"].get("data_dir", "?")
                   for r in rows for name in runs(FULL, r["recipe"], root=root)["folder"]})
    sd = (f"a pooled seed-to-seed sd of {quick.sd:.2f} points at the quick scale ({quick.experiments} experiments "
          f"of `{quick.folder}`)" if quick.measured else "no measured seed-to-seed spread")
    return (f"The report's figure is above the reference's in {sum(g > 0 for g in last)} of {len(last)} settings: "
            f"by {min(last):.2f} to {max(last):.2f} points at the last epoch, {min(best):.2f} to {max(best):.2f} "
            f"at the reference's best epoch. The reference holds {' or '.join(map(str, n))} "
            f"run{'s' if n != [1] else ''} per setting (data: {', '.join(f'`{d}`' for d in data)}); the only spread "
            f"measured between seeds is {sd}.")


def cam_block(root=None) -> str:
    """Return the report's CAM code as facts: which test image, which class, which layer, and what its text names."""
    i, k = REPORT_CAM["image_index"], REPORT_CAM["target_class"]
    return (f"- the image: `test_dataset.data[{i}]`, image {i} (counting from 0) of torchvision's CIFAR-10 test set, "
            f"which keeps the order of the official test batch;\n- the explained class: `ClassifierOutputTarget({k})`, "
            f"class {k}, which is *{CLASSES[k]}*;\n- the layer: `target_layers=[ResNet18.{REPORT_CAM['layer']}]`;\n"
            f"- its text, on the figures: a {REPORT_CAM['text_class']}.")


BLOCKS = {"protocol": lambda root: protocol_block(), "augmentation": augmentation_block,
          "normalize-log": normalize_log_block, "short-training": short_training_block, "fix": fix_block,
          "cam": cam_block, "gap": gap_block}


def render_page(text: str, root=None) -> str:
    """Return the page's text with every rendered block replaced by its rendering."""
    for name, block in BLOCKS.items():
        start, end = marker(name)
        missing = f"the course-report page has no {name!r} block; add the markers {start} ... {end}"
        text = replace_block(text, start, end, block(root), missing)
    return text


def update_page(path, root=None) -> bool:
    """Rewrite the rendered blocks of the course-report page `path`; return whether it changed."""
    return rewrite(path, lambda text: render_page(text, root))
