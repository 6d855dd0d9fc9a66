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
DEMO := build/demo
demo: $(READY)
	rm -rf $(DEMO) && mkdir -p $(DEMO) && cp examples/train.py $(DEMO)/
	cd $(DEMO) && git init -q && git add train.py \
		&& git -c user.name=demo -c user.email=demo@localhost commit -qm "demo project"
	cd $(DEMO) && $(CURDIR)/$(BIN)/python train.py --lr 0.05 --epochs 4
	cd $(DEMO) && $(CURDIR)/$(BIN)/python train.py --lr 0.5 --epochs 4
	cd $(DEMO) && $(CURDIR)/$(BIN)/trellis runs
	cd $(DEMO) && $(CURDIR)/$(BIN)/trellis dataframe acc

test: $(READY)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache build
