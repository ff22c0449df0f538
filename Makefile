# Set-up and the two entry points of README.md: `make demo` and `make test`.
# Each creates its own virtual environment, installs the Python packages and the Debian text packages
# (apt-get, as root or through sudo), then runs.

VENV ?= .venv
PYTHON ?= python3
# The CPU build of torch 2.13 lies on this machine's disk (PIP_FIND_LINKS); a GPU machine keeps its own.
TORCH_SPEC ?= torch==2.13.0
DEBIAN_PACKAGES = iso-codes debian-handbook installation-guide-amd64 \
	manpages-de manpages-fr manpages-ru manpages-ja manpages-zh manpages-es manpages-pl manpages-uk \
	fortunes fortunes-de fortunes-ru fortunes-zh
PYTEST_ARGS ?=

BIN = $(VENV)/bin

.PHONY: demo test benchmark lint debian-packages clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -P -m pip install -q --upgrade pip
	$(BIN)/python -P -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -P -m pip install -q -e ".[test,demo,plot]"
	touch $@

debian-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: $(BIN)/.installed debian-packages
	$(BIN)/polysparse demo

test: $(BIN)/.installed debian-packages
	POLYSPARSE_REQUIRE_DEBIAN_TEXT=1 POLYSPARSE_SLOW_TESTS=1 $(BIN)/python -P -m pytest -q $(PYTEST_ARGS)

# The CPU prune path's hot functions (tests/benchmarks) timed and saved under bench/results/benchmarks/,
# compared with the last run saved there (a report: no timing fails the run). One thread, for steadier numbers.
BENCHMARK_ARGS ?=
benchmark: $(BIN)/.installed
	OMP_NUM_THREADS=1 $(BIN)/python -P -m pytest -q tests/benchmarks --benchmark-enable \
		--benchmark-storage=bench/results/benchmarks --benchmark-compare --benchmark-save=cpu-prune-path \
		--benchmark-columns=min,median,iqr,rounds --benchmark-sort=fullname $(BENCHMARK_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) polysparse-demo .pytest_cache
