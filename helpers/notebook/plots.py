"""Figures for the notebooks: images, model shapes, training curves and comparisons, each drawn on `ax` or a new
figure and returned (never shown here). Curves share `_curves`, grouped bars `_bar_groups`, images `_show_tiles`."""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import MaxNLocator
from torchvision.transforms.functional import to_pil_image
from torchvision.utils import make_grid

from helpers.core.data import CLASSES, balanced_subset
from helpers.core.recipes import augment_batch, get_recipe
from helpers.core.stats import Spread

# One colour per recipe, the same in every figure; other labels take the default cycle's colours.
COLORS = {"none": "tab:blue", "flip_rotate": "tab:orange", "crop": "tab:green", "crop_flip": "tab:red",
          "normalize": "tab:purple"}
_CYCLE = plt.rcParams["axes.prop_cycle"].by_key()["color"]
BAR_STYLES = (dict(color="lightgrey", hatch="//", edgecolor="grey"), dict(color="tab:blue"), dict(color="tab:cyan"),
              dict(color="tab:orange", alpha=0.6), dict(color="tab:green"))  # the first: the report's figures
TILE = 34  # one 32-pixel image and the 2-pixel white gap of `mosaic`


def _new_ax(ax, figsize):
    """Return ax, or the Axes of a new figure of that size."""
    return plt.subplots(figsize=figsize, layout="constrained")[1] if ax is None else ax


def mosaic(images: torch.Tensor, ncols: int) -> np.ndarray:
    """Return images (uint8, or float in [0, 1]) as one H x W x 3 array, `ncols` a row, 2 white pixels apart."""
    x = images.detach().cpu().float() / (255 if images.dtype == torch.uint8 else 1)
    return make_grid(x.clamp(0, 1), nrow=ncols, padding=2, pad_value=1).permute(1, 2, 0).numpy()


def _show_tiles(ax, tiles: np.ndarray, xticks, xlabels, ylabels=(), title: str = ""):
    """Show a mosaic with ticks as its only labels (columns below, rows at the left) and no frame."""
    ax.imshow(tiles, interpolation="nearest")
    ax.set_xticks(xticks, xlabels)
    ax.set_yticks([2 + 16 + k * TILE for k in range(len(ylabels))], ylabels)
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    ax.set_title(title)
    return ax


def sample_images(data, per_class: int = 2, seed: int = 0) -> torch.Tensor:
    """Return indices of `per_class` seeded random training images of each class, one of each class per row."""
    idx = balanced_subset(data.train_y, per_class * len(data.classes), seed)
    return idx[data.train_y[idx].argsort(stable=True)].view(len(data.classes), per_class).T.flatten()


def sample_grid(data, per_class: int = 2, seed: int = 0, ax=None):
    """Draw `per_class` training images of each class, one class per column, named below; return the Axes."""
    n = len(data.classes)
    ax = _new_ax(ax, (1.1 * n, 1.1 * per_class + 0.6))
    return _show_tiles(ax, mosaic(data.train_x[sample_images(data, per_class, seed)], n),
                       [2 + 16 + c * TILE for c in range(n)], data.classes,
                       title=f"{n * per_class} training images ({data.source} data)")


def augmentation_draws(images: torch.Tensor, recipe: str, draws: int, seed: int = 0,
                       form: str = "batched") -> torch.Tensor:
    """Return `draws` augmented copies of each image: by `augment_batch` (batched) or per PIL image (torchvision)."""
    if form not in ("batched", "torchvision"):
        raise ValueError(f"parameter 'form' = {form!r} is invalid; valid: batched | torchvision")
    rec, reps = get_recipe(recipe), images.repeat_interleave(draws, 0)
    if form == "batched":
        return augment_batch(rec, reps, torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)  # torchvision's random transforms draw from the global generator
    tf = rec.train_transform()
    return torch.stack([tf(to_pil_image(im)) for im in reps])


def augmentation_gallery(images: torch.Tensor, recipes, draws: int = 4, seed: int = 0,
                         form: str = "batched", ax=None):
    """Draw each recipe as one row: every image `draws` times, each a fresh random draw; return the Axes."""
    recipes, n, gap = list(recipes), len(images), 8
    rows = [augmentation_draws(images, r, draws, seed + k, form) for k, r in enumerate(recipes)]
    # only for display: bring normalized values back to [0, 1]
    rows = [(b - b.amin()) / (b.amax() - b.amin()) if get_recipe(r).normalize else b for b, r in zip(rows, recipes)]
    ax = _new_ax(ax, (0.55 * n * draws + 1.5, 0.75 * len(recipes) + 0.8))
    grid = np.split(mosaic(torch.cat(rows), n * draws), [2 + i * draws * TILE for i in range(1, n)], axis=1)
    white = np.ones((grid[0].shape[0], gap, 3))  # between the images' groups of draws
    return _show_tiles(ax, np.concatenate([a for part in grid for a in (white, part)][1:], axis=1),
                       [2 + (i * draws + draws / 2) * TILE + i * gap - 1 for i in range(n)],
                       [f"image {i + 1}" for i in range(n)], recipes,
                       f"{draws} random draws of each image under each recipe ({form} form)")


def lr_drops(history: pd.DataFrame) -> list[float]:
    """Return the positions (between epochs) where the learning rate fell."""
    return [float(e) - 0.5 for e in history["epoch"][history["lr"] < history["lr"].shift() * 0.999]]


METRICS = {"loss": ("train_loss", "test_loss", "cross-entropy loss", "Loss"),
           "acc": ("train_acc", "test_acc", "accuracy (%)", "Accuracy")}


def draw_mean_band(ax, x, ys, color, label=None, alpha=0.2, **style):
    """Draw the mean of ys (seeds x points) as a line and, with two seeds or more, their min–max as a band."""
    ys = np.atleast_2d(ys)
    line, = ax.plot(x, ys.mean(0), color=color, label=label, **style)
    if len(ys) > 1:
        ax.fill_between(x, ys.min(0), ys.max(0), color=color, alpha=alpha, lw=0)
    return line


def stack_column(histories, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (epochs, values as seeds x epochs) of one column, over the epochs every history has."""
    n = min(len(h) for h in histories)
    return histories[0]["epoch"].to_numpy()[:n], np.array([h[column].to_numpy(dtype=float)[:n] for h in histories])


def _curves(ax, series, ylabel: str, title: str, logy: bool):
    """Draw each (label, histories, column, colour, style) per epoch as mean and band, LR drops marked."""
    for label, hs, column, color, style in series:
        named = label if label is None or len(hs) == 1 else f"{label} (mean of {len(hs)})"
        draw_mean_band(ax, *stack_column(hs, column), color, named, **style)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for k, x in enumerate(lr_drops(series[0][1][0]) if series else []):
        ax.axvline(x, color="grey", ls=":", lw=1.2, label=None if k else "LR drop (×0.1)")
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_metric(history, metric: str = "acc", ax=None):
    """Draw train and test "loss" or "acc" per epoch of one history or a list (one per seed); return the Axes."""
    if metric not in METRICS:
        raise ValueError(f"parameter 'metric' = {metric!r} is invalid; valid: {' | '.join(METRICS)}")
    train, test, ylabel, name = METRICS[metric]
    hs = list(history) if isinstance(history, (list, tuple)) else [history]  # one per seed
    series = [("train", hs, train, _CYCLE[0], dict(marker="o", ms=3)),
              ("test", hs, test, _CYCLE[1], dict(marker="s", ms=3))]
    title = f"{name} per epoch" + ("" if len(hs) == 1 else f" (band: min–max of {len(hs)} seeds)")
    return _curves(_new_ax(ax, (6, 4)), series, ylabel, title, logy=metric == "loss")


def plot_curves(history, axes=None, title: str | None = None):
    """Draw loss and accuracy per epoch side by side (one history or a list, one per seed); return the Figure."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained") if axes is None else (axes[0].figure, axes)
    for ax, metric in zip(axes, METRICS):
        plot_metric(history, metric, ax)
    if title:
        fig.suptitle(title)
    return fig


def plot_runs(histories: dict, metric: str = "test_acc", ax=None, train_too: bool = False, title: str | None = None):
    """Overlay a column of each label's history or histories (dashed: its train counterpart); return the Axes."""
    series = []
    for i, (label, h) in enumerate(histories.items()):
        hs, color = list(h) if isinstance(h, (list, tuple)) else [h], COLORS.get(label, _CYCLE[i % len(_CYCLE)])
        series.append((label, hs, metric, color, dict(marker=".")))
        if train_too:
            series.append((None, hs, metric.replace("test_", "train_"), color, dict(ls="--", alpha=0.1)))
    what = metric.replace("test_", "") if train_too else metric  # train_too: both train and test are drawn
    ylabel = what.replace("_", " ").replace("acc", "accuracy (%)")
    band = "\n(band: min–max over seeds)" if any(len(hs) > 1 for _, hs, *_ in series) else ""
    ax = _curves(_new_ax(ax, (7, 4.5)), series, ylabel, (title or metric.replace("_", " ") + " per epoch") + band,
                 logy="loss" in metric)
    if train_too:
        ax.plot([], [], "k-", label="test")
        ax.plot([], [], "k--", alpha=0.7, label="train")
        ax.legend(fontsize=8)
    return ax


def _bar_groups(ax, groups, series) -> list:
    """Draw a group of bars per group label, one bar per (legend text, heights, style) series; return the bars."""
    xs, width = np.arange(len(groups)), 0.8 / len(series)
    ax.set_xticks(xs, groups)
    return [ax.bar(xs + (j - (len(series) - 1) / 2) * width, heights, width, label=label, **style)
            for j, (label, heights, style) in enumerate(series)]


def plot_stage_shapes(shapes_by_stem: dict, ax=None):
    """Draw each stage's output side per stem ({stem: stage_shapes(model)}), 1x1 in red; return the Axes."""
    ax = _new_ax(ax, (9, 4))
    # avgpool is 1x1 by design and fc is flat: only the convolutional stages tell the story
    shapes = {stem: {s: shape for s, shape in stages if len(shape) == 3 and s != "avgpool"}
              for stem, stages in shapes_by_stem.items()}
    stages = list(next(iter(shapes.values())))
    series = [(f"{stem} stem", [by_stage[s][1] for s in stages], dict(color=_CYCLE[j]))
              for j, (stem, by_stage) in enumerate(shapes.items())]
    for bars, by_stage in zip(_bar_groups(ax, stages, series), shapes.values()):
        chw = [by_stage[s] for s in stages]
        texts = ax.bar_label(bars, [f"{c}×{h}×{w}" for c, h, w in chw], fontsize=7, rotation=90, padding=2)
        for bar, text, (_, h, w) in zip(bars, texts, chw):
            if h == w == 1:
                bar.set(edgecolor="red", linewidth=2)
                text.set(color="red", fontweight="bold")
    ax.set_yscale("log", base=2)
    ax.set(ylim=(0.5, 128), ylabel="output height = width (pixels, log scale)",
           title="Feature-map size after each stage, for one 32×32 input (red: 1×1)")
    ax.legend(loc="upper right")
    return ax


def plot_per_class(per_class_acc: dict, ax=None, overall: float | None = None):
    """Draw each class's test accuracy as a horizontal bar, with the overall accuracy; return the Axes."""
    ax = _new_ax(ax, (6, 4))
    ax.bar_label(ax.barh(list(per_class_acc), list(per_class_acc.values()), color="tab:blue"),
                 fmt="%.1f", fontsize=8, padding=2)
    if overall is not None:
        ax.axvline(overall, color="black", ls="--", lw=1, label=f"overall {overall:.2f}%")
        ax.legend(loc="lower right", fontsize=8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 105), xlabel="test accuracy (%)", title="Test accuracy per class")
    return ax


def plot_confusion(confusion, classes=CLASSES, ax=None):
    """Draw the confusion matrix, coloured by row share, annotated with counts; return the Axes."""
    cm = np.asarray(confusion, dtype=float)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax = _new_ax(ax, (6.5, 5.5))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(cm):
        ax.text(j, i, f"{int(count)}", ha="center", va="center", fontsize=7,
                color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted class", ylabel="true class",
           title="Confusion matrix (test set; colour: share of the true class)")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of row")
    return ax


def compare_bars(table: pd.DataFrame, label: str, columns: dict, ax=None, title: str | None = None):
    """Draw accuracy bars per row and {column: legend}: Spreads with min–max and seed dots, NaN as "n/a"."""
    ax = _new_ax(ax, (max(6, 1.6 * len(table) + 2), 4.5))
    cells = [list(table[col]) for col in columns]
    means = [np.array([v.mean if isinstance(v, Spread) else v for v in column], dtype=float) for column in cells]
    series = [(text, np.nan_to_num(m), BAR_STYLES[j % len(BAR_STYLES)])
              for j, (text, m) in enumerate(zip(columns.values(), means))]
    dotted = False
    groups = [textwrap.fill(str(v), 18) for v in table[label]]
    for bars, column_means, column in zip(_bar_groups(ax, groups, series), means, cells):
        for bar, v, cell in zip(bars, column_means, column):
            mid = bar.get_x() + bar.get_width() / 2
            if np.isnan(v):
                bar.set_visible(False)
                ax.text(mid, 1, "n/a", ha="center", va="bottom", fontsize=7)
                continue
            seeds = list(cell.values) if isinstance(cell, Spread) else []
            if len(seeds) > 1:
                ax.errorbar([mid], [v], yerr=[[v - min(seeds)], [max(seeds) - v]], fmt="none", ecolor="black",
                            elinewidth=1, capsize=3)
                ax.plot([mid] * len(seeds), seeds, "o", color="black", ms=2.5,
                        label=None if dotted else "one seed (bar: mean, line: min–max)")
                dotted = True
            ax.text(mid, max(seeds + [v]), f"{v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.tick_params(axis="x", labelsize=8)
    ax.set(ylabel="accuracy (%)", ylim=(0, 118), yticks=range(0, 101, 20), title=title or "")  # 118: legend room
    ax.legend(fontsize=8, loc="upper center", ncol=len(columns) + dotted, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_channel_stats(measured_mean, measured_std, report_mean, report_std, ax=None):
    """Draw per-channel mean and std: measured on the training images beside the report's; return the Axes."""
    ax = _new_ax(ax, (7, 4))
    series = [("measured (training images)", [*measured_mean, *measured_std], dict(color="tab:blue")),
              ("report's constants", [*report_mean, *report_std], BAR_STYLES[0])]
    for bars in _bar_groups(ax, [f"{s} {c}" for s in ("mean", "std") for c in "RGB"], series):
        ax.bar_label(bars, fmt="%.4f", fontsize=7, rotation=90, padding=2)
    ax.set(ylim=(0, 0.75), ylabel="value (pixel scale 0–1)",
           title="Per-channel statistics: measured vs the report's Normalize constants")
    ax.legend(fontsize=8)
    return ax
