"""The notebook layer: each notebook's figures, tables and verdicts, and CAM (helpers.notebook.cam, loaded on first
use so that other notebooks and `python -m helpers.tools.cam_bench` do not pay for it). `h.<name>` gives these names."""
from helpers.core.config import (ConfigError, experiment_name, make_config, resolve_profile, scaled_report_epochs,
                                 seed_list, with_seeds)
from helpers.core.data import CLASSES, channel_stats, check_data, load_cifar10
from helpers.core.models import build_model, stage_shapes
from helpers.core.recipes import CIFAR10_MEAN, CIFAR10_STD, augment_batch
from helpers.core.runs import load_run, records
from helpers.core.train import evaluate, train_run
from helpers.core.sweep import train_many
from helpers.core.stats import Verdict, spread, verdict_frame, verdict_markdown
from .plots import (augmentation_draws, augmentation_gallery, compare_bars, plot_channel_stats, plot_confusion,
                    plot_curves, plot_metric, plot_per_class, plot_runs, plot_stage_shapes, sample_grid, sample_images)
from .results import (REPORT_NORMALIZE, REPORT_PROTOCOL, REPORT_TEST_ACC, comparability, final_spread, group_runs,
                      is_comparable, judge, profile_note, reference_sd, run_note, runs_table, seed_columns, style_table,
                      variant, verdict_note)
from .baseline import accuracy_table, baseline_verdicts, checkpoints_table, per_class_note, stage_note, stage_table
from .augmentations import recipe_forms, recipe_table, recipe_verdicts
from .normalization import (FullScale, NormalizationStudy, channel_stats_note, channel_stats_table, evaluation_table,
                            full_scale_table, full_scale_verdicts, input_ranges, normalization_table,
                            normalization_verdicts, raw_history, scored)
from .normalization import experiments as normalization_experiments
from .faster import default_validation, plot_speed, speed_table, speed_verdicts


def __getattr__(name):
    """Return a name of helpers.notebook.cam (or the module, `cam`), loading it and pytorch-grad-cam on first use."""
    if not name.startswith("_"):
        import importlib
        cam = importlib.import_module(".cam", __name__)
        if name == "cam" or name in vars(cam):
            return cam if name == "cam" else vars(cam)[name]
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")


__all__ = [n for n in dir() if not n.startswith("_")]
