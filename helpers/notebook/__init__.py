"""The notebook layer: each notebook's figures, tables and verdicts, and CAM (helpers.notebook.cam).

`import helpers as h` gives every name below as `h.<name>`, with the names of the core the notebooks call.
"""
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

# Notebook 04's CAM names (and the module, h.cam) load helpers.notebook.cam, and with it pytorch-grad-cam, on first
# use, so other notebooks and `python -m helpers.tools.cam_bench` don't pay for it.
_CAM_NAMES = ("CAM_LAYERS", "CAM_METHODS", "BlankCamWarning", "CamExplorer", "Checkpoint", "blank_note", "blank_table",
              "cam_gallery", "cam_grid", "cam_summary", "cam_layer_table", "cam_settings", "checkpoint_from_run",
              "cifar_stem_config", "compute_cams", "explorer_figure", "faithfulness", "faithfulness_verdicts",
              "faithfulness_pivot", "faithfulness_table", "pick_per_class", "plot_faithfulness", "set_threads",
              "show_explorer")


def __getattr__(name):
    if name == "cam" or name in _CAM_NAMES:
        import importlib
        cam = importlib.import_module(".cam", __name__)
        return cam if name == "cam" else getattr(cam, name)
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")


__all__ = [n for n in dir() if not n.startswith("_")]
