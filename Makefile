# Set-up is part of every target, so each works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
READY := $(VENV)/.installed
# The demo needs only the core and the demo extra; the full set-up (READY) includes it.
DEMO_READY := $(VENV)/.demo-installed
# uv (from PyPI, into the venv) resolves and installs several times faster than pip.
UV := $(BIN)/uv
# The one JS bundle of the dashboard, the notebook widget and the HTML export: built by esbuild
# from frontend/ and the npm packages locked in package-lock.json, into the package (not committed).
BUNDLE := trellis/ui/static/trellis.js
SETUP := $(READY) $(BUNDLE)

.PHONY: setup demo test bench screenshots clean

# `make` alone: everything installed and the bundle built, as the UI's error message asks.
setup: $(SETUP)

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv

$(READY): pyproject.toml | $(UV)
	$(UV) pip install -q --python $(BIN)/python -e '.[dev]'
	touch $@ $(DEMO_READY)

$(DEMO_READY): pyproject.toml | $(UV)
	$(UV) pip install -q --python $(BIN)/python -e '.[demo]'
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

$(BUNDLE): node_modules/.package-lock.json $(wildcard frontend/*)
	npm run build

# The demo project is a fresh git repository, so its store holds exactly the runs made here.
DEMO := build/document_segmentation
# Two rounds of the loop (hand labels -> model; the app's confirmations -> a new model).
# The dashboard's bundle is not needed for it; `make` (setup) and `make test` build it.
demo: $(DEMO_READY)
	rm -rf $(DEMO) && mkdir -p $(DEMO) && cp examples/document_segmentation/* $(DEMO)/
	cd $(DEMO) && git init -q && git add -A \
		&& git -c user.name=demo -c user.email=demo@localhost commit -qm "document segmentation"
	TRELLIS_PROGRESS=0 $(MAKE) -C $(DEMO) demo PYTHON=$(CURDIR)/$(BIN)/python
	@echo
	@echo "Recorded in $(DEMO)/.trellis. Try, from $(DEMO) with $(BIN) on your PATH:"
	@echo "  trellis runs                      every stage, its make target and params"
	@echo "  trellis lineage model/model.npz   the model -> checkpoint -> round 2 -> human labels -> PDFs"
	@echo "  trellis dataframe val_recall      validation recall per epoch of both training rounds"
	@echo "  make run PYTHON=python            the labelling page on http://127.0.0.1:8765"
	@echo "  make PYTHON=python                after new labels: retrain, export and infer again"
	@echo "  trellis ui                        the dashboard (once its bundle is built: make $(BUNDLE))"

# The suite twice: on SQLite, then on a throwaway PostgreSQL server it starts and stops itself.
# TEST_WORKERS test processes share the tests (pytest-xdist); kernels and servers wait on I/O
# enough that two halve the time on two cores.
TEST_WORKERS ?= 2
test: $(SETUP)
	scripts/ensure-chromium
	scripts/ensure-postgresql
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --store=postgresql

# Side by side with FlorDB and MLflow (installed once into benchmarks/.peers/); a few minutes.
bench: $(SETUP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/file_hashing.py
	scripts/ensure-postgresql
	$(BIN)/python benchmarks/shared_store.py
	$(BIN)/python benchmarks/replay.py
	$(BIN)/python benchmarks/distributed_replay.py
	scripts/ensure-chromium
	$(BIN)/python benchmarks/ui_render.py

# The README's pictures of the dashboard, taken from a freshly recorded example project.
screenshots: $(SETUP)
	scripts/ensure-chromium
	$(BIN)/python scripts/screenshots.py docs

clean:
	rm -rf $(VENV) .pytest_cache build node_modules $(BUNDLE)
