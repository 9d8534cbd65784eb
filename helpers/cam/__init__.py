"""Class activation maps with pytorch-grad-cam: thin wrappers, honest about what a layer can show.

Modules (each imports only those before it): `wrappers` (methods, checkpoints, `compute_cams`, `BlankCamWarning`),
`faithfulness` (ROAD scores, tables, verdicts), `settings` (notebook 04's parameters), `layers` (map sizes, blank
maps), `figures` (grids, gallery, plot, explorer). `helpers` loads this package, and pytorch-grad-cam, on first use.
"""
from .wrappers import (CAM_LAYERS, CAM_METHODS, METHODS, REFERENCE_METHODS, BlankCamWarning, CamResult, Checkpoint,
                       checkpoint_from_run, compute_cams, layer_map_sizes, overlay, resolve_targets, to_rgb01)
from .faithfulness import faithfulness, faithfulness_conclusion, faithfulness_pivot, faithfulness_table, \
    faithfulness_verdicts
from .settings import CAM_DEFAULTS, CamSettings, cam_settings, cifar_stem_config, set_threads
from .layers import blank_note, blank_table, cam_layer_table, cam_summary
from .figures import (AXES, CamExplorer, cam_gallery, cam_grid, explorer_figure, frontend_is_live, pick_per_class,
                      plot_faithfulness, show_explorer)
