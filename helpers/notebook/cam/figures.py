"""CAM figures: overlay grids along any two axes, a gallery, the faithfulness plot, and the widget explorer."""

import itertools
import math
import textwrap

import IPython.display
import matplotlib.pyplot as plt
import pandas as pd
import torch
from pytorch_grad_cam.utils.image import show_cam_on_image

from helpers.core.data import CLASSES
from .wrappers import CAM_LAYERS, METHODS, REFERENCE_METHODS, as_checkpoint, require, compute_cams, to_rgb01

AXES = ("image", "layer", "method", "checkpoint", "target")


def panel_title(true, probs, explained, with_true: bool = True) -> str:
    """Return a panel title: true class, predicted class with its confidence, and the explained class."""
    pred = int(probs.argmax())
    text = (f"true {CLASSES[true]}\n" if with_true else "") + f"pred {CLASSES[pred]} {100 * probs[pred]:.0f}%"
    return text + (f"\nCAM for {CLASSES[explained]} {100 * probs[explained]:.0f}%" if explained != pred else "")


def draw_panel(ax, image01, cam=None, title="", blank=False):
    """Draw one panel: the image, or its CAM overlay, titled, marked when the CAM is blank or all zero."""
    ax.imshow(image01 if cam is None else show_cam_on_image(image01, cam, use_rgb=True), interpolation="nearest")
    ax.set(xticks=[], yticks=[])
    ax.set_title(title, fontsize=7)
    if blank or (cam is not None and not cam.any()):  # all zero: the library's ReLU left no positive evidence
        ax.text(16, 16, "1×1 map:\nblank CAM" if blank else "all zero:\nno positive\nevidence", ha="center",
                va="center", fontsize=6, color="w", bbox=dict(facecolor="k", alpha=0.6, lw=0))


def cam_grid(checkpoints, images: torch.Tensor, labels, *, rows: str = "image", cols: str = "layer",
             layers=("layer2",), methods=("GradCAM",), targets=("predicted",), panel: float = 1.45,
             title: str | None = None):
    """Return CAM overlays, one of AXES along rows, another along columns, the rest fixed; column 0: the image."""
    for name, value in (("rows", rows), ("cols", cols)):
        require(name, value, value in AXES and rows != cols, f"two different of {' | '.join(AXES)}")
    if not isinstance(checkpoints, dict):
        checkpoints = {as_checkpoint(checkpoints).label: checkpoints}
    cks = {name: as_checkpoint(ck, name) for name, ck in checkpoints.items()}
    choices = {"image": list(range(len(images))), "layer": list(layers), "method": list(methods),
               "checkpoint": list(cks), "target": list(targets)}
    for axis in AXES:  # the parameter of each axis is its plural: images, layers, ...
        require(f"{axis}s", choices[axis], axis in (rows, cols) or len(choices[axis]) == 1,
                "exactly one, unless it is rows or cols")
    key = ("checkpoint", "layer", "method", "target")  # one batched call per key over all images
    results = {(name, *rest): compute_cams(cks[name].model, images, *rest, cks[name].recipe)
               for name, *rest in itertools.product(*(choices[a] for a in key))}
    sizes = {layer: {r.size_text for k, r in results.items() if k[1] == layer} for layer in choices["layer"]}
    vary = any(len(s) > 1 for s in sizes.values())  # stems differ: each panel gives its own size

    def label(axis, value) -> str:
        """Return the row, column or title label of one choice."""
        if axis == "layer" and len(sizes[value]) == 1:
            return f"{value} ({next(iter(sizes[value]))})"
        names = {"image": f"image {value}", "target": f"target: {'predicted' if value is None else value}"}
        return names.get(axis, str(value))

    labels, rgb = [int(v) for v in torch.as_tensor(labels).reshape(-1)], to_rgb01(images)
    first = int(cols != "image")  # a first column with the plain image
    nr, nc = len(choices[rows]), len(choices[cols]) + first
    fig, axes = plt.subplots(nr, nc, figsize=(panel * nc, (panel + 0.35) * nr), squeeze=False, layout="constrained")
    for (r, rv), c in itertools.product(enumerate(choices[rows]), range(nc)):
        pick = {axis: choices[axis][0] for axis in AXES} | {rows: rv}
        if c >= first:
            pick[cols] = choices[cols][c - first]
        i, ax, res = pick["image"], axes[r, c], results[tuple(pick[a] for a in key)]
        if c < first:
            draw_panel(ax, rgb[i], None, f"true {CLASSES[labels[i]]}")
        else:
            text = panel_title(labels[i], res.probs[i], int(res.targets[i]), with_true=not first)
            draw_panel(ax, rgb[i], res.cams[i], f"{res.size_text} map\n{text}" if vary else text, res.blank)
        if c == 0:
            ax.set_ylabel(textwrap.fill(label(rows, rv), 22), fontsize=7)
        if r == 0 and c >= first:
            ax.set_title(f"{textwrap.fill(label(cols, pick[cols]), int(panel * 14))}\n{ax.get_title()}", fontsize=7)
    fixed = [label(axis, choices[axis][0]) for axis in AXES if axis not in (rows, cols, "image")]
    fig.suptitle(title or " · ".join(fixed), fontsize=9)
    return fig


def cam_gallery(checkpoint, images: torch.Tensor, labels, layer: str = "layer2", method: str = "GradCAM",
                target=None, ncols: int = 10):
    """Return a figure of CAM overlays for many images in rows of `ncols`, titled true/predicted/confidence."""
    ck = as_checkpoint(checkpoint)
    res = compute_cams(ck.model, images, layer, method, target, ck.recipe)
    rgb, labels = to_rgb01(images), [int(v) for v in torch.as_tensor(labels).reshape(-1)]
    nrows = math.ceil(len(images) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.6 * nrows), squeeze=False, layout="constrained")
    for k, ax in enumerate(axes.flat):
        if k < len(images):
            draw_panel(ax, rgb[k], res.cams[k], panel_title(labels[k], res.probs[k], int(res.targets[k])), res.blank)
        else:
            ax.axis("off")
    fig.suptitle(f"{method} on {layer} ({res.size_text} map) · {ck.label}", fontsize=10)
    return fig


def pick_per_class(labels, per_class: int = 2) -> list:
    """Return the indices of the first `per_class` images of every class, class by class."""
    labels = torch.as_tensor(labels)
    return [int(i) for k in range(len(CLASSES)) for i in (labels == k).nonzero().flatten()[:per_class]]


def plot_faithfulness(table: pd.DataFrame, axes=None):
    """Plot mean ROAD (± standard error) per layer, one line per method, one panel per model; return the figure."""
    models = list(dict.fromkeys(table["model"]))
    axes = axes if axes is not None else plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), sharey=True,
                                                      layout="constrained", squeeze=False)[1][0]
    for ax, (name, sub) in zip(axes, table.groupby("model", sort=False)):
        maps = sub.drop_duplicates("layer").set_index("layer")["map"]
        for method, m in sub.groupby("method", sort=False):
            m = m.set_index("layer").reindex(maps.index)
            style = dict(color="0.5", ls="--") if method in REFERENCE_METHODS else {}
            ax.errorbar(range(len(maps)), m["road"], yerr=m["sem"].fillna(0), marker="o", ms=4, capsize=2,
                        label=method, **style)
        ax.set_xticks(range(len(maps)), [f"{layer}\n{mp}" for layer, mp in maps.items()])
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ROAD (LeRF − MoRF)/2, higher = more faithful")
    axes[-1].legend(fontsize=7, loc="best")
    return axes[0].figure


def explorer_figure(checkpoints: dict, images: torch.Tensor, labels, index: int = 0, target="predicted",
                    layer: str = "layer4", method: str = "GradCAM", checkpoint: str | None = None):
    """Return the explorer's figure for one choice of every control: the image, the CAM alone, the overlay."""
    require("index", index, 0 <= index < len(images), f"0..{len(images) - 1}")
    name = next(iter(checkpoints)) if checkpoint is None else checkpoint
    require("checkpoint", name, name in checkpoints, " | ".join(checkpoints))
    ck = as_checkpoint(checkpoints[name], name)
    res = compute_cams(ck.model, images[index:index + 1], layer, method, target, ck.recipe)
    label, rgb, cam = int(torch.as_tensor(labels)[index]), to_rgb01(images[index:index + 1])[0], res.cams[0]
    fig, axes = plt.subplots(1, 3, figsize=(6.6, 2.8), layout="constrained")
    draw_panel(axes[0], rgb, None, f"image {index}\ntrue {CLASSES[label]}")
    draw_panel(axes[1], cam, None, f"{method} · {layer} ({res.size_text} map)\n"
                                   f"min {cam.min():.2f} max {cam.max():.2f}")
    axes[1].images[0].set(cmap="jet", clim=(0, 1))  # the CAM alone, on a fixed 0-1 scale
    draw_panel(axes[2], rgb, cam, panel_title(label, res.probs[0], int(res.targets[0])), res.blank)
    fig.suptitle(name + (" — 1×1 map: this CAM is blank by construction" if res.blank else ""), fontsize=8)
    return fig


class CamExplorer:
    """ipywidgets controls (image, target class, layer, method, checkpoint) redrawing the explorer figure."""

    def __init__(self, checkpoints: dict, images: torch.Tensor, labels, index: int = 0, method: str = "GradCAM"):
        import ipywidgets as w
        self.renders, style = 0, dict(description_width="initial")
        self.controls = {"index": w.IntSlider(value=index, min=0, max=len(images) - 1, description="image",
                                              style=style, continuous_update=False)}
        for name, options, value in (("target", ["predicted", *CLASSES], "predicted"), ("layer", CAM_LAYERS, "layer2"),
                                     ("method", list(METHODS), method), ("checkpoint", list(checkpoints), None)):
            self.controls[name] = w.Dropdown(options=options, value=value or options[0], description=name, style=style)
        self.controls["checkpoint"].layout.width = "420px"

        def draw(**values):
            """Display the figure for the controls' values (ipywidgets calls this on every change)."""
            fig = explorer_figure(checkpoints, images, labels, **values)
            IPython.display.display(fig)
            plt.close(fig)
            self.renders += 1

        controls = list(self.controls.values())
        self.widget = w.VBox([w.HBox(controls[:3]), w.HBox(controls[3:]), w.interactive_output(draw, self.controls)])


def frontend_is_live() -> bool:
    """Return whether the cell's request allows stdin (JupyterLab, VS Code); not under papermill, nbval, no kernel."""
    kernel = getattr(IPython.get_ipython(), "kernel", None)
    return bool(kernel is not None and kernel.get_parent("shell").get("content", {}).get("allow_stdin"))


def show_explorer(checkpoints: dict, images: torch.Tensor, labels, index: int = 0, method: str = "GradCAM",
                  interactive: bool | None = None):
    """Display the explorer where a live frontend can run it (None: detect), always a static grid; return it or None."""
    explorer = None
    if frontend_is_live() if interactive is None else interactive:
        explorer = CamExplorer(checkpoints, images, labels, index=index, method=method)
        IPython.display.display(explorer.widget)
    fig = cam_grid(checkpoints, images[index:index + 1], torch.as_tensor(labels)[index:index + 1],
                   rows="checkpoint", cols="layer", layers=CAM_LAYERS, methods=(method,),
                   title=f"{method}, image {index}, predicted class")
    IPython.display.display(fig)
    plt.close(fig)
    return explorer
