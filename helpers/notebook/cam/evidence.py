"""What the maps show, measured: map sizes, blank maps, ROAD faithfulness scores (the library's ROADCombined:
(LeRF − MoRF) / 2 of the explained class's probability, averaged over removal percentiles), and verdicts on them."""

import contextlib
import itertools
import math
import time

import numpy as np
import pandas as pd
import torch
from torch import nn
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

from helpers.core.models import stage_shapes
from helpers.core.stats import Verdict, compare
from .wrappers import (CAM_LAYERS, METHODS, REFERENCE_METHODS, ROAD_PERCENTILES, CamResult, as_checkpoint,
                       compute_cams, layer_map_sizes, model_input)


def cam_layer_table(models: dict) -> pd.DataFrame:
    """Return one row per CAM layer: each model's feature map (C×H×W) and how many positions a CAM has there."""
    table = pd.DataFrame({"layer": CAM_LAYERS})
    for name, model in models.items():
        shapes = [*map(dict(stage_shapes(as_checkpoint(model).model)).get, CAM_LAYERS)]
        table[f"{name}: map"] = [f"{c}×{hh}×{ww}" for c, hh, ww in shapes]
        table[f"{name}: CAM"] = ["1 value: blank" if hh * ww == 1 else f"{hh}×{ww} = {hh * ww} positions"
                                 for _, hh, ww in shapes]
    return table


def blank_table(checkpoints: dict, images: torch.Tensor, layers=CAM_LAYERS, method: str = "GradCAM",
                target=None) -> pd.DataFrame:
    """Return, per model and layer, the share of images whose CAM is all zeros (1x1 map, or no positive evidence)."""
    rows = []
    for name, ck in checkpoints.items():
        ck, row = as_checkpoint(ck, name), {"model": name}
        for layer in layers:  # 1x1 layers are what this table counts: no warning
            res = compute_cams(ck.model, images, layer, method, target, ck.recipe, warn=False)
            row[f"{layer} ({res.size_text})"] = f"{100 * (res.cams.max(axis=(1, 2)) == 0).mean():.0f}%"
        rows.append(row)
    return pd.DataFrame(rows)


def _blank_words(res: CamResult) -> tuple:
    """Return what a measured CAM batch says: (after its measured range, what such maps could show)."""
    if not res.blank:
        return "a spatial map, not blank by construction", "they can point somewhere; the ROAD verdicts say if they do"
    if res.cams.max() == 0:
        return ("all zeros, as a 1×1 map predicts",
                "they could show the photograph under one uniform colour, never where the model looks")
    return "**not** all zeros, against what a 1×1 map predicts", "nothing is concluded from them"


def blank_note(res: CamResult, label: str) -> str:
    """Return one sentence: the measured range of a CAM batch, and whether it is blank as its map size predicts."""
    n = len(res.cams)
    return (f"Measured: the {res.method} maps of {label} on {res.layer} ({res.size_text}) span [{res.cams.min():.3f}, "
            f"{res.cams.max():.3f}] over {n} test image{'s' * (n != 1)}: {_blank_words(res)[0]}.")


def cam_summary(models: dict, blank: CamResult, report: str) -> str:
    """Return the summary: what the measured batch `blank` of the model `report` shows, and the spatial layers."""
    spatial = "; ".join(f"{name}: " + (", ".join(f"`{layer}` {hh}×{ww}" for layer, (hh, ww) in
                                                 layer_map_sizes(as_checkpoint(m).model).items() if hh * ww > 1)
                                       or "no layer") for name, m in models.items())
    return (f"- **The report's `{blank.layer}` maps**: {blank_note(blank, report)} So {_blank_words(blank)[1]}.\n"
            f"- **Measured instead**, on the layers with a spatial map ({spatial}): the ROAD scores and verdicts "
            "above; no verdict rests on how a map looks. `helpers` warns (`BlankCamWarning`) whenever a CAM of a "
            "1×1 layer is asked for.")


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed torch's and numpy's global generators within the block (RandomCAM and ROAD's imputer draw from them)."""
    state = np.random.get_state()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(state)


def faithfulness(model: nn.Module, images: torch.Tensor, result: CamResult, recipe: str = "none",
                 percentiles=ROAD_PERCENTILES, batch: int = 64) -> np.ndarray:
    """Return the library's ROADCombined score of each image's CAM in `result` (higher: more faithful)."""
    metric, scores = ROADCombined(percentiles=list(percentiles)), []
    with _seeded(0):  # the imputer adds noise
        for i in range(0, len(images), batch):
            tb = [ClassifierOutputSoftmaxTarget(int(t)) for t in result.targets[i:i + batch]]
            scores.append(metric(model_input(images[i:i + batch], recipe, model), result.cams[i:i + batch], tb, model))
    return np.concatenate(scores).astype(np.float64)


def faithfulness_table(checkpoints: dict, images: torch.Tensor, layers=CAM_LAYERS, methods=tuple(METHODS),
                       scorecam_images: int = 4, percentiles=ROAD_PERCENTILES) -> pd.DataFrame:
    """Return per model × layer × method (and RandomCAM) the ROAD scores, their mean, standard error and count."""
    rows, all_methods = [], [*methods, *REFERENCE_METHODS]
    for name, ck in checkpoints.items():
        ck, t0 = as_checkpoint(ck, name), time.perf_counter()
        for layer, method in itertools.product(layers, all_methods):
            n = min(scorecam_images, len(images)) if method == "ScoreCAM" else len(images)  # a forward per channel
            if n:
                with _seeded(0):  # RandomCAM draws from numpy's generator; the table marks blank maps itself
                    res = compute_cams(ck.model, images[:n], layer, method, recipe=ck.recipe, warn=False)
                s = faithfulness(ck.model, images[:n], res, ck.recipe, percentiles)
                rows.append({"model": name, "layer": layer, "map": res.size_text, "method": method, "images": n,
                             "road": s.mean(), "sem": s.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan,
                             "scores": tuple(s)})
        print(f"faithfulness: {name}: {len(layers)} layers × {len(all_methods)} methods "
              f"in {time.perf_counter() - t0:.0f} s", flush=True)
    return pd.DataFrame(rows)


def faithfulness_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """Return the ROAD means as a model/layer × method table (text: mean ± standard error)."""
    t = table.assign(cell=[f"{m:+.3f}" + ("" if math.isnan(s) else f" ± {s:.3f}")
                           for m, s in zip(table["road"], table["sem"])])
    out = t.pivot_table(index=["model", "layer", "map"], columns="method", values="cell", aggfunc="first", sort=False)
    return out[list(dict.fromkeys(table["method"]))].reset_index()


def faithfulness_verdicts(table: pd.DataFrame, claims=()) -> list:
    """Return verdicts: per model its spatial and 1×1 maps against RandomCAM, then A against B per (claim, A, B)."""
    scores = table.set_index(["model", "layer", "method"])["scores"]
    full = table[~table["method"].isin(REFERENCE_METHODS) & (table["images"] == table["images"].max())]
    pairs = {(m, blank): set(zip(g["layer"], g["method"]))
             for (m, blank), g in full.groupby([full["model"], full["map"] == "1×1"], sort=False)}

    def side(model, keys, method=None):
        """Return each image's ROAD ×100 (points of probability) over (layer, method) keys scored on every image."""
        return 100 * np.mean([scores[model, layer, method or m] for layer, m in keys], axis=0)

    verdicts = [Verdict(f"{m}: {'1×1' if blank else 'spatial'} maps beat RandomCAM", m, "RandomCAM",
                        compare(side(m, keys), side(m, keys, "RandomCAM"))) for (m, blank), keys in pairs.items()]
    for claim, a, b in claims:
        keys = pairs.get((a, False), set()) & pairs.get((b, False), set())
        if not keys:
            raise ValueError(f"parameter 'claims': models {a!r} and {b!r} share no layer × method with a spatial map "
                             f"scored on every image; valid: {' | '.join(dict.fromkeys(m for m, _ in pairs))}")
        verdicts.append(Verdict(claim, a, b, compare(side(a, keys), side(b, keys))))
    return verdicts
