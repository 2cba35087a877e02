# Two commands for a fresh machine:  make book  |  make test
# Both create .venv when missing and install the pinned set (torch first, kept by a constraints file).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
REQS := requirements/torch.txt requirements/constraints.txt requirements/dev.txt pyproject.toml
STAMP := $(VENV)/.installed-$(shell cat $(REQS) | sha256sum | cut -c1-12)
export TF_CPP_MIN_LOG_LEVEL := 3
# Models that are not shipped (mlp_wide) train once into this cache; inside the checkout keeps runs hermetic.
export COMPRESSLIB_CACHE ?= $(CURDIR)/.cache/compresslib

.PHONY: install test book bench clean

install: $(STAMP)

$(STAMP): $(REQS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements/torch.txt
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -r requirements/dev.txt
	$(BIN)/python -m pip install -q -c requirements/constraints.txt --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	rm -f $(VENV)/.installed-* && touch $@

test: $(STAMP)
	$(BIN)/python -m pytest -q tests notebooks \
		--doctest-modules compresslib/configs.py compresslib/report.py compresslib/datasets.py \
		compresslib/_dispatch.py compresslib/core compresslib/torch/io.py compresslib/torch/train.py compresslib/keras/train.py \
		compresslib/torch/pruning.py compresslib/keras/pruning.py compresslib/keras/graph.py \
		compresslib/torch/layers.py compresslib/torch/lowrank.py compresslib/keras/lowrank.py compresslib/torch/fold.py compresslib/keras/fold.py \
		compresslib/torch/quantization.py compresslib/keras/quantization.py \
		compresslib/pipeline.py compresslib/torch/sharing.py compresslib/keras/sharing.py \
		--nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "open _build/html/index.html"

bench: $(STAMP)
	mkdir -p bench/results
	for s in bench/*.py; do [ "$$(basename $$s)" = common.py ] || $(BIN)/python $$s --json bench/results/$$(basename $$s .py).json; done

clean:
	rm -rf _build
