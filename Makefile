# `make lab` (JupyterLab on the notebooks), `make report` (run the study, export HTML) and `make test`; each sets up .venv first.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PROFILE ?= auto
export PROFILE

.PHONY: setup test report clean-report reference

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[notebooks,test]"
	touch $@

setup: $(VENV)/.installed   ## create .venv and install the project with its extras

test: setup                 ## run unit tests, then nbval over the notebooks (smoke profile)
	$(PY) -m pytest --durations=15

# make lab: JupyterLab on notebooks/, this .venv's Python as the kernel, data and runs found as make report finds them.
#   make lab PORT=8890          another port (a busy one is reported and the next free one taken)
#   make lab PROFILE=smoke      the profile every notebook's profile="auto" takes
PORT ?= 8888
.PHONY: lab
lab: setup                  ## start JupyterLab on the notebooks (PORT=8888, PROFILE=auto|smoke|quick|full)
	$(PY) -m helpers.tools.lab --port $(PORT) $(LAB_ARGS)

# make report: check the data, execute notebooks/NN_*.ipynb with papermill, export report/index.html.
#   make report PROFILE=quick EPOCHS=5 LR=0.05    notebook parameters in upper case, on make's command line
#   make report PROFILE=full SEEDS=3              runs per experiment (notebook parameter `seeds`)
#   make report PARAMS=my.yaml                    a YAML file of parameters (name: value)
#   make report SET="fix_lr=0.4 seed=1"           any other notebook parameter
#   make report REPORT_DIR=/tmp/r RERUN=1         another output folder; execute every notebook again
REPORT_DIR ?= report
REPORT_VARS := EPOCHS STEP_SIZE LR FIX_LR MOMENTUM WEIGHT_DECAY GAMMA BATCH_SIZE SEED TRAIN_SIZE TEST_SIZE \
               DATA_DIR DEVICE STEM SNAPSHOT_EPOCHS SCHEDULE LABEL_SMOOTHING NESTEROV PRECISION CHANNELS_LAST SEEDS
lowercase = $(shell echo '$(1)' | tr A-Z a-z)
REPORT_ARGS = --profile $(PROFILE) --out $(REPORT_DIR) $(if $(PARAMS),--params-file $(PARAMS)) \
  $(foreach v,$(REPORT_VARS),$(if $(filter command line,$(origin $(v))),--set $(call lowercase,$(v))=$($(v)))) \
  $(foreach s,$(SET),--set $(s)) $(if $(RERUN),--rerun)

report: setup               ## run the study and export the HTML report (PROFILE=auto|smoke|quick|full)
	$(PY) -m helpers.tools.report $(REPORT_ARGS)

clean-report:               ## delete the generated report (keeps report/README.md, templates/, readme/ and reference/)
	find $(REPORT_DIR) -mindepth 1 -maxdepth 1 ! -name README.md ! -name templates ! -name readme ! -name reference \
	  -exec rm -rf {} +

# make reference PROFILE=quick: copy the run store's finished runs of that profile into report/reference/quick/
# (small files only; the store is $RUNS_DIR, else runs/), then render README.md's results table from
# report/reference/. ADD=1 keeps the runs already there.
reference: setup            ## write report/reference/$(PROFILE)/ from the run store, and README.md's results table
	$(PY) -m helpers.tools.reference write $(PROFILE) $(if $(ADD),--add)
	$(PY) -m helpers.tools.reference readme
