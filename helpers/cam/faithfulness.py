"""The ROAD faithfulness study: numbers instead of "looks clearer", per model, layer and method, and what they say."""
from __future__ import annotations

import contextlib
import math
import time
import warnings

import numpy as np
import pandas as pd
import torch
from torch import nn
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

from .wrappers import (CAM_LAYERS, METHODS, REFERENCE_METHODS, BlankCamWarning, CamResult, as_checkpoint,
                       compute_cams, model_device, model_input)

ROAD_PERCENTILES = (20, 40, 60, 80)  # the library's default is 10..90 in nine steps; four keep a CPU run short


def faithfulness(model: nn.Module, images: torch.Tensor, layer: str, method: str, target=None,
                 recipe: str = "none", percentiles=ROAD_PERCENTILES, batch_size: int = 64, seed: int = 0,
                 result: CamResult | None = None) -> np.ndarray:
    """Return the ROAD score (the library's ROADCombined) of each image's CAM; higher is more faithful.

    ROAD removes the pixels a CAM ranks most (MoRF) or least (LeRF) relevant, fills them in by noisy
    linear imputation, and measures the change in the explained class's softmax probability;
    ROADCombined averages (LeRF − MoRF) / 2 over the percentiles. A blank CAM scores about 0.
    """
    res = result or compute_cams(model, images, layer, method, target, recipe, batch_size)
    metric = ROADCombined(percentiles=list(percentiles))
    scores = []
    with torch.random.fork_rng():  # the imputer adds random noise: seeded, without touching the caller's RNG
        torch.manual_seed(seed)
        for i in range(0, len(images), batch_size):
            xb = model_input(images[i:i + batch_size], recipe).to(model_device(model))
            tb = [ClassifierOutputSoftmaxTarget(int(t)) for t in res.targets[i:i + batch_size]]
            scores.append(metric(xb, res.cams[i:i + batch_size], tb, model))
    return np.concatenate(scores).astype(np.float64)


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed torch's and numpy's global generators within the block; restore both after."""
    state = np.random.get_state()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(state)


def faithfulness_table(checkpoints: dict, images: torch.Tensor, layers=CAM_LAYERS, methods=tuple(METHODS),
                       scorecam_images: int = 4, reference: bool = True, target=None,
                       percentiles=ROAD_PERCENTILES, progress: bool = True) -> pd.DataFrame:
    """Return one row per model × layer × method: mean ROAD score over the images, its standard error, n.

    ScoreCAM runs on the first `scorecam_images` images only (it costs one forward pass per channel);
    `reference` adds RandomCAM, the score of a map with no information, for every model and layer.
    """
    rows = []
    all_methods = list(methods) + (list(REFERENCE_METHODS) if reference else [])
    for name, ck in checkpoints.items():
        ck = as_checkpoint(ck, name)
        t0 = time.perf_counter()
        for layer in layers:
            for method in all_methods:
                n = min(scorecam_images, len(images)) if method == "ScoreCAM" else len(images)
                if n == 0:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", BlankCamWarning)  # the table marks blank maps itself
                    with _seeded(0):  # RandomCAM draws its weights from numpy's global generator
                        res = compute_cams(ck.model, images[:n], layer, method, target, ck.recipe)
                    s = faithfulness(ck.model, images[:n], layer, method, recipe=ck.recipe, result=res,
                                     percentiles=percentiles)
                rows.append({"model": name, "layer": layer, "map": "×".join(map(str, res.map_size)),
                             "method": method, "images": n, "road": s.mean(),
                             "sem": s.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")})
        if progress:
            print(f"faithfulness: {name}: {len(layers)} layers × {len(all_methods)} methods "
                  f"in {time.perf_counter() - t0:.0f} s", flush=True)
    return pd.DataFrame(rows)


def faithfulness_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """Return the ROAD means as a model/layer × method table (text: mean ± standard error)."""
    t = table.assign(cell=[f"{m:+.3f} ± {s:.3f}" if not math.isnan(s) else f"{m:+.3f}"
                           for m, s in zip(table["road"], table["sem"])])
    out = t.pivot_table(index=["model", "layer", "map"], columns="method", values="cell", aggfunc="first", sort=False)
    order = [m for m in dict.fromkeys(table["method"])]
    return out[order].reset_index()


def faithfulness_conclusion(table: pd.DataFrame) -> str:
    """Return Markdown that reads the faithfulness table: best layer/method per model, blank maps, vs random."""
    lines = []
    real = table[~table["method"].isin(REFERENCE_METHODS)]
    for name in dict.fromkeys(table["model"]):
        sub = real[real["model"] == name]
        full = sub[sub["images"] == sub["images"].max()]  # methods scored on every image compare fairly
        best = full.loc[full["road"].idxmax()]
        rand = table[(table["model"] == name) & table["method"].isin(REFERENCE_METHODS)].set_index("layer")["road"]
        beat = [(r.layer, r.method) for r in sub.itertuples()
                if r.layer in rand and not math.isnan(r.sem) and r.road - 2 * r.sem > rand[r.layer]]
        line = (f"- **{name}**: the highest mean ROAD is {best.road:+.3f} ± {best['sem']:.3f} "
                f"({best.method} on {best.layer}, a {best['map']} map, {int(best.images)} images). "
                f"{len(beat)} of {len(sub)} layer × method pairs beat RandomCAM on the same layer by more than "
                "two standard errors.")
        few = sub[sub["images"] < sub["images"].max()]
        for method in dict.fromkeys(few["method"]):
            m = few[few["method"] == method]
            top = m.loc[m["road"].idxmax()]
            line += (f" {method}, scored on only the first {int(top.images)} image(s), reaches {top.road:+.3f} "
                     f"on {top.layer} — too few images to rank it against the others.")
        blank = sub[sub["map"] == "1×1"]
        if len(blank):
            line += (f" On {', '.join(dict.fromkeys(blank['layer']))} (1×1) every method scores between "
                     f"{blank['road'].min():+.3f} and {blank['road'].max():+.3f}: a blank map removes no pixel "
                     "before another, so it carries no evidence at all.")
        lines.append(line)
    spatial = real[(real["map"] != "1×1") & (real["images"] == real["images"].max())]
    if spatial["method"].nunique() > 1:
        by_method = spatial.groupby("method")["road"].mean()
        lines.append(f"- Averaged over models and the layers with a spatial map (methods scored on every image), "
                     "the best method is "
                     f"**{by_method.idxmax()}** ({by_method.max():+.3f}); the worst is {by_method.idxmin()} "
                     f"({by_method.min():+.3f}).")
    return "\n".join(lines)


def compare_note(table: pd.DataFrame, models: list, claim: str) -> str:
    """Return Markdown comparing models' ROAD on the layers where both have spatial maps, against a claim.

    A pair (layer, method) separates two models when their means differ by more than two combined
    standard errors; the verdict says whether the numbers support the claim, contradict it, or cannot tell.
    """
    real = table[~table["method"].isin(REFERENCE_METHODS) & (table["map"] != "1×1") & table["model"].isin(models)]
    pairs = real.pivot_table(index=["layer", "method"], columns="model", values=["road", "sem"], sort=False).dropna()
    if pairs.empty or any(m not in pairs["road"] for m in models):
        return "Not enough scores to compare these models."
    means = {m: pairs["road"][m].mean() for m in models}
    first, last = models[0], models[-1]
    diff = pairs["road"][last] - pairs["road"][first]
    se = np.sqrt(pairs["sem"][last] ** 2 + pairs["sem"][first] ** 2)
    better, worse = int((diff > 2 * se).sum()), int((diff < -2 * se).sum())
    listing = "; ".join(f"{m}: {v:+.3f}" for m, v in means.items())
    half = len(diff) / 2
    if better > worse and better >= half:
        verdict = f"**supports** the claim ({last} clearly ahead in {better} of {len(diff)} layer × method pairs, behind in {worse})"
    elif worse > better and worse >= half:
        verdict = f"**contradicts** the claim ({last} clearly behind in {worse} of {len(diff)} pairs, ahead in {better})"
    else:
        lean = "the same way as the claim" if means[last] > means[first] else "against the claim"
        verdict = (f"**cannot confirm** the claim: {better} of {len(diff)} pairs put {last} clearly ahead and {worse} "
                   f"clearly behind (a majority is needed); the means lean {lean}")
    return (f"Claim: *{claim}*. Mean ROAD over the layers with a spatial map and the methods scored — {listing}. "
            f"Pair by pair (a pair counts when the difference exceeds two combined standard errors), "
            f"the measurement {verdict}.")
