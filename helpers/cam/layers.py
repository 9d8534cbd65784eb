"""What each layer's map can show: map sizes per model, the share of CAMs that come out blank, and notes on both."""
from __future__ import annotations

import warnings

import pandas as pd
import torch

from ..models import stage_shapes
from .wrappers import CAM_LAYERS, BlankCamWarning, CamResult, as_checkpoint, compute_cams, layer_map_sizes

# What a measured CAM batch says, by its state: (after the measured range, what the maps could show).
_BLANK_WORDS = {
    "zero": ("all zeros, as a 1×1 map predicts",
             "they could show the photograph under one uniform colour, never where the model looks"),
    "odd": ("**not** all zeros, against what a 1×1 map predicts", "nothing is concluded from them"),
    "spatial": ("a spatial map, not blank by construction",
                "they can point somewhere; the ROAD verdicts say whether they do"),
}


def cam_layer_table(models: dict) -> pd.DataFrame:
    """Return one row per CAM layer: each model's feature map (C×H×W) and how many positions a CAM has there."""
    rows = {layer: {"layer": layer} for layer in CAM_LAYERS}
    for name, model in models.items():
        shapes = dict(stage_shapes(as_checkpoint(model).model))
        for layer in CAM_LAYERS:
            c, hh, ww = shapes[layer]
            rows[layer][f"{name}: map"] = f"{c}×{hh}×{ww}"
            rows[layer][f"{name}: CAM"] = "1 value: blank" if hh * ww == 1 else f"{hh}×{ww} = {hh * ww} positions"
    return pd.DataFrame(rows.values())


def blank_table(checkpoints: dict, images: torch.Tensor, layers=CAM_LAYERS, method: str = "GradCAM",
                target=None) -> pd.DataFrame:
    """Return, per model and layer, the share of images whose CAM is all zeros (1x1 map, or no positive evidence)."""
    rows = []
    for name, ck in checkpoints.items():
        ck, row = as_checkpoint(ck, name), {"model": name}
        for layer in layers:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BlankCamWarning)  # 1x1 layers are what this table counts
                res = compute_cams(ck.model, images, layer, method, target, ck.recipe)
            row[f"{layer} ({res.size_text})"] = f"{100 * (res.cams.reshape(len(res.cams), -1).max(1) == 0).mean():.0f}%"
        rows.append(row)
    return pd.DataFrame(rows)


def _state(res: CamResult) -> str:
    """Return 'zero' (1x1 and all zeros), 'odd' (1x1 yet not all zeros) or 'spatial'."""
    return ("zero" if res.cams.max() == 0 else "odd") if res.blank else "spatial"


def blank_note(res: CamResult, label: str) -> str:
    """Return one sentence: the measured range of a CAM batch, and whether it is blank as its map size predicts."""
    n = res.cams.shape[0]
    return (f"Measured: the {res.method} maps of {label} on {res.layer} ({res.size_text}) span "
            f"[{res.cams.min():.3f}, {res.cams.max():.3f}] over {n} test image{'s' * (n != 1)}: "
            f"{_BLANK_WORDS[_state(res)][0]}.")


def cam_summary(models: dict, blank: CamResult, report: str) -> str:
    """Return the summary: what the measured batch `blank` of the model `report` shows, and the spatial layers."""
    spatial = "; ".join(f"{name}: " + (", ".join(f"`{layer}` {hh}×{ww}" for layer, (hh, ww) in
                                                 layer_map_sizes(as_checkpoint(m).model).items() if hh * ww > 1)
                                       or "no layer") for name, m in models.items())
    return (f"- **The report's `{blank.layer}` maps**: {blank_note(blank, report)} So "
            f"{_BLANK_WORDS[_state(blank)][1]}.\n"
            f"- **Measured instead**, on the layers with a spatial map ({spatial}): the ROAD scores and verdicts "
            "above; no verdict rests on how a map looks. `helpers` warns (`BlankCamWarning`) whenever a CAM of a "
            "1×1 layer is asked for.")
