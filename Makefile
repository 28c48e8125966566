# vihtr: `make help` lists the targets. Every target that needs Python depends on the venv, so a fresh clone works.
PY        ?= python3
VENV      ?= .venv
BIN       := $(VENV)/bin
export NO_ALBUMENTATIONS_UPDATE := 1
export WANDB_MODE ?= offline
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help
.PHONY: help install lm data folds gpu-wheels train train-cpu predict test test-full lint format bench app clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/activate: requirements/*.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements/dev.txt
	$(BIN)/pip install -q --no-deps -r requirements/nodeps.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(BIN)/activate

install: $(BIN)/activate ## create the venv and install pinned dependencies (idempotent)

folds: install ## write the 5 writer-grouped folds to data/folds/
	$(BIN)/python scripts/make_folds.py kalapa vnondb

gpu-wheels: install ## wheels a lent GPU machine lacks, into .whl/ (README: Training on a GPU)
	scripts/gpu_wheels.sh

lm: install ## rebuild the address and prose LMs (src/vihtr/assets/lm/, ~2 min; the prose text needs apt-get for libreoffice-help-vi)
	$(BIN)/python scripts/build_lm.py

data: install folds ## write a seeded synthetic set + contact sheets to data/synth/
	$(BIN)/python scripts/make_data.py

train: install folds ## train the shipped default's recipe (experiment=lite1_ctc; ARGS="backbone=b2 stage=pretrain" for the B1/B2 design)
	$(BIN)/python src/train.py $(or $(ARGS),experiment=lite1_ctc)

train-cpu: install folds ## the CPU-sized experiment (about an hour on 2 cores)
	$(BIN)/python src/train.py experiment=cpu_small $(ARGS)

predict: install ## read a folder with the shipped models (IMAGES=dir, OUT=predictions.csv)
	$(BIN)/vihtr predict $(or $(IMAGES),../shared/data/kalapa2023/public_test) -o $(or $(OUT),predictions.csv)

test: install ## the fast test suite (what CI runs)
	$(BIN)/python -m pytest -q -x -rs --timeout=600 tests

test-full: install ## every test, the slow ones too
	$(BIN)/python -m pytest -q -m "" --timeout=1800 tests

lint: install ## ruff
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

format: install ## ruff format + fixes
	$(BIN)/ruff format src tests scripts
	$(BIN)/ruff check --fix src tests scripts

bench: install ## CPU speed/memory of the default and the fast model (2 threads) into models/bench.json, which the docs quote
	$(BIN)/python scripts/bench.py --models $(or $(MODELS),models/vihtr-lite1 models/extra/vihtr-lite1-fast) --out $(or $(OUT),models/bench.json)

app: install ## start the web app on http://127.0.0.1:8000 (HOST=, PORT=)
	$(BIN)/python -m vihtr.app --host $(or $(HOST),127.0.0.1) --port $(or $(PORT),8000)

clean: ## remove caches and run outputs (keeps the venv and data/)
	rm -rf .pytest_cache .ruff_cache logs outputs multirun wandb lightning_logs
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
