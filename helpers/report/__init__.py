"""`make report`: build (parameters, checks, the pipeline, its command line) → notebooks (papermill, reuse, the runs
each notebook shows, the HTML pages) → experiments (the study's rows) → landing (report/index.html); readme and course
render README.md's results and docs/course-report.md. `python -m helpers.report` runs build.main."""
from .notebooks import Executed, ReportError, clean_outputs, used_runs
from .experiments import experiment_rows, report_figure
from .build import (anchor_data_folder, build_report, check_data, coerce, find_notebooks, load_params_file, main,
                    parse_sets, plan_parameters)
