"""Class activation maps with pytorch-grad-cam: thin wrappers, honest about what a layer can show.

One module per job; imports run only downward (a module imports only those above it in this list):

- `wrappers`: the library's methods, checkpoints to explain, `compute_cams` (batched, one target per
  image, hooks removed after use) and `BlankCamWarning` for a layer whose map is 1x1;
- `layers`: each layer's map size per model, and how many CAMs come out blank (uses wrappers);
- `faithfulness`: the ROAD study, its tables and the conclusions rendered from them (uses wrappers);
- `settings`: notebook 04's validated parameters and its CIFAR-stem config (uses wrappers, faithfulness);
- `figures`: overlay grids, a gallery and the faithfulness plot (uses wrappers);
- `explorer`: the ipywidgets explorer with a static stand-in for exported HTML (uses figures, wrappers);
- `bench`: `python -m helpers.cam`, a GradCAM timing benchmark (uses wrappers, settings).

`helpers` loads this package, and with it pytorch-grad-cam, only when a notebook first asks for a CAM name.
"""
from .wrappers import (CAM_LAYERS, CAM_METHODS, METHODS, REFERENCE_METHODS, SCORECAM_BATCH, BlankCamWarning,
                       CamResult, Checkpoint, as_checkpoint, check_layer, check_method, checkpoint_from_run,
                       compute_cams, epoch_accuracy, layer_map_sizes, model_device, model_input, overlay,
                       resolve_targets, to_rgb01)
from .layers import blank_note, blank_table, cam_layer_note, cam_layer_table, cam_summary
from .faithfulness import (ROAD_PERCENTILES, compare_note, faithfulness, faithfulness_conclusion, faithfulness_pivot,
                           faithfulness_table)
from .settings import CAM_DEFAULTS, CamSettings, cam_settings, cifar_stem_config, set_threads
from .figures import AXES, cam_gallery, cam_grid, pick_per_class, plot_faithfulness
from .explorer import CamExplorer, explorer_figure, frontend_is_live, show_explorer
from .bench import benchmark

__all__ = [n for n in dir() if not n.startswith("_")]
