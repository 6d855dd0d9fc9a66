# Set-up is part of every target, so each works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
READY := $(VENV)/.installed

.PHONY: demo test bench clean

$(READY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# The demo project is a fresh git repository, so its store holds exactly the runs made here.
DEMO := build/document_segmentation
demo: $(READY)
	rm -rf $(DEMO) && mkdir -p $(DEMO) && cp examples/document_segmentation/* $(DEMO)/
	cd $(DEMO) && git init -q && git add -A \
		&& git -c user.name=demo -c user.email=demo@localhost commit -qm "document segmentation"
	$(MAKE) -C $(DEMO) loop PYTHON=$(CURDIR)/$(BIN)/python
	@echo
	@echo "Recorded in $(DEMO)/.trellis. Try, from $(DEMO) with $(BIN) on your PATH:"
	@echo "  trellis runs                      every stage, its make target and params"
	@echo "  trellis lineage model/model.npz   the model back to the raw documents and human labels"
	@echo "  trellis dataframe recall          recall per epoch of both training rounds"
	@echo "  make run PYTHON=python            the labelling page on http://127.0.0.1:8765"

test: $(READY)
	scripts/ensure-chromium
	$(BIN)/python -m pytest -q

# Side by side with FlorDB and MLflow (installed once into benchmarks/.peers/); a few minutes.
bench: $(READY)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/file_hashing.py

clean:
	rm -rf $(VENV) .pytest_cache build
