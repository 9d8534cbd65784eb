"""The ROAD faithfulness study: numbers instead of "looks clearer", per model, layer and method, and their verdicts.

ROAD (the library's ROADCombined) removes the pixels a CAM ranks most (MoRF) or least (LeRF) relevant, fills them
in by noisy linear imputation, and averages (LeRF − MoRF) / 2 of the explained class's softmax probability over the
removal percentiles. A blank CAM scores about 0; RandomCAM is the chance level.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import time
import warnings

import numpy as np
import pandas as pd
import torch
from torch import nn
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

from ..stats import Verdict, compare
from .wrappers import (CAM_LAYERS, METHODS, REFERENCE_METHODS, BlankCamWarning, CamResult, as_checkpoint,
                       compute_cams, model_input)

ROAD_PERCENTILES = (20, 40, 60, 80)  # the library's default is 10..90 in nine steps; four keep a CPU run short


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
                 percentiles=ROAD_PERCENTILES, batch_size: int = 64, seed: int = 0) -> np.ndarray:
    """Return the library's ROADCombined score of each image's CAM in `result` (higher: more faithful)."""
    metric = ROADCombined(percentiles=list(percentiles))
    scores = []
    with _seeded(seed):  # the imputer adds noise
        for i in range(0, len(images), batch_size):
            tb = [ClassifierOutputSoftmaxTarget(int(t)) for t in result.targets[i:i + batch_size]]
            scores.append(metric(model_input(images[i:i + batch_size], recipe, model),
                                 result.cams[i:i + batch_size], tb, model))
    return np.concatenate(scores).astype(np.float64)


def faithfulness_table(checkpoints: dict, images: torch.Tensor, layers=CAM_LAYERS, methods=tuple(METHODS),
                       scorecam_images: int = 4, percentiles=ROAD_PERCENTILES, progress: bool = True) -> pd.DataFrame:
    """Return per model × layer × method (and RandomCAM) the ROAD scores, their mean, standard error and count."""
    rows, all_methods = [], [*methods, *REFERENCE_METHODS]
    for name, ck in checkpoints.items():
        ck, t0 = as_checkpoint(ck, name), time.perf_counter()
        for layer, method in itertools.product(layers, all_methods):
            n = min(scorecam_images, len(images)) if method == "ScoreCAM" else len(images)  # a forward per channel
            if n:
                with warnings.catch_warnings(), _seeded(0):  # RandomCAM draws from numpy's generator
                    warnings.simplefilter("ignore", BlankCamWarning)  # the table marks blank maps itself
                    res = compute_cams(ck.model, images[:n], layer, method, recipe=ck.recipe)
                s = faithfulness(ck.model, images[:n], res, ck.recipe, percentiles)
                rows.append({"model": name, "layer": layer, "map": res.size_text, "method": method, "images": n,
                             "road": s.mean(), "sem": s.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan,
                             "scores": tuple(s)})
        if progress:
            print(f"faithfulness: {name}: {len(layers)} layers × {len(all_methods)} methods "
                  f"in {time.perf_counter() - t0:.0f} s", flush=True)
    return pd.DataFrame(rows)


def faithfulness_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """Return the ROAD means as a model/layer × method table (text: mean ± standard error)."""
    t = table.assign(cell=[f"{m:+.3f}" + ("" if math.isnan(s) else f" ± {s:.3f}")
                           for m, s in zip(table["road"], table["sem"])])
    out = t.pivot_table(index=["model", "layer", "map"], columns="method", values="cell", aggfunc="first", sort=False)
    return out[list(dict.fromkeys(table["method"]))].reset_index()


def _compared(table: pd.DataFrame) -> pd.DataFrame:
    """Return the rows verdicts rest on (each image one sample): real methods, spatial maps, scored on every image."""
    return table[~table["method"].isin(REFERENCE_METHODS) & (table["map"] != "1×1")
                 & (table["images"] == table["images"].max())]


def faithfulness_verdicts(table: pd.DataFrame, claims=()) -> list:
    """Return verdicts, per model its maps against RandomCAM, then model A against B per (claim, A, B) in `claims`."""
    scores = table.set_index(["model", "layer", "method"])["scores"]
    pairs = {m: set(zip(g["layer"], g["method"])) for m, g in _compared(table).groupby("model", sort=False)}

    def side(model, keys, method=None):
        """Return each image's ROAD ×100 (points of class probability) averaged over the (layer, method) keys."""
        return 100 * np.mean([scores[model, layer, method or m] for layer, m in keys], axis=0)

    verdicts = [Verdict(f"{m}: maps beat RandomCAM", m, "RandomCAM", compare(side(m, keys), side(m, keys, "RandomCAM")))
                for m, keys in pairs.items()]
    for claim, a, b in claims:
        keys = pairs.get(a, set()) & pairs.get(b, set())
        if not keys:
            raise ValueError(f"parameter 'claims': models {a!r} and {b!r} share no layer × method with a spatial "
                             f"map scored on every image; valid models: {' | '.join(pairs)}")
        verdicts.append(Verdict(claim, a, b, compare(side(a, keys), side(b, keys))))
    return verdicts


def faithfulness_conclusion(table: pd.DataFrame) -> str:
    """Return short Markdown from the faithfulness table: each model's best map, the 1×1 layers, subset methods."""
    compared = _compared(table)
    best = compared.loc[compared.groupby("model", sort=False)["road"].idxmax()]
    lines = ["- Highest mean ROAD per model: " + "; ".join(
        f"**{r.model}** {r.method} on {r.layer} ({r.map}) {r.road:+.3f} ± {r.sem:.3f}" for r in best.itertuples())
        + "."]
    blank = table[table["map"] == "1×1"]
    if len(blank):
        lines.append(f"- On {', '.join(dict.fromkeys(blank['layer']))} (1×1) every score lies between "
                     f"{blank['road'].min():+.3f} and {blank['road'].max():+.3f}: a blank map ranks no pixel above "
                     "another, so it carries no evidence.")
    few = table[table["images"] < table["images"].max()]
    for method, n in few.groupby("method", sort=False)["images"].max().items():
        lines.append(f"- {method}, scored on only the first {n} image(s), stays out of the verdicts: too few images.")
    return "\n".join(lines)
