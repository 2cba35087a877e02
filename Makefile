# Two commands for a fresh machine:  make book  |  make test
# Both create .venv when missing and install the pinned set (torch first, kept by a constraints file).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
REQS := requirements/torch.txt requirements/constraints.txt requirements/dev.txt pyproject.toml
STAMP := $(VENV)/.installed-$(shell cat $(REQS) | sha256sum | cut -c1-12)
export TF_CPP_MIN_LOG_LEVEL := 3
# OpenMP threads that spin while waiting starve each other when two test workers (or a notebook kernel and a
# worker) share the 2 cores: one torch training epoch measured 13 s instead of 0.9 s. Passive waiting costs
# little alone (0.76 s against 0.62 s) and keeps parallel runs usable.
export OMP_WAIT_POLICY ?= PASSIVE
# Models that are not shipped (mlp_wide) train once into this cache; inside the checkout keeps runs hermetic.
export COMPRESSLIB_CACHE ?= $(CURDIR)/.cache/compresslib

.PHONY: install test book browser bench clean

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
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25 tests notebooks --doctest-modules compresslib \
		--nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "open _build/html/index.html"

# The book as a reader sees it: every page in headless Chromium (Debian's chromium; `make test` runs it too).
browser: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_browser.py
	@echo "screenshots of every page: _build/screenshots/"

bench: $(STAMP)
	mkdir -p bench/results
	for s in bench/*.py; do [ "$$(basename $$s)" = common.py ] || $(BIN)/python $$s --json bench/results/$$(basename $$s .py).json; done

clean:
	rm -rf _build
