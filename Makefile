# MedSR: `make demo`, `make test`, `make bench`. Each sets up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/install_torch.sh scripts/install_browser.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	bash scripts/install_torch.sh $(PY)
	$(PY) -m pip install -q -e ".[test,data,web]"
	bash scripts/install_browser.sh
	bash scripts/install_orthanc.sh
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m ruff check MedSRExtension MedSRModule MedSRWeb Testing scripts
	$(PY) -m pytest -n 2 -q

bench: $(STAMP)
	$(PY) -m MedSRExtension bench --memory-slices 50,300
	$(PY) scripts/bench_worker.py
	$(PY) scripts/bench_batch.py

clean:
	rm -rf $(VENV) out
