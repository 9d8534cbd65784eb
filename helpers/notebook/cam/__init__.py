"""Class activation maps with pytorch-grad-cam, loaded on first use; evidence and figures build on wrappers."""
from helpers.notebook.cam.wrappers import (CAM_DEFAULTS, CAM_LAYERS, CAM_METHODS, METHODS, REFERENCE_METHODS,
                                           BlankCamWarning, CamResult, Checkpoint, cam_settings, checkpoint_from_run,
                                           cifar_stem_config, compute_cams, layer_map_sizes, resolve_targets,
                                           set_threads, to_rgb01)
from helpers.notebook.cam.evidence import (blank_note, blank_table, cam_layer_table, cam_summary, faithfulness,
                                           faithfulness_pivot, faithfulness_table, faithfulness_verdicts)
from helpers.notebook.cam.figures import (AXES, CamExplorer, cam_gallery, cam_grid, explorer_figure,
                                          frontend_is_live, pick_per_class, plot_faithfulness, show_explorer)
