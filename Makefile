# groot-jax: `make demo` and `make test` build .venv from nothing (torch first, as the CPU wheel).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q --disable-pip-version-check
TPU_AOT := .tpu-aot
REF := .venv-ref
LEROBOT_WRITER := .venv-lerobot
# lerobot 0.6.1's N1.7 (Python 3.12, ~5 GB CUDA torch): cached outside the clone, keyed by its recipe.
REF17 := $(or $(GROOT_N17_REF),$(HOME)/.cache/groot-jax/n17-ref-$(shell sha256sum tests/reference/n17/install.sh | cut -c1-12))
PYTEST_ARGS ?=

.PHONY: demo test parity slow lint clean-venv tpu-aot n17-ref

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'
	touch $@

# libtpu, only for compiling TPU programs ahead of time on this CPU machine (`groot-jax train
# --dry-run --tpu v5e:1x1`); outside .venv because an importable libtpu makes every JAX start try
# to open a TPU. The version is the one jax[tpu]==0.10.2 pins.
$(TPU_AOT)/.installed: $(VENV)/.installed
	$(PIP) install --no-deps --target $(TPU_AOT) 'libtpu==0.0.42.*'
	touch $@

tpu-aot: $(TPU_AOT)/.installed

# The PyTorch reference (lerobot 0.5.1's GR00T N1.5) lives in its own environment.
$(REF)/.installed: tests/reference/install.sh
	bash tests/reference/install.sh $(REF)

# lerobot 0.6.1's GR00T N1.7, the N1.7 parity reference (tests/parity/reference_env.py finds it).
# Order-only: the directory name already encodes the recipe (a fresh clone has newer mtimes).
$(REF17)/.installed: | tests/reference/n17/install.sh
	bash tests/reference/n17/install.sh $(REF17)

n17-ref: $(REF17)/.installed

# lerobot 0.4.4 (writes LeRobot v3.0): the data tests build their v3.0 fixture with it.
$(LEROBOT_WRITER)/.installed: tests/data/install_lerobot_writer.sh
	bash tests/data/install_lerobot_writer.sh $(LEROBOT_WRITER)

# The CPU main job, the user path at CPU size (groot_jax/demo.py): write a LeRobot v3.0 dataset
# -> groot-jax train -> eval open-loop vs the mean-action baseline -> convert export -> serve.
demo: $(VENV)/.installed
	rm -rf runs/demo
	$(PY) -m groot_jax.demo runs/demo

test: $(VENV)/.installed $(TPU_AOT)/.installed $(REF)/.installed $(REF17)/.installed $(LEROBOT_WRITER)/.installed
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

parity: $(VENV)/.installed $(REF)/.installed $(REF17)/.installed
	$(PY) -m pytest -m parity $(PYTEST_ARGS)

slow: $(VENV)/.installed $(TPU_AOT)/.installed $(REF)/.installed $(REF17)/.installed
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check groot_jax tests

clean-venv:
	rm -rf $(VENV) $(REF) $(LEROBOT_WRITER) $(TPU_AOT)
