"""helpers: the logic behind the notebooks — data, recipes, model, training, run store, CAM, plots.

Notebooks import this one module (`import helpers as h`) and call the names below.
"""
from .config import PROFILES, Config, ConfigError, make_config, resolve_profile, scaled_report_epochs
from .data import CLASSES, Cifar10, DataError, channel_stats, load_cifar10
from .models import build_model, stage_shapes
from .recipes import CIFAR10_MEAN, CIFAR10_STD, RECIPES, Recipe, augment_batch, get_recipe
from .runs import CorruptRunError, Run, load_run, runs_root, runs_summary
from .train import evaluate, resolve_device, train_run

__all__ = [n for n in dir() if not n.startswith("_")]
