"""What each layer's map can show: map sizes per model, and the share of CAMs that come out blank."""
from __future__ import annotations

import warnings

import pandas as pd
import torch

from ..models import stage_shapes
from .wrappers import CAM_LAYERS, BlankCamWarning, CamResult, as_checkpoint, compute_cams, layer_map_sizes


def cam_layer_table(models: dict) -> pd.DataFrame:
    """Return one row per CAM layer: each model's feature map (C×H×W) and how many positions a CAM has there."""
    rows = {layer: {"layer": layer} for layer in CAM_LAYERS}
    for name, model in models.items():
        shapes = dict(stage_shapes(as_checkpoint(model).model))
        for layer in CAM_LAYERS:
            c, hh, ww = shapes[layer]
            rows[layer][f"{name}: map"] = f"{c}×{hh}×{ww}"
            rows[layer][f"{name}: CAM"] = ("1 value: blank" if hh * ww == 1 else f"{hh}×{ww} = {hh * ww} positions")
    return pd.DataFrame(rows.values())


def cam_layer_note(models: dict) -> str:
    """Return Markdown saying, per model, which CAM layers have a spatial map and which are 1x1 (blank)."""
    lines = []
    for name, model in models.items():
        sizes = layer_map_sizes(as_checkpoint(model).model)
        spatial = [f"{l} {hh}×{ww}" for l, (hh, ww) in sizes.items() if hh * ww > 1]
        blank = [l for l, (hh, ww) in sizes.items() if hh * ww == 1]
        text = f"- **{name}**: spatial maps at {', '.join(spatial) or 'no layer'}"
        text += (f"; **{', '.join(blank)}: 1×1** — one value per channel, so any CAM there is blank."
                 if blank else "; no layer is 1×1, so every layer's CAM can point somewhere.")
        lines.append(text)
    return "\n".join(lines)


def blank_note(res: CamResult, label: str) -> str:
    """Return Markdown reporting the measured range of a CAM batch, and whether it is blank as predicted."""
    lo, hi = float(res.cams.min()), float(res.cams.max())
    size = f"{res.map_size[0]}×{res.map_size[1]}"
    if res.blank and hi == 0:
        return (f"Measured: the {res.method} map of {label} on {res.layer} ({size}) spans [{lo:.3f}, {hi:.3f}] over "
                f"all {res.cams.shape[0]} image(s) × 32×32 pixels — **all zeros**, as predicted. Its overlay is the "
                "same colour everywhere; differences between such overlays are differences in the photograph only.")
    if res.blank:
        return (f"Measured: the {res.method} map of {label} on {res.layer} ({size}) spans [{lo:.3f}, {hi:.3f}]. "
                "**This contradicts the expectation** that a 1×1 map scales to all zeros.")
    return f"Measured: the {res.method} map of {label} on {res.layer} ({size}) spans [{lo:.3f}, {hi:.3f}]."


def blank_table(checkpoints: dict, images: torch.Tensor, layers=CAM_LAYERS, method: str = "GradCAM",
                target=None) -> pd.DataFrame:
    """Return, per model and layer, the share of images whose CAM is all zeros (1x1 map, or no positive evidence)."""
    rows = []
    for name, ck in checkpoints.items():
        ck = as_checkpoint(ck, name)
        row = {"model": name}
        for layer in layers:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BlankCamWarning)  # 1x1 layers are what this table counts
                res = compute_cams(ck.model, images, layer, method, target, ck.recipe)
            zero = float((res.cams.reshape(len(res.cams), -1).max(1) == 0).mean())
            row[f"{layer} ({res.map_size[0]}×{res.map_size[1]})"] = f"{100 * zero:.0f}%"
        rows.append(row)
    return pd.DataFrame(rows)


def cam_summary(models: dict, blank: CamResult, report: str) -> str:
    """Return notebook 04's summary: what the report's layer4 maps could and could not show, from measured sizes.

    `models` maps a label to each model shown; `report` is the label of the report's model; `blank` is the CAM batch
    measured on the report's layer (its size and range decide the wording, so the summary claims only what was seen).
    """
    from ..config import PROFILE_DEFAULTS
    *first, last = PROFILE_DEFAULTS["full"]["snapshot_epochs"]  # the report's CAM epochs
    epochs = ", ".join(map(str, first)) + f" or {last}"
    sizes = {name: layer_map_sizes(as_checkpoint(m).model) for name, m in models.items()}
    hh, ww = blank.map_size
    lo, hi = float(blank.cams.min()), float(blank.cams.max())
    n = blank.cams.shape[0]
    measured = f"its {blank.method} maps measured [{lo:.3f}, {hi:.3f}] over {n} test image{'s' if n != 1 else ''}"
    if blank.blank and hi == 0:
        lines = [f"- **What the report's `{blank.layer}` maps could show**: the photograph under one uniform colour. "
                 f"For {report}, a 32×32 image leaves a {hh}×{ww} map at `{blank.layer}` (measured above), a CAM "
                 f"there is one number per image, and the library's min-max scaling turns it into zeros ({measured}).",
                 "- **What they could not show**: where the model looks, on the object or on the background; nor any "
                 f"difference between models ({epochs} epochs; the baseline or the crop model) other than the "
                 "photograph under the colour. This holds for a 32×32 input, the size of a CIFAR-10 test image; a "
                 "resized input would give larger maps, and the report shows no resizing."]
    elif blank.blank:
        lines = [f"- **The report's `{blank.layer}` maps**: the map is {hh}×{ww}, yet {measured}; this **contradicts** "
                 "the expectation that a 1×1 map scales to all zeros, so nothing is concluded about what they showed."]
    else:
        lines = [f"- **The report's `{blank.layer}` maps**: at this input size the map is {hh}×{ww} ({measured}), "
                 "so a CAM there can point somewhere; the faithfulness scores above say whether it does."]
    spatial = "; ".join(f"{name}: " + (", ".join(f"`{l}` {h_}×{w_}" for l, (h_, w_) in s.items() if h_ * w_ > 1)
                                       or "no layer") for name, s in sizes.items())
    lines += [f"- **Measured instead**, on the layers whose map is larger than 1×1 ({spatial}): whether more epochs "
              "or random crops make the maps more faithful is answered by the ROAD scores above, with their standard "
              "errors and verdicts, from the models of this run; no verdict rests on how a map looks.",
              f"- `helpers` warns (`BlankCamWarning`) whenever a CAM of a 1×1 layer is asked for, as for {report}."]
    return "\n".join(lines)
