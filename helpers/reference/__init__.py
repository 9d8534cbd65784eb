"""Reference runs kept inside the project: report/reference/<profile>/<run>/ holds a finished run's small files.

Each run folder holds only config.json, history.csv, metrics.json and env.json (never checkpoints), and each
profile folder a README.md giving every run's command, device, commit and date. A run is "current" when its
stored run id is the one today's code computes from its stored config and data identity; otherwise it is from
an older version of the project: listed as such, and left out of every spread unless asked for.

    python -m helpers.reference write quick            # copy the run store's quick runs in (make reference)
    python -m helpers.reference readme                 # render README.md's table and the docs pages' from them
    python -m helpers.reference show full              # list a profile's runs with their provenance
"""
from .provenance import CURRENT, current_run_id, experiment_key, provenance, stored_config
from .folder import (REFERENCE_DIR, ReferenceMissingError, counterpart, profile_dir, profiles, reference_matches,
                     reference_runs, reference_spread, scores)
from .write import RUN_FILES, folder_name, replace_block, run_command, runs_table, store_runs, write_reference
