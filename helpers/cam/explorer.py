"""The CAM explorer: ipywidgets controls in a live notebook, a static grid in its place everywhere else."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..data import CLASSES
from .figures import cam_grid, draw_panel, panel_title
from .wrappers import CAM_LAYERS, METHODS, as_checkpoint, compute_cams, to_rgb01


def explorer_figure(checkpoints: dict, images: torch.Tensor, labels, index: int = 0, target="predicted",
                    layer: str = "layer4", method: str = "GradCAM", checkpoint: str | None = None,
                    classes=CLASSES):
    """Return the explorer's figure for one choice of every control: the image, the CAM alone, the overlay."""
    if not 0 <= index < len(images):
        raise ValueError(f"parameter 'index' = {index!r} is invalid; valid: 0..{len(images) - 1}")
    name = checkpoint if checkpoint is not None else next(iter(checkpoints))
    if name not in checkpoints:
        raise ValueError(f"parameter 'checkpoint' = {name!r} is invalid; valid: {' | '.join(checkpoints)}")
    ck = as_checkpoint(checkpoints[name], name)
    res = compute_cams(ck.model, images[index:index + 1], layer, method, target, ck.recipe, classes=classes)
    label = int(torch.as_tensor(labels)[index])
    rgb = to_rgb01(images[index:index + 1])[0]
    fig, axes = plt.subplots(1, 3, figsize=(6.6, 2.8), layout="constrained")
    draw_panel(axes[0], rgb, None, f"image {index}\ntrue {classes[label]}")
    axes[1].imshow(res.cams[0], cmap="jet", vmin=0, vmax=1, interpolation="nearest")
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    h_, w_ = res.map_size
    axes[1].set_title(f"{method} · {layer} ({h_}×{w_} map)\nmin {res.cams[0].min():.2f} max {res.cams[0].max():.2f}",
                      fontsize=7)
    draw_panel(axes[2], rgb, res.cams[0], panel_title(classes, label, res.probs[0], int(res.targets[0])), res.blank)
    note = " — 1×1 map: this CAM is blank by construction" if res.blank else ""
    fig.suptitle(f"{name}{note}", fontsize=8)
    return fig


class CamExplorer:
    """ipywidgets controls (image, target class, layer, method, checkpoint) redrawing the explorer figure."""

    def __init__(self, checkpoints: dict, images: torch.Tensor, labels, classes=CLASSES, index: int = 0,
                 layer: str = "layer2", method: str = "GradCAM"):
        import ipywidgets as w
        self.checkpoints, self.images, self.labels, self.classes = checkpoints, images, labels, classes
        style = dict(description_width="initial")
        self.controls = {
            "index": w.IntSlider(value=index, min=0, max=len(images) - 1, description="image", style=style,
                                 continuous_update=False),
            "target": w.Dropdown(options=["predicted", *classes], value="predicted", description="target",
                                 style=style),
            "layer": w.Dropdown(options=list(CAM_LAYERS), value=layer, description="layer", style=style),
            "method": w.Dropdown(options=list(METHODS), value=method, description="method", style=style),
            "checkpoint": w.Dropdown(options=list(checkpoints), description="checkpoint", style=style,
                                     layout=w.Layout(width="420px")),
        }
        self.output = w.Output()
        self.renders = 0
        for control in self.controls.values():
            control.observe(self.redraw, names="value")
        self.widget = w.VBox([w.HBox(list(self.controls.values())[:3]), w.HBox(list(self.controls.values())[3:]),
                              self.output])
        self.redraw()

    def values(self) -> dict:
        """Return the current value of every control."""
        return {k: c.value for k, c in self.controls.items()}

    def figure(self):
        """Return the figure for the current controls (the callback's work, without display)."""
        return explorer_figure(self.checkpoints, self.images, self.labels, classes=self.classes, **self.values())

    def redraw(self, change=None):
        """Redraw the figure into the output area (called on every control change)."""
        from IPython.display import display
        with self.output:
            self.output.clear_output(wait=True)
            fig = self.figure()
            display(fig)
            plt.close(fig)
        self.renders += 1


def frontend_is_live() -> bool:
    """Return True only in a kernel whose frontend can answer input() — JupyterLab, Notebook, VS Code.

    Executors (papermill, nbconvert/nbclient, nbval) send every cell with allow_stdin=False and no
    one is there to move a slider; plain Python has no kernel at all. Both return False.
    """
    try:
        from IPython import get_ipython
        kernel = getattr(get_ipython(), "kernel", None)
        return bool(kernel is not None and kernel.get_parent("shell")["content"].get("allow_stdin", False))
    except Exception:
        return False


def show_explorer(checkpoints: dict, images: torch.Tensor, labels, index: int = 0, layers=CAM_LAYERS,
                  method: str = "GradCAM", interactive: bool | None = None, classes=CLASSES):
    """Display the widget explorer where a live frontend can run it, and always a static grid in its place.

    `interactive` None detects the frontend (see `frontend_is_live`). Returns the CamExplorer or None.
    """
    from IPython.display import Markdown, display
    interactive = frontend_is_live() if interactive is None else interactive
    explorer = None
    if interactive:
        explorer = CamExplorer(checkpoints, images, labels, classes, index=index, method=method)
        display(explorer.widget)
    else:
        display(Markdown("*The interactive explorer runs only in a live notebook (JupyterLab); "
                         "here a static grid stands in: every checkpoint × every layer, one image.*"))
    fig = cam_grid(checkpoints, images[index:index + 1], torch.as_tensor(labels)[index:index + 1],
                   rows="checkpoint", cols="layer", layers=layers, methods=(method,), classes=classes,
                   title=f"{method}, image {index}, predicted class")
    display(fig)
    plt.close(fig)
    return explorer
