# The two commands a user needs: `make run` and `make test`. Both create .venv on first use and
# reinstall when a requirements file changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install bench clean

# The app's requirements and the test tools; the lab image installs the first only (REQUIREMENTS=requirements.txt).
REQUIREMENTS ?= requirements.txt requirements-dev.txt

$(STAMP): $(REQUIREMENTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q $(addprefix -r ,$(REQUIREMENTS))
	touch $(STAMP)

install: $(STAMP)

# The dashboard at http://localhost:8501 (listening on localhost only unless TRANSFERLAB_LISTEN_ADDRESS
# says otherwise), with one embedded worker (TRANSFERLAB_EMBEDDED_WORKER=0: none). Settings: backend/settings.py.
run: $(STAMP)
	$(VENV)/bin/streamlit run app.py $$($(PY) -m backend.settings streamlit-flags)

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -r bench/requirements.txt
	$(PY) bench/train.py
	$(PY) bench/sweep.py
	$(PY) bench/store.py
	$(PY) bench/probes.py
	$(PY) bench/fleet.py

clean:
	rm -rf $(VENV) var .pytest_cache
