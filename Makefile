# The two commands: `make report` builds the book, `make test` runs the tests.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

TORCH       ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: install report test test-fast compute train-tiny clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# Pinned CPU build first: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

report: $(STAMP)
	$(PY) -m analysis report $(if $(PROFILE),--profile $(PROFILE))

compute: $(STAMP)
	$(PY) -m analysis compute $(if $(PROFILE),--profile $(PROFILE))

train-tiny: $(STAMP)
	$(PY) -m analysis train-tiny $(if $(PROFILE),--profile $(PROFILE))

# Everything that runs without a GPU, slow tests included (CI runs this).
test: $(STAMP)
	$(PY) -m pytest -m "not gpu" $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not gpu and not slow" $(PYTEST_ARGS)

clean:
	rm -rf _book _book-* _preview report/figures .quarto .jupyter_cache report/.jupyter_cache
