"""Notebook 04's CAM parameters, validated per profile, and the config of its CIFAR-stem model."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from helpers.core.config import Config, ConfigError, make_config
from helpers.core.data import CLASSES
from .evidence import ROAD_PERCENTILES
from .wrappers import METHODS

# Per profile: the CIFAR-stem model's training and the CAM subset sizes. The stem costs about 16x the compute per
# image of the ImageNet stem, so short profiles train it briefly on a subset, one-cycle, in batches of 32 (lr 0.05):
# the same images give four times the SGD steps of batches of 128. `full` trains it with the base protocol.
CAM_DEFAULTS = {
    "smoke": dict(cifar_epochs=1, cifar_train_size=200, cifar_test_size=100, cifar_batch_size=32, cifar_lr=0.05,
                  metric_images=3, scorecam_images=1, percentiles=(50,)),
    "quick": dict(cifar_epochs=2, cifar_train_size=2000, cifar_test_size=1000, cifar_batch_size=32, cifar_lr=0.05,
                  metric_images=12, scorecam_images=2, percentiles=(25, 50, 75)),
    "full": dict(metric_images=200, scorecam_images=20, percentiles=ROAD_PERCENTILES),
}


def _check(name: str, value, ok: bool, valid: str):
    """Raise ConfigError naming the parameter, its value and the valid choices unless `ok`."""
    if not ok:
        raise ConfigError(f"parameter {name!r} = {value!r} is invalid; valid: {valid}")


def cam_settings(cfg: Config, image_index: int = -1, target: str = "predicted", method: str = "GradCAM",
                 metric_images: int | None = None, scorecam_images: int | None = None) -> SimpleNamespace:
    """Return the validated CAM settings (the arguments, and the profile's ROAD percentiles), defaults for None."""
    d, n = CAM_DEFAULTS[cfg.profile], cfg.test_size or 10_000
    metric = d["metric_images"] if metric_images is None else metric_images
    scorecam = d["scorecam_images"] if scorecam_images is None else scorecam_images
    _check("image_index", image_index, type(image_index) is int and -1 <= image_index < n,
           f"-1 (first cat) or 0..{n - 1}")
    _check("target", target, target == "predicted" or target in CLASSES, f"predicted | {' | '.join(CLASSES)}")
    _check("cam_method", method, method in METHODS, " | ".join(METHODS))
    _check("metric_images", metric, type(metric) is int and 2 <= metric <= n, f"2..{n}")
    _check("scorecam_images", scorecam, type(scorecam) is int and 0 <= scorecam <= metric,
           f"0..metric_images ({metric})")
    return SimpleNamespace(image_index=image_index, target=target, method=method, metric_images=metric,
                           scorecam_images=scorecam, percentiles=tuple(d["percentiles"]))


def set_threads(threads: int = 0) -> int:
    """Set torch's CPU threads (0: torch's default; 1 is fastest on a CPU busy with other jobs); return those in use."""
    _check("threads", threads, type(threads) is int and threads >= 0, "0 (torch's default) or a positive integer")
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def cifar_stem_config(cfg: Config, epochs: int | None = None, train_size: int | None = None) -> Config:
    """Return the CIFAR-stem model's config (base data, seed, device): `full` the base protocol, else a short run."""
    for name, value, least in (("cifar_epochs", epochs, 1), ("cifar_train_size", train_size, 10)):
        _check(name, value, value is None or (type(value) is int and value >= least), f"None or an integer >= {least}")
    if cfg.profile == "full":
        return make_config(profile="full", **{**cfg.identity(), "stem": "cifar", "device": cfg.device,
                                              "epochs": epochs or cfg.epochs,
                                              "step_size": None if epochs else cfg.step_size,
                                              "snapshot_epochs": None if epochs else cfg.snapshot_epochs,
                                              "train_size": train_size or cfg.train_size})
    d = CAM_DEFAULTS[cfg.profile]
    return make_config(profile=cfg.profile, stem="cifar", schedule="onecycle", seed=cfg.seed, data_dir=cfg.data_dir,
                       device=cfg.device, epochs=epochs or d["cifar_epochs"], batch_size=d["cifar_batch_size"],
                       lr=d["cifar_lr"], train_size=train_size or d["cifar_train_size"],
                       test_size=d["cifar_test_size"])
