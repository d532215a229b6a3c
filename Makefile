# `make run` and `make test` set everything up by themselves on a machine with Python 3.11+.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test chromium bench lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

# The demo operator submitted its cybersecurity test protocol to the National Bank on 4 May 2026, so its
# demo emission can be registered (REQ-60); a real operator sets the day it did.
run: $(STAMP)
	SECURITY_PROTOCOL_SUBMITTED_ON=$${SECURITY_PROTOCOL_SUBMITTED_ON:-2026-05-04} $(BIN)/dfa serve

# The JUnit results beside the proof suites' records let `dfa security-protocol` tell how every test ended.
test: $(STAMP) chromium
	$(BIN)/lint-imports
	$(BIN)/pytest --junitxml=test-artifacts/protocol/junit.xml

# The browser tests drive Debian's Chromium; installed with apt-get (as root, or with sudo) when missing.
chromium:
	@sh scripts/ensure-chromium

bench: $(STAMP)
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/chain_mirror.py
	$(BIN)/python bench/reconciliation.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis test-artifacts
