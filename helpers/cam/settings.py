"""Notebook 04's CAM parameters, validated per profile, and the config of its CIFAR-stem model."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import Config, ConfigError, make_config
from ..data import CLASSES
from .faithfulness import ROAD_PERCENTILES
from .wrappers import METHODS


# Per profile: the CIFAR-stem model's training (None: the base config's) and the CAM subset sizes.
# Short runs use batches of 32 (lr 0.05): the same images give four times the SGD steps of batches of 128.
CAM_DEFAULTS = {
    "smoke": dict(cifar_epochs=1, cifar_train_size=200, cifar_test_size=100, cifar_batch_size=32, cifar_lr=0.05,
                  metric_images=3, scorecam_images=1, percentiles=(50,)),
    "quick": dict(cifar_epochs=2, cifar_train_size=2000, cifar_test_size=1000, cifar_batch_size=32, cifar_lr=0.05,
                  metric_images=12, scorecam_images=2, percentiles=(25, 50, 75)),
    "full": dict(cifar_epochs=None, cifar_train_size=None, cifar_test_size=None, metric_images=200,
                 scorecam_images=20, percentiles=ROAD_PERCENTILES),
}


@dataclass(frozen=True)
class CamSettings:
    """The notebook's CAM choices, validated: the single image, the explained class, the method, subset sizes."""
    image_index: int      # -1: the first cat of the test set
    target: str           # "predicted" or a class name
    method: str           # method of the layer, epoch and model figures
    metric_images: int    # test images per faithfulness score
    scorecam_images: int  # of those, how many ScoreCAM scores
    percentiles: tuple    # ROAD removal percentiles (the profile's)


def cam_settings(cfg: Config, image_index: int = -1, target: str = "predicted", method: str = "GradCAM",
                 metric_images: int | None = None, scorecam_images: int | None = None,
                 classes=CLASSES) -> CamSettings:
    """Return the validated CAM settings, the profile's defaults filling every None; raise ConfigError on a bad one."""
    d = CAM_DEFAULTS[cfg.profile]
    metric_images = d["metric_images"] if metric_images is None else metric_images
    scorecam_images = d["scorecam_images"] if scorecam_images is None else scorecam_images
    n_test = cfg.test_size or 10_000
    if not isinstance(image_index, int) or not -1 <= image_index < n_test:
        raise ConfigError(f"parameter 'image_index' = {image_index!r} is invalid; valid: -1 (first cat) or 0..{n_test - 1}")
    if target != "predicted" and target not in classes:
        raise ConfigError(f"parameter 'target' = {target!r} is invalid; valid: predicted | {' | '.join(classes)}")
    if method not in METHODS:
        raise ConfigError(f"parameter 'cam_method' = {method!r} is invalid; valid: {' | '.join(METHODS)}")
    if not isinstance(metric_images, int) or not 2 <= metric_images <= n_test:
        raise ConfigError(f"parameter 'metric_images' = {metric_images!r} is invalid; valid: 2..{n_test}")
    if not isinstance(scorecam_images, int) or not 0 <= scorecam_images <= metric_images:
        raise ConfigError(f"parameter 'scorecam_images' = {scorecam_images!r} is invalid; "
                          f"valid: 0..metric_images ({metric_images})")
    return CamSettings(image_index, target, method, metric_images, scorecam_images, tuple(d["percentiles"]))


def set_threads(threads: int = 0) -> int:
    """Set torch's CPU threads (0: leave the default); return the number in use.

    On a CPU shared with other busy processes, one thread avoids threads waiting on each other
    (measured here: a training step of the CIFAR stem ran 2-2.5x faster with 1 thread than with 2).
    """
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise ConfigError(f"parameter 'threads' = {threads!r} is invalid; valid: 0 (torch's default) or a positive integer")
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def cifar_stem_config(cfg: Config, epochs: int | None = None, train_size: int | None = None) -> Config:
    """Return the CIFAR-stem model's config: the base config's data, seed and device, stem='cifar'.

    `full` keeps the base protocol; `smoke` and `quick` train briefly on a subset with a one-cycle
    schedule and small batches (the stem costs about 16x the compute per image of the ImageNet stem).
    """
    for name, value, least in (("cifar_epochs", epochs, 1), ("cifar_train_size", train_size, 10)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise ConfigError(f"parameter {name!r} = {value!r} is invalid; valid: None or an integer >= {least}")
    d = CAM_DEFAULTS[cfg.profile]
    if cfg.profile == "full":
        return make_config(profile="full", **{**cfg.identity(), "stem": "cifar", "device": cfg.device,
                                              "epochs": epochs or cfg.epochs,
                                              "step_size": None if epochs else cfg.step_size,
                                              "snapshot_epochs": None if epochs else cfg.snapshot_epochs,
                                              "train_size": train_size or cfg.train_size})
    return make_config(profile=cfg.profile, stem="cifar", schedule="onecycle", seed=cfg.seed, data_dir=cfg.data_dir,
                       device=cfg.device, epochs=epochs or d["cifar_epochs"], batch_size=d["cifar_batch_size"],
                       lr=d["cifar_lr"], train_size=train_size or d["cifar_train_size"],
                       test_size=d["cifar_test_size"])
