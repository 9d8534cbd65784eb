"""One typed, validated configuration for a training run, and the profiles that fill it in."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Optional

import torch

from .recipes import RECIPES

PROFILES = ("auto", "smoke", "quick", "full")

# What each profile fills in when a parameter is left at None. `full` is the report's protocol.
PROFILE_DEFAULTS = {
    "smoke": dict(epochs=4, step_size=3, train_size=1000, test_size=500, snapshot_epochs=(2, 3, 4),
                  data_dir="synthetic"),
    # quick: few images, many passes, so that the baseline overfits as in the report. Measured (seed 0, real data):
    # at 10,000 images x 12 epochs it was still underfit and crop fell 8 points below it; at 3,000 x 40 crop won by 3.
    "quick": dict(epochs=40, step_size=33, train_size=3_000, test_size=2_000, snapshot_epochs=(20, 33, 40)),
    "full": dict(epochs=60, step_size=50, snapshot_epochs=(30, 50, 60)),
}

# The `fast` recipe's schedule (docs/faster-recipe.md), for every parameter the caller leaves unset.
FAST_DEFAULTS = dict(schedule="onecycle", lr=0.2, label_smoothing=0.1, nesterov=True)
FAST_EPOCHS = {"full": 15, "quick": 10}  # a quarter of the profile's epochs; smoke keeps its own
FAST_LR = {"quick": 0.02}  # where validation chose another peak: 0.2 diverges on quick (docs/faster-recipe.md)
# OneCycleLR (train.make_scheduler: warm-up over a quarter of the steps) divides by zero at 4 steps, skips it below
ONECYCLE_MIN_STEPS = 5
PROFILE_SEEDS = {"smoke": 2, "quick": 1, "full": 3}  # runs per experiment, `seeds` unset: docs/seeds-and-spread.md


class ConfigError(ValueError):
    """A parameter has a bad value; the message names it, the value and the valid choices."""


@dataclass(frozen=True)
class Config:
    profile: str = "auto"            # auto | smoke | quick | full: fills in every None below
    recipe: str = "none"             # augmentation recipe, see helpers.core.recipes.RECIPES
    epochs: Optional[int] = None     # training epochs (report: 60)
    lr: float = 0.1                  # SGD learning rate (report: 0.1; its "fix": 0.5)
    momentum: float = 0.9            # SGD momentum
    weight_decay: float = 5e-4       # SGD weight decay
    step_size: Optional[int] = None  # StepLR period in epochs (report: 50)
    gamma: float = 0.1               # StepLR factor
    batch_size: int = 128            # training batch size
    seed: int = 0                    # seeds the subset, the weights and every augmentation draw
    data_dir: Optional[str] = None   # ImageFolder root, "synthetic", or None: $CIFAR10_DIR, else download
    train_size: Optional[int] = None  # class-balanced training subset (None: all 50,000)
    test_size: Optional[int] = None   # class-balanced test subset (None: all 10,000)
    snapshot_epochs: Optional[tuple] = None  # epochs whose weights are kept (report: 30, 50, 60)
    device: str = "auto"             # auto | cpu | cuda
    stem: str = "imagenet"           # imagenet: torchvision's 7x7/2 + max-pool; cifar: 3x3/1, no pool
    # Extras beyond the report (EXTRAS): they enter the run id only when changed from these defaults.
    schedule: str = "step"           # step | onecycle | cosine
    label_smoothing: float = 0.0     # cross-entropy smoothing
    nesterov: bool = False           # Nesterov momentum
    precision: str = "fp32"          # fp32 | bf16 (autocast)
    channels_last: bool = False      # NHWC memory format
    validation: int = 0              # >0: hold out this many training images, scored each epoch (test: at the end)

    def __post_init__(self):
        """Raise ConfigError for the first parameter with a bad value, naming it, the value and the choices."""
        for name in ("epochs", "step_size", "snapshot_epochs"):
            if getattr(self, name) is None:
                _fail(name, None, "a value; build configs with make_config(profile=...), which fills it in")
        for name in _TYPES:
            _check_type(name, getattr(self, name))
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                _fail(name, getattr(self, name), " | ".join(choices))
        if self.validation < 0 or (self.train_size is not None and self.validation >= self.train_size):
            _fail("validation", self.validation, "0 (off) or a count smaller than train_size")
        for names, ok, valid in RANGES:
            for name in names:
                if getattr(self, name) is not None and not ok(getattr(self, name)):
                    _fail(name, getattr(self, name), valid)
        for e in self.snapshot_epochs:
            if not isinstance(e, int) or isinstance(e, bool) or not 0 < e <= self.epochs:
                _fail("snapshot_epochs", self.snapshot_epochs,
                      f"positive integer epochs between 1 and epochs={self.epochs}")
        if self.schedule == "onecycle":
            images = (self.train_size or (5_000 if self.data_dir == "synthetic" else 50_000)) - self.validation
            per_epoch = max(1, -(-images // self.batch_size))
            if self.epochs * per_epoch < ONECYCLE_MIN_STEPS:
                _fail("epochs", self.epochs, f"at least {-(-ONECYCLE_MIN_STEPS // per_epoch)} with schedule "
                      f"'onecycle', which needs {ONECYCLE_MIN_STEPS} optimizer steps and gets {per_epoch} per epoch "
                      f"({images} training images in batches of {self.batch_size}); or more training images, a "
                      "smaller batch_size, or schedule step | cosine")

    def to_dict(self) -> dict:
        """Return the config as a JSON-ready dict."""
        return {**dataclasses.asdict(self), "snapshot_epochs": list(self.snapshot_epochs)}

    def identity(self) -> dict:
        """Return the fields that decide a run's result (the run id hashes these)."""
        # not the profile (it only fills defaults), the device, nor data_dir: data_identity fingerprints the data
        return {k: v for k, v in self.to_dict().items() if k not in ("profile", "device", "data_dir")
                and not (k in EXTRAS and getattr(self, k) == FIELDS[k].default)}


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
EXTRAS = ("schedule", "label_smoothing", "nesterov", "precision", "channels_last", "validation")
_TYPES = {name: {"str": str, "int": int, "float": float, "bool": bool, "tuple": tuple}[
    f.type.removeprefix("Optional[").rstrip("]")] for name, f in FIELDS.items()}  # from the annotations
CHOICES = {"profile": PROFILES, "recipe": tuple(RECIPES), "stem": ("imagenet", "cifar"),
           "device": ("auto", "cpu", "cuda"), "schedule": ("step", "onecycle", "cosine"), "precision": ("fp32", "bf16")}
# (parameters, the test a set value passes, the valid values in words), checked in this order
RANGES = [(("epochs", "step_size", "batch_size", "train_size", "test_size"), lambda v: v > 0, "a positive integer"),
          (("lr",), lambda v: v > 0, "a positive number"), (("weight_decay",), lambda v: v >= 0, "a number >= 0"),
          (("momentum", "gamma", "label_smoothing"), lambda v: 0 <= v <= 1, "a number in [0, 1]"),
          (("train_size", "test_size"), lambda v: v >= 10, "at least 10 (one image per class)")]


def _fail(name, value, valid):
    """Raise the ConfigError that names the parameter, its value and the valid choices."""
    raise ConfigError(f"parameter {name!r} = {value!r} is invalid; valid: {valid}")


def _check_type(name, value):
    """Raise ConfigError unless `value` is None or of the type the Config field `name` declares."""
    want = _TYPES[name]
    if value is not None and not (isinstance(value, (int, float) if want is float else want)
                                  and (want is bool or not isinstance(value, bool))):
        _fail(name, value, f"a value of type {want.__name__}")


def resolve_profile(profile: str = "auto") -> str:
    """Return the concrete profile: `auto` means $PROFILE if set, else full with CUDA and quick without."""
    env = os.environ.get("PROFILE", "").strip()
    for name, value in (("profile", profile), ("PROFILE (environment)", env or "auto")):
        if value not in PROFILES:
            _fail(name, value, " | ".join(PROFILES))
        if value != "auto":
            return value
    return "full" if torch.cuda.is_available() else "quick"


def make_config(profile: str = "auto", **params) -> Config:
    """Return a validated Config: the profile's defaults, overridden by every parameter not None."""
    if unknown := sorted(set(params) - set(FIELDS)):
        raise ConfigError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; valid: {', '.join(FIELDS)}")
    if isinstance(params.get("snapshot_epochs"), list):
        params["snapshot_epochs"] = tuple(params["snapshot_epochs"])
    for name, value in params.items():
        _check_type(name, value)
    concrete = resolve_profile(profile)
    values = dict(PROFILE_DEFAULTS[concrete])
    if params.get("recipe") == "fast":
        values.update(FAST_DEFAULTS, lr=FAST_LR.get(concrete, FAST_DEFAULTS["lr"]))
        if params.get("epochs") is None and concrete in FAST_EPOCHS:
            params = {**params, "epochs": FAST_EPOCHS[concrete]}
    if (e := params.get("epochs")) is not None:  # the report's shape: LR drop at 5/6, snapshots at 1/2, 5/6, end
        values.update(step_size=max(1, round(e * 5 / 6)),
                      snapshot_epochs=tuple(sorted({max(1, round(e * f)) for f in (0.5, 5 / 6, 1.0)})))
    values.update({k: v for k, v in params.items() if v is not None})
    values.setdefault("data_dir", os.environ.get("CIFAR10_DIR") or None)
    return Config(profile=concrete, **values)


def seed_list(seed: int = 0, seeds: int | None = None, profile: str = "auto") -> list[int]:
    """Return the seeds of an experiment's runs: `seeds` of them from `seed` (None: the profile's default)."""
    _check_type("seed", seed)
    seeds = PROFILE_SEEDS[resolve_profile(profile)] if seeds is None else seeds
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        _fail("seeds", seeds, "a positive integer (runs per experiment), or None for the profile's default")
    return list(range(seed, seed + seeds))


def with_seeds(cfg: Config, seeds: int | None = None) -> list[Config]:
    """Return one config per seed of the experiment `cfg` (seeds cfg.seed, cfg.seed+1, ...)."""
    return [dataclasses.replace(cfg, seed=s) for s in seed_list(cfg.seed, seeds, cfg.profile)]


# What changes training, in a name's order; what a profile scales is left out (one name at every scale)
NAMED_FIELDS = ("lr", "stem", "schedule", "label_smoothing", "nesterov", "momentum", "weight_decay", "gamma",
                "batch_size", "precision", "channels_last")


def experiment_name(cfg: Config) -> str:
    """Return the experiment's name: the recipe, then what the run sets apart from its profile's defaults for it."""
    own = make_config(cfg.profile, recipe=cfg.recipe, data_dir="synthetic")
    return ", ".join([cfg.recipe] + [f"{k} {getattr(cfg, k)}" for k in NAMED_FIELDS
                                     if getattr(cfg, k) != getattr(own, k)])


def scaled_report_epochs(cfg: Config) -> dict:
    """Return the report's 30/50/60 checkpoints mapped to this config's snapshot epochs."""
    return dict(zip((30, 50, 60), cfg.snapshot_epochs))
