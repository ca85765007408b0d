# The two commands a user needs: `make run` and `make test`. Both create .venv on first use and
# reinstall when a requirements file changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# Until the dashboard lands: train a convnet on the bundled digits from the CLI.
run: $(STAMP)
	$(PY) -m backend train --data digits --epochs 10

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/train.py

clean:
	rm -rf $(VENV) var .pytest_cache
