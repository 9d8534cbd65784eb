"""CAM figures: overlay grids along any two axes, a gallery, and the faithfulness plot. None calls plt.show()."""
from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import pandas as pd
import torch

from ..data import CLASSES
from .wrappers import REFERENCE_METHODS, as_checkpoint, compute_cams, overlay, to_rgb01


def panel_title(classes, true, probs, explained, with_true: bool = True) -> str:
    """Return a panel title: true class, predicted class with its confidence, and the explained class."""
    pred = int(probs.argmax())
    text = (f"true {classes[true]}\n" if with_true else "") + f"pred {classes[pred]} {100 * probs[pred]:.0f}%"
    if explained != pred:
        text += f"\nCAM for {classes[explained]} {100 * probs[explained]:.0f}%"
    return text


def draw_panel(ax, image01, cam=None, title="", blank=False):
    """Draw one panel: the image, or its CAM overlay, titled, marked when the CAM is blank or all zero."""
    ax.imshow(image01 if cam is None else overlay(image01, cam), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)
    if blank:
        ax.text(16, 16, "1×1 map:\nblank CAM", ha="center", va="center", fontsize=7, color="w",
                bbox=dict(facecolor="k", alpha=0.6, lw=0))
    elif cam is not None and not cam.any():  # a spatial map whose weighted sum is <= 0 everywhere after ReLU
        ax.text(16, 16, "all zero:\nno positive\nevidence", ha="center", va="center", fontsize=6, color="w",
                bbox=dict(facecolor="k", alpha=0.6, lw=0))


AXES = ("image", "layer", "method", "checkpoint", "target")


def cam_grid(checkpoints, images: torch.Tensor, labels, *, rows: str = "image", cols: str = "layer",
             layers=("layer2",), methods=("GradCAM",), targets=("predicted",), show_image: bool = True,
             classes=CLASSES, panel: float = 1.45, title: str | None = None):
    """Return a figure of CAM overlays: one of image/layer/method/checkpoint/target along the rows, another
    along the columns, every other choice fixed to a single value. A first column shows the plain image.

    `targets`: classes to explain ("predicted", a class name or index), each for every image.
    """
    for name, value in (("rows", rows), ("cols", cols)):
        if value not in AXES:
            raise ValueError(f"parameter {name!r} = {value!r} is invalid; valid: {' | '.join(AXES)}")
    if rows == cols:
        raise ValueError(f"parameters 'rows' and 'cols' are both {rows!r}; valid: two different axes")
    if not isinstance(checkpoints, dict):
        checkpoints = {as_checkpoint(checkpoints).label: as_checkpoint(checkpoints)}
    choices = {"image": list(range(len(images))), "layer": list(layers), "method": list(methods),
               "checkpoint": list(checkpoints), "target": list(targets)}
    for axis in AXES:
        if axis not in (rows, cols) and len(choices[axis]) != 1:
            raise ValueError(f"{axis} is neither rows nor cols, so give exactly one; got {len(choices[axis])}")
    labels = [int(v) for v in torch.as_tensor(labels).reshape(-1)]
    rgb = to_rgb01(images)
    results = {}  # one batched call per (checkpoint, layer, method, target) over all images
    for ck_name in choices["checkpoint"]:
        ck = as_checkpoint(checkpoints[ck_name], ck_name)
        for layer in choices["layer"]:
            for method in choices["method"]:
                for target in choices["target"]:
                    results[ck_name, layer, method, target] = compute_cams(ck.model, images, layer, method,
                                                                           target, ck.recipe, classes=classes)
    nr, nc = len(choices[rows]), len(choices[cols]) + (1 if show_image and cols != "image" else 0)
    fig, axes = plt.subplots(nr, nc, figsize=(panel * nc, (panel + 0.35) * nr), squeeze=False,
                             layout="constrained")
    offset = nc - len(choices[cols])
    sizes_vary = any(len({r.map_size for k, r in results.items() if k[1] == layer}) > 1 for layer in choices["layer"])
    for r, rv in enumerate(choices[rows]):
        for c in range(nc):
            pick = {axis: choices[axis][0] for axis in AXES}
            pick[rows] = rv
            if c >= offset:
                pick[cols] = choices[cols][c - offset]
            i = pick["image"]
            res = results[pick["checkpoint"], pick["layer"], pick["method"], pick["target"]]
            ax = axes[r, c]
            if c < offset:
                draw_panel(ax, rgb[i], None, f"true {classes[labels[i]]}")
            else:
                text = panel_title(classes, labels[i], res.probs[i], int(res.targets[i]), with_true=offset == 0)
                if sizes_vary:  # the header cannot give one size for the whole column
                    text = f"{res.map_size[0]}×{res.map_size[1]} map\n{text}"
                draw_panel(ax, rgb[i], res.cams[i], text, res.blank)
            if c == 0:
                ax.set_ylabel(textwrap.fill(_axis_label(rows, rv, results, pick), 22), fontsize=7)
            if r == 0 and c >= offset:
                header = textwrap.fill(_axis_label(cols, pick[cols], results, pick), int(panel * 14))
                ax.set_title(f"{header}\n{ax.get_title()}", fontsize=7)
    fixed = [_axis_label(axis, choices[axis][0], results, {a: choices[a][0] for a in AXES})
             for axis in AXES if axis not in (rows, cols) and axis != "image"]
    fig.suptitle(title or " · ".join(fixed), fontsize=9)
    return fig


def _axis_label(axis, value, results, pick) -> str:
    if axis == "layer":
        sizes = {r.map_size for k, r in results.items() if k[1] == value}
        if len(sizes) > 1:  # checkpoints with different stems: each panel gives its own size
            return value
        size = sizes.pop()
        return f"{value} ({size[0]}×{size[1]})"
    if axis == "image":
        return f"image {value}"
    if axis == "target":
        return "target: predicted" if value in (None, "predicted") else f"target: {value}"
    return str(value)


def cam_gallery(checkpoint, images: torch.Tensor, labels, layer: str = "layer2", method: str = "GradCAM",
                target=None, ncols: int = 10, classes=CLASSES, panel: float = 1.3, title: str | None = None):
    """Return a figure of CAM overlays for many images in rows of `ncols`, titled true/predicted/confidence."""
    ck = as_checkpoint(checkpoint)
    res = compute_cams(ck.model, images, layer, method, target, ck.recipe, classes=classes)
    rgb, labels = to_rgb01(images), [int(v) for v in torch.as_tensor(labels).reshape(-1)]
    nrows = math.ceil(len(images) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel * ncols, (panel + 0.3) * nrows), squeeze=False,
                             layout="constrained")
    for k, ax in enumerate(axes.flat):
        if k >= len(images):
            ax.axis("off")
            continue
        text = panel_title(classes, labels[k], res.probs[k], int(res.targets[k]))
        draw_panel(ax, rgb[k], res.cams[k], text, res.blank)
    fig.suptitle(title or f"{method} on {layer} ({res.map_size[0]}×{res.map_size[1]} map) · {ck.label}", fontsize=10)
    return fig


def pick_per_class(labels, per_class: int = 2, classes=CLASSES) -> list:
    """Return the indices of the first `per_class` images of every class, class by class."""
    labels = torch.as_tensor(labels)
    return [int(i) for k in range(len(classes)) for i in torch.nonzero(labels == k).flatten()[:per_class]]


def plot_faithfulness(table: pd.DataFrame, axes=None):
    """Plot mean ROAD (± standard error) per layer, one line per method, one panel per model; return the figure."""
    models = list(dict.fromkeys(table["model"]))
    if axes is None:
        _, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), sharey=True,
                               layout="constrained", squeeze=False)
        axes = axes[0]
    for ax, name in zip(axes, models):
        sub = table[table["model"] == name]
        layers = list(dict.fromkeys(sub["layer"]))
        for method in dict.fromkeys(sub["method"]):
            m = sub[sub["method"] == method].set_index("layer").reindex(layers)
            style = dict(color="0.5", ls="--") if method in REFERENCE_METHODS else {}
            ax.errorbar(range(len(layers)), m["road"], yerr=m["sem"].fillna(0), marker="o", ms=4,
                        capsize=2, label=method, **style)
        maps = sub.drop_duplicates("layer").set_index("layer")["map"].reindex(layers)
        ax.set_xticks(range(len(layers)), [f"{l}\n{mp}" for l, mp in zip(layers, maps)])
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ROAD (LeRF − MoRF)/2, higher = more faithful")
    axes[-1].legend(fontsize=7, loc="best")
    return axes[0].figure
