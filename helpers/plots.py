"""Figures for the notebooks: images, model shapes, training curves and comparisons.

Every function takes `ax=None` (or `axes=None` for a multi-panel figure), draws on it or on a new
figure, and returns the Axes (or the Figure). Nothing is shown or saved here: the notebook shows it.
"""
from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import MaxNLocator

from .data import CLASSES
from .recipes import augment_batch, get_recipe
from .stats import Spread

# One colour per recipe or setting, the same in every figure.
COLORS = {"none": "tab:blue", "flip_rotate": "tab:orange", "crop": "tab:green", "crop_flip": "tab:red",
          "normalize": "tab:purple"}
_CYCLE = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def color_for(label: str, i: int = 0) -> str:
    """Return the fixed colour of a recipe, else the i-th colour of the default cycle."""
    return COLORS.get(label, _CYCLE[i % len(_CYCLE)])


def _new_ax(ax, figsize):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _to_hwc(img) -> np.ndarray:
    """Return one image as an H x W x 3 float array in [0, 1] (uint8 or float CHW in)."""
    t = torch.as_tensor(img).detach().cpu()
    t = t.float() / 255 if t.dtype == torch.uint8 else t.float()
    return t.clamp(0, 1).permute(1, 2, 0).numpy()


def mosaic(images, ncols: int, pad: int = 2, label_band: int = 0, group: int = 0,
           group_gap: int = 0) -> np.ndarray:
    """Return one RGB array tiling the images in rows of `ncols`, white between tiles.

    `label_band` leaves room above each row for text; every `group` columns a wider gap separates groups.
    """
    tiles = [_to_hwc(im) for im in images]
    h, w = tiles[0].shape[:2]
    nrows = math.ceil(len(tiles) / ncols)
    gaps = [(c // group) * group_gap if group else 0 for c in range(ncols)]
    width = ncols * (w + pad) + pad + (gaps[-1] if gaps else 0)
    height = nrows * (h + pad + label_band) + pad
    out = np.ones((height, width, 3))
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncols)
        y = pad + label_band + r * (h + pad + label_band)
        x = pad + c * (w + pad) + gaps[c]
        out[y:y + h, x:x + w] = t
    return out


def image_grid(images, labels=None, ncols: int = 8, ax=None, title: str | None = None):
    """Draw the images as one grid, each under its label; return the Axes."""
    images = list(images)
    nrows = math.ceil(len(images) / ncols)
    band = 12 if labels is not None else 0
    ax = _new_ax(ax, (1.1 * ncols, (1.1 + band / 32) * nrows + 0.4))
    ax.imshow(mosaic(images, ncols, label_band=band), interpolation="nearest")
    if labels is not None:
        for i, text in enumerate(labels):
            r, c = divmod(i, ncols)
            ax.text(2 + c * 34 + 16, r * (34 + band) + band, str(text), ha="center", va="bottom",
                    fontsize=8)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def sample_images(data, per_class: int = 2, seed: int = 0) -> torch.Tensor:
    """Return indices of `per_class` seeded random training images of each class, class by class."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for k in range(len(data.classes)):
        idx = (data.train_y == k).nonzero().flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.stack(picks, 1).flatten()  # interleaved: one of each class per row


def sample_grid(data, per_class: int = 2, seed: int = 0, ax=None):
    """Draw `per_class` training images of each class with their class names; return the Axes."""
    idx = sample_images(data, per_class, seed)
    labels = [data.classes[int(data.train_y[i])] for i in idx]
    return image_grid(data.train_x[idx], labels, ncols=len(data.classes), ax=ax,
                      title=f"{len(idx)} training images ({data.source} data)")


def plot_stage_shapes(shapes_by_stem: dict, ax=None):
    """Draw the spatial side of each stage's output, one bar group per stage and stem; return the Axes.

    `shapes_by_stem` maps a stem name to `stage_shapes(model)`: [(stage, (C, H, W)), ...].
    """
    ax = _new_ax(ax, (9, 4))
    stems = list(shapes_by_stem)
    # avgpool is 1x1 by design and fc is flat: only the convolutional stages tell the story
    stages = [s for s, shape in next(iter(shapes_by_stem.values())) if len(shape) == 3 and s != "avgpool"]
    width = 0.8 / len(stems)
    for j, stem in enumerate(stems):
        shapes = {s: shape for s, shape in shapes_by_stem[stem] if len(shape) == 3}
        sides = [shapes[s][1] for s in stages]
        xs = np.arange(len(stages)) + (j - (len(stems) - 1) / 2) * width
        bars = ax.bar(xs, sides, width, label=f"{stem} stem", color=_CYCLE[j])
        for b, s in zip(bars, stages):
            c, hh, ww = shapes[s]
            one = hh == 1 and ww == 1
            ax.annotate(f"{c}×{hh}×{ww}", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=7, rotation=90, xytext=(0, 2),
                        textcoords="offset points", color="red" if one else "black",
                        fontweight="bold" if one else "normal")
            if one:
                b.set_edgecolor("red")
                b.set_linewidth(2)
    ax.set_yscale("log", base=2)
    ax.set_ylim(0.5, 128)
    ax.set_xticks(np.arange(len(stages)), stages)
    ax.set_ylabel("output height = width (pixels, log scale)")
    ax.set_title("Feature-map size after each stage, for one 32×32 input (red: 1×1)")
    ax.legend(loc="upper right")
    return ax


def lr_drops(history: pd.DataFrame) -> list[float]:
    """Return the positions (between epochs) where the learning rate fell."""
    lr = history["lr"].to_numpy()
    ep = history["epoch"].to_numpy()
    return [float(ep[i] - 0.5) for i in range(1, len(lr)) if lr[i] < lr[i - 1] * 0.999]


def _mark_lr_drops(ax, history, label=True):
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for k, x in enumerate(lr_drops(history)):
        ax.axvline(x, color="grey", ls=":", lw=1.2, label="LR drop (×0.1)" if label and k == 0 else None)


METRICS = {"loss": ("train_loss", "test_loss", "cross-entropy loss"),
           "acc": ("train_acc", "test_acc", "accuracy (%)")}


def histories_of(h) -> list[pd.DataFrame]:
    """Return a list of histories from one history or a list of them (one per seed)."""
    return list(h) if isinstance(h, (list, tuple)) else [h]


def stack_column(histories, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (epochs, values as seeds x epochs) of one column, over the epochs every history has."""
    n = min(len(h) for h in histories)
    return (histories[0]["epoch"].to_numpy()[:n],
            np.array([h[column].to_numpy(dtype=float)[:n] for h in histories]))


def _n_label(label: str, n: int) -> str:
    return label if n == 1 else f"{label} (mean of {n})"


def draw_mean_band(ax, x, ys, color, label=None, ls="-", marker=None, alpha=0.2, ms=None):
    """Draw the mean of ys (seeds x points) as a line and, with two seeds or more, their min–max as a band."""
    ys = np.atleast_2d(ys)
    line, = ax.plot(x, ys.mean(0), ls=ls, marker=marker, ms=ms, color=color, label=label)
    if len(ys) > 1:
        ax.fill_between(x, ys.min(0), ys.max(0), color=color, alpha=alpha, lw=0)
    return line


def plot_metric(history, metric: str = "acc", ax=None, title: str | None = None):
    """Draw train and test `metric` ("loss" or "acc") per epoch, LR drops marked; return the Axes.

    `history` is one run's history or a list of them (one per seed): the mean is drawn, with a min–max band.
    """
    if metric not in METRICS:
        raise ValueError(f"parameter 'metric' = {metric!r} is invalid; valid: {' | '.join(METRICS)}")
    train, test, ylabel = METRICS[metric]
    hs = histories_of(history)
    ax = _new_ax(ax, (6, 4))
    for col, label, marker, color in ((train, "train", "o", _CYCLE[0]), (test, "test", "s", _CYCLE[1])):
        x, ys = stack_column(hs, col)
        draw_mean_band(ax, x, ys, color, _n_label(label, len(hs)), marker=marker, ms=3)
    _mark_lr_drops(ax, hs[0])
    if metric == "loss":
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title or ("Loss" if metric == "loss" else "Accuracy") + " per epoch"
                 + ("" if len(hs) == 1 else f" (band: min–max of {len(hs)} seeds)"))
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_curves(history, axes=None, title: str | None = None):
    """Draw loss and accuracy per epoch side by side (one history or a list, one per seed); return the Figure."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    else:
        fig = axes[0].figure
    plot_metric(history, "loss", axes[0])
    plot_metric(history, "acc", axes[1])
    if title:
        fig.suptitle(title)
    return fig


def plot_runs(histories: dict, metric: str = "test_acc", ax=None, train_too: bool = False,
              title: str | None = None, logy: bool | None = None):
    """Overlay one history column per label (dashed: the train counterpart if asked); return the Axes.

    Each label maps to one history or a list of them (one per seed): the mean is drawn with a min–max band.
    """
    ax = _new_ax(ax, (7, 4.5))
    many = False
    for i, (label, h) in enumerate(histories.items()):
        hs = histories_of(h)
        many |= len(hs) > 1
        color = color_for(label, i)
        x, ys = stack_column(hs, metric)
        draw_mean_band(ax, x, ys, color, _n_label(label, len(hs)), marker=".")
        if train_too:
            x, ys = stack_column(hs, metric.replace("test_", "train_"))
            draw_mean_band(ax, x, ys, color, ls="--", alpha=0.1)
    if histories:
        _mark_lr_drops(ax, histories_of(next(iter(histories.values())))[0])
    if train_too:
        ax.plot([], [], "k-", label="test")
        ax.plot([], [], "k--", alpha=0.7, label="train")
    if logy if logy is not None else "loss" in metric:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    what = metric.replace("test_", "") if train_too else metric  # both train and test are drawn
    ax.set_ylabel({"acc": "accuracy", "loss": "loss"}.get(what, what.replace("_", " "))
                  + (" (%)" if metric.endswith("acc") else ""))
    band = "\n(band: min–max over seeds)" if many else ""
    ax.set_title((title or metric.replace("_", " ") + " per epoch") + band)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_per_class(per_class_acc: dict, ax=None, overall: float | None = None, title: str | None = None):
    """Draw each class's test accuracy as a horizontal bar, with the overall accuracy; return the Axes."""
    ax = _new_ax(ax, (6, 4))
    names, values = list(per_class_acc), list(per_class_acc.values())
    bars = ax.barh(names, values, color="tab:blue")
    ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
    if overall is not None:
        ax.axvline(overall, color="black", ls="--", lw=1, label=f"overall {overall:.2f}%")
        ax.legend(loc="lower right", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("test accuracy (%)")
    ax.set_title(title or "Test accuracy per class")
    return ax


def plot_confusion(confusion, classes=CLASSES, ax=None, title: str | None = None):
    """Draw the confusion matrix, coloured by row share, annotated with counts; return the Axes."""
    cm = np.asarray(confusion, dtype=float)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax = _new_ax(ax, (6.5, 5.5))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "Confusion matrix (test set; colour: share of the true class)")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of row")
    return ax


def augmentation_draws(images: torch.Tensor, recipe: str, draws: int, seed: int = 0,
                       form: str = "batched") -> torch.Tensor:
    """Return (len(images) * draws) augmented copies, image by image, from the chosen implementation.

    form="batched": `augment_batch` (what training uses); form="torchvision": the recipe's
    torchvision pipeline applied to each PIL image, as the report wrote it.
    """
    rec = get_recipe(recipe)
    reps = images.repeat_interleave(draws, 0)
    if form == "batched":
        g = torch.Generator().manual_seed(seed)
        return augment_batch(rec, reps, g)
    if form == "torchvision":
        from torchvision.transforms.functional import to_pil_image
        torch.manual_seed(seed)  # torchvision's random transforms draw from the global generator
        tf = rec.train_transform()
        return torch.stack([tf(to_pil_image(im)) for im in reps])
    raise ValueError(f"parameter 'form' = {form!r} is invalid; valid: batched | torchvision")


def augmentation_gallery(images: torch.Tensor, recipes, draws: int = 4, seed: int = 0,
                         form: str = "batched", ax=None):
    """Draw each recipe as one row: every image `draws` times, each a fresh random draw; return the Axes."""
    recipes = list(recipes)
    n = len(images)
    rows = [augmentation_draws(images, r, draws, seed + k, form) for k, r in enumerate(recipes)]
    for r, batch in zip(recipes, rows):
        if get_recipe(r).normalize:  # only for display: bring normalized values back to [0, 1]
            lo, hi = batch.amin(), batch.amax()
            batch.sub_(lo).div_(hi - lo)
    ncols, gap = n * draws, 8
    ax = _new_ax(ax, (0.55 * ncols + 1.5, 0.75 * len(recipes) + 0.8))
    ax.imshow(mosaic(torch.cat(rows), ncols, group=draws, group_gap=gap), interpolation="nearest")
    ax.set_yticks([2 + 16 + k * 34 for k in range(len(recipes))], recipes)
    ax.set_xticks([2 + (i * draws + draws / 2) * 34 + i * gap - 1 for i in range(n)],
                  [f"image {i + 1}" for i in range(n)])
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.set_title(f"{draws} random draws of each image under each recipe ({form} form)")
    return ax


def _bar_values(column) -> tuple[np.ndarray, list]:
    """Return the bar heights of a table column (a Spread's mean) and each cell's seed values."""
    means = [v.mean if isinstance(v, Spread) else float(pd.to_numeric(pd.Series([v]), errors="coerce").iloc[0])
             for v in column]
    return np.array(means, dtype=float), [list(v.values) if isinstance(v, Spread) else [] for v in column]


def compare_bars(table: pd.DataFrame, label: str, columns: dict, ax=None, title: str | None = None,
                 ylabel: str = "accuracy (%)", annotate: bool = True):
    """Draw grouped bars: one group per row of `table`, one bar per column; return the Axes.

    `columns` maps a table column to its legend text. A cell holding a Spread draws its mean as the bar,
    its min–max as an error bar and every seed as a dot; a missing value (NaN) leaves its bar out and
    writes "n/a" in its place.
    """
    ax = _new_ax(ax, (max(6, 1.6 * len(table) + 2), 4.5))
    width = 0.8 / len(columns)
    xs = np.arange(len(table))
    styles = [dict(color="lightgrey", hatch="//", edgecolor="grey"), dict(color="tab:blue"),
              dict(color="tab:cyan"), dict(color="tab:orange", alpha=0.6), dict(color="tab:green")]
    dotted = False
    for j, (col, text) in enumerate(columns.items()):
        vals, seeds = _bar_values(table[col])
        pos = xs + (j - (len(columns) - 1) / 2) * width
        style = styles[j % len(styles)]
        bars = ax.bar(pos, np.nan_to_num(vals), width, label=text, **style)
        for b, v, pts in zip(bars, vals, seeds):
            mid = b.get_x() + width / 2
            if np.isnan(v):
                b.set_visible(False)
                ax.text(mid, 1, "n/a", ha="center", va="bottom", fontsize=7)
                continue
            top = v
            if len(pts) > 1:
                ax.errorbar([mid], [v], yerr=[[v - min(pts)], [max(pts) - v]], fmt="none", ecolor="black",
                            elinewidth=1, capsize=3)
                ax.plot([mid] * len(pts), pts, "o", color="black", ms=2.5,
                        label=None if dotted else "one seed (bar: mean, line: min–max)")
                dotted, top = True, max(pts)
            if annotate:
                ax.text(mid, top, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, [textwrap.fill(str(v), 18) for v in table[label]], fontsize=8)
    ax.set_ylabel(ylabel)
    if ylabel.endswith("(%)"):
        ax.set_ylim(0, 118)  # headroom for the legend above the tallest bars
        ax.set_yticks(range(0, 101, 20))
    ax.set_title(title or "")
    ax.legend(fontsize=8, loc="upper center", ncol=len(columns) + dotted, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_channel_stats(measured_mean, measured_std, report_mean, report_std, ax=None):
    """Draw per-channel mean and std: measured on the training images beside the report's; return the Axes."""
    ax = _new_ax(ax, (7, 4))
    labels = [f"{s} {c}" for s in ("mean", "std") for c in ("R", "G", "B")]
    measured = list(measured_mean) + list(measured_std)
    report = list(report_mean) + list(report_std)
    xs = np.arange(len(labels))
    b1 = ax.bar(xs - 0.2, measured, 0.4, label="measured (training images)", color="tab:blue")
    b2 = ax.bar(xs + 0.2, report, 0.4, label="report's constants", color="lightgrey", hatch="//",
                edgecolor="grey")
    ax.bar_label(b1, fmt="%.4f", fontsize=7, rotation=90, padding=2)
    ax.bar_label(b2, fmt="%.4f", fontsize=7, rotation=90, padding=2)
    ax.set_xticks(xs, labels)
    ax.set_ylim(0, 0.75)
    ax.set_ylabel("value (pixel scale 0–1)")
    ax.set_title("Per-channel statistics: measured vs the report's Normalize constants")
    ax.legend(fontsize=8)
    return ax
