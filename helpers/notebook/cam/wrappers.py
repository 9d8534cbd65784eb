"""pytorch-grad-cam, wrapped: one `with` block per CAM (hooks released), one target per image, the 1x1 warning;
and notebook 04's CAM parameters, validated per profile, with the config of its CIFAR-stem model."""

import contextlib
import io
import math
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, RandomCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from helpers.core.config import Config, ConfigError, make_config
from helpers.core.data import CLASSES
from helpers.core.models import stage_shapes
from helpers.core.recipes import eval_batch, get_recipe

METHODS = CAM_METHODS = {"GradCAM": GradCAM, "GradCAM++": GradCAMPlusPlus, "XGradCAM": XGradCAM,
                         "EigenCAM": EigenCAM, "LayerCAM": LayerCAM, "ScoreCAM": ScoreCAM}
REFERENCE_METHODS = {"RandomCAM": RandomCAM}  # a chance-level map: what the metric gives for no information
CAM_LAYERS = ("layer1", "layer2", "layer3", "layer4")
ROAD_PERCENTILES = (20, 40, 60, 80)  # the library's default is 10..90 in nine steps; four keep a CPU run short


class BlankCamWarning(UserWarning):
    """A CAM was asked of a layer whose feature map is 1x1: the map is blank by construction."""


warnings.filterwarnings("always", category=BlankCamWarning)

# Per profile: the CIFAR-stem model's training and the CAM subset sizes. The stem costs about 16x the compute per
# image of the ImageNet stem, so short profiles train it briefly on a subset, one-cycle, in batches of 32 (lr 0.05):
# the same images give four times the SGD steps of batches of 128. `full` trains it with the base protocol.
CAM_DEFAULTS = {
    "smoke": dict(cifar_epochs=1, cifar_train_size=200, cifar_test_size=100, metric_images=3, scorecam_images=1,
                  percentiles=(50,)),
    "quick": dict(cifar_epochs=2, cifar_train_size=2000, cifar_test_size=1000, metric_images=12, scorecam_images=2,
                  percentiles=(25, 50, 75)),
    "full": dict(metric_images=200, scorecam_images=20, percentiles=ROAD_PERCENTILES),
}


def require(name: str, value, ok: bool, valid: str):
    """Raise ConfigError (a ValueError) naming the parameter, its value and the valid choices unless `ok`."""
    if not ok:
        raise ConfigError(f"parameter {name!r} = {value!r} is invalid; valid: {valid}")


@dataclass
class Checkpoint:
    """A model to explain, with the label used in figures and the recipe that decides its input transform."""
    label: str
    model: nn.Module
    recipe: str = "none"


@dataclass
class CamResult:
    """CAMs for a batch: maps (N, 32, 32) in [0, 1], the class each explains, and the model's predictions."""
    cams: np.ndarray
    targets: np.ndarray   # class index each CAM explains
    probs: np.ndarray     # softmax (N, classes) of the model on the images
    layer: str
    method: str
    map_size: tuple       # (H, W) of the layer's feature map

    blank = property(lambda self: tuple(self.map_size) == (1, 1), doc="Whether the map is 1x1: every CAM uniform.")
    size_text = property(lambda self: "×".join(map(str, self.map_size)), doc="The map size as 'H×W'.")


def as_checkpoint(obj, label: str = "model") -> Checkpoint:
    """Return a Checkpoint for a Checkpoint or a bare model."""
    return obj if isinstance(obj, Checkpoint) else Checkpoint(label, obj)


def checkpoint_from_run(run, epoch: int | None = None, label: str | None = None) -> Checkpoint:
    """Return the run's weights at `epoch` (None: final) as a Checkpoint on the CPU, labelled with its accuracy."""
    c, epoch = run.config, int(run.config["epochs"]) if epoch is None else epoch
    acc = float(run.history.set_index("epoch")["test_acc"].loc[epoch])
    label = label or f"{c['recipe']} · {c['stem']} stem · epoch {epoch}"
    return Checkpoint(f"{label} · {acc:.1f}%", run.load_model(epoch), c["recipe"])


def model_input(images: torch.Tensor, recipe: str, model: nn.Module) -> torch.Tensor:
    """Return uint8 images (N, 3, 32, 32) as the model sees them at test time, on its device."""
    return eval_batch(get_recipe(recipe), torch.as_tensor(images)).to(next(model.parameters(), torch.empty(0)).device)


def layer_map_sizes(model: nn.Module) -> dict:
    """Return {layer: (H, W)} of each CAM layer's feature map for a 32x32 image."""
    return {layer: tuple(shape[1:]) for layer, shape in stage_shapes(model) if layer in CAM_LAYERS}


def check_method(method: str):
    """Return the library's CAM class for a method name; raise naming the valid ones."""
    require("method", method, method in (known := {**METHODS, **REFERENCE_METHODS}), " | ".join(known))
    return known[method]


def resolve_targets(target, n: int):
    """Return None for None/"predicted", else one class index per image from a class (name or index) or one each."""
    if target is None or str(target) == "predicted":
        return None
    targets = [target] * n if isinstance(target, (str, int, np.integer)) else list(target)
    if len(targets) != n:
        raise ValueError(f"parameter 'target' has {len(targets)} classes for {n} images; valid: one per image, "
                         "one class for all, or 'predicted'")
    for t in targets:
        require("target", t, t in CLASSES if isinstance(t, str) else 0 <= int(t) < len(CLASSES),
               f"predicted | {' | '.join(CLASSES)} | a class index 0..{len(CLASSES) - 1}")
    return np.array([CLASSES.index(t) if isinstance(t, str) else int(t) for t in targets], dtype=np.int64)


def to_rgb01(images) -> np.ndarray:
    """Return uint8 images (or floats in [0, 1]) as (N, H, W, 3) float32 in [0, 1], as `show_cam_on_image` needs."""
    t = torch.as_tensor(images).detach().cpu()
    t = t.float() / (255 if t.dtype == torch.uint8 else 1)
    if t.min() < 0 or t.max() > 1:
        raise ValueError(f"parameter 'images' has values in [{t.min():.2f}, {t.max():.2f}]; valid: uint8 images, "
                         "or floats in [0, 1] (pass the images before normalization)")
    return t.permute(0, 2, 3, 1).contiguous().numpy()


def compute_cams(model: nn.Module, images: torch.Tensor, layer: str = "layer4", method: str = "GradCAM",
                 target=None, recipe: str = "none", batch_size: int = 128, warn: bool = True) -> CamResult:
    """Return CAMs of `layer` for uint8 images (N, 3, 32, 32) explaining `target`; warn: a BlankCamWarning on 1x1."""
    cam_class, images = check_method(method), torch.as_tensor(images)
    require("layer", layer, layer in CAM_LAYERS, " | ".join(CAM_LAYERS))
    map_size = layer_map_sizes(model)[layer]
    if map_size == (1, 1) and warn:
        warnings.warn(f"{layer} of this model is a 1x1 map at 32x32 input: a CAM there has a single value, "
                      "which the library's min-max scaling turns into all zeros — a uniform overlay that "
                      "shows no location. Use an earlier layer, or the CIFAR-stem model (stem='cifar').",
                      BlankCamWarning, stacklevel=2)
    targets = resolve_targets(target, len(images))
    module, was_training, maps, outputs = getattr(model, layer), model.training, [], []
    requires_grad = {p: p.requires_grad for p in model.parameters()}
    quiet = contextlib.redirect_stderr(io.StringIO()) if method == "ScoreCAM" else contextlib.nullcontext()
    # enable_grad: the CAM needs gradients even where a caller turned them off; ScoreCAM prints a tqdm bar per image.
    try:
        with torch.enable_grad(), quiet, cam_class(model=model, target_layers=[module]) as cam:
            # Only the layer's weights require grad: the backward pass stops there, computing no weight gradient.
            model.requires_grad_(False)
            module.requires_grad_(cam.uses_gradients)
            cam.batch_size = 128  # ScoreCAM's masked images per forward pass (one per channel of the layer)
            for i in range(0, len(images), batch_size):
                tb = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets[i:i + batch_size]]
                maps.append(cam(input_tensor=model_input(images[i:i + batch_size], recipe, model), targets=tb))
                outputs.append(cam.outputs.detach().float().cpu())
    finally:
        for p, flag in requires_grad.items():
            p.requires_grad_(flag)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if len(maps) != math.ceil(len(images) / batch_size):
        # The library's __exit__ swallows an IndexError raised inside the block; never return a partial result.
        raise RuntimeError(f"{method} on {layer} stopped early (the library suppressed an IndexError)")
    probs = torch.softmax(torch.cat(outputs), 1).numpy()
    return CamResult(np.concatenate(maps).astype(np.float32), probs.argmax(1) if targets is None else targets, probs,
                     layer, method, map_size)


def cam_settings(cfg: Config, image_index: int = -1, target: str = "predicted", method: str = "GradCAM",
                 metric_images: int | None = None, scorecam_images: int | None = None) -> SimpleNamespace:
    """Return the validated CAM settings and the profile's ROAD percentiles, the profile's defaults for None."""
    d, n = CAM_DEFAULTS[cfg.profile], cfg.test_size or 10_000
    metric = d["metric_images"] if metric_images is None else metric_images
    scorecam = d["scorecam_images"] if scorecam_images is None else scorecam_images
    require("image_index", image_index, type(image_index) is int and -1 <= image_index < n,
            f"-1 (first cat) or 0..{n - 1}")
    require("target", target, target == "predicted" or target in CLASSES, f"predicted | {' | '.join(CLASSES)}")
    require("cam_method", method, method in METHODS, " | ".join(METHODS))
    require("metric_images", metric, type(metric) is int and 2 <= metric <= n, f"2..{n}")
    require("scorecam_images", scorecam, type(scorecam) is int and 0 <= scorecam <= metric,
            f"0..metric_images ({metric})")
    return SimpleNamespace(image_index=image_index, target=target, method=method, metric_images=metric,
                           scorecam_images=scorecam, percentiles=tuple(d["percentiles"]))


def set_threads(threads: int = 0) -> int:
    """Set torch's CPU threads (0: torch's default; 1 is fastest on a CPU busy with other jobs); return those in use."""
    require("threads", threads, type(threads) is int and threads >= 0, "0 (torch's default) or a positive integer")
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def cifar_stem_config(cfg: Config, epochs: int | None = None, train_size: int | None = None) -> Config:
    """Return the CIFAR-stem model's config (base data, seed, device): `full` the base protocol, else a short run."""
    for name, value, least in (("cifar_epochs", epochs, 1), ("cifar_train_size", train_size, 10)):
        require(name, value, value is None or (type(value) is int and value >= least), f"None or an integer >= {least}")
    if cfg.profile == "full":
        return make_config(profile="full", **{**cfg.identity(), "stem": "cifar", "device": cfg.device,
                                              "data_dir": cfg.data_dir, "epochs": epochs or cfg.epochs,
                                              "step_size": None if epochs else cfg.step_size,
                                              "snapshot_epochs": None if epochs else cfg.snapshot_epochs,
                                              "train_size": train_size or cfg.train_size})
    d = CAM_DEFAULTS[cfg.profile]
    return make_config(profile=cfg.profile, stem="cifar", schedule="onecycle", seed=cfg.seed, data_dir=cfg.data_dir,
                       device=cfg.device, epochs=epochs or d["cifar_epochs"], batch_size=32, lr=0.05,
                       train_size=train_size or d["cifar_train_size"], test_size=d["cifar_test_size"])
