# Two commands set everything up (README): `make reproduce` and `make test`.
# Both create .venv from requirements.lock (exact pins) the first time.

VENV   ?= .venv
PYTHON ?= python3
CORES  ?= all
BIN    := $(VENV)/bin
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install reproduce test test-cluster report pull push lint clean release-model

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

## The whole study on the embedded default data, then the HTML report.
reproduce: install
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report report.html

## The linters (configured in pyproject.toml), then every test (unit tests, the DVC round trip
## and the smoke workflow).
test: install lint
	$(BIN)/python -m pytest

## The smoke study through SLURM (a one-node cluster on this machine, scripts/cluster.sh) and
## locally; their tables must be equal. Starts the cluster if needed (installing slurm-wlm and
## munge where it is root); skips with the reason where it cannot. docs/cluster.md.
test-cluster: install
	@scripts/cluster.sh start; rc=$$?; \
	if [ $$rc -eq 3 ]; then echo "test-cluster: SKIPPED (no SLURM cluster can run here; reason above)"; exit 0; fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; \
	WEAKLOC_CLUSTER_TESTS=1 $(BIN)/python -m pytest tests/test_cluster.py -v -s -rs

## The released model's candidate (configs/release.yaml), trained once and compared on its validation
## split with the model that ships now (docs/model-card.md). Not part of the study.
RELEASE ?= release
release-model: install
	scripts/train_release.sh $(RELEASE)

report: install
	$(BIN)/snakemake --report report.html

## DVC: save prepared data and checkpoints to the remote / restore them without recomputing.
push: install
	$(BIN)/dvc commit --force
	$(BIN)/dvc push

pull: install
	$(BIN)/dvc pull
	$(BIN)/snakemake --cores 1 --touch models

## ruff on the Python, snakefmt on the rules (both configured in pyproject.toml).
lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow/rules

clean:
	rm -rf results logs .snakemake report.html
