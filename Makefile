# Two commands: `make demo` (the main job) and `make test` (the tests).
# Both create .venv on a fresh machine and are quick when it is already there.
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PACKAGES := treeworld_schema treeworld_sim spiral_controller tem_localizer treeworld_bringup
PACKAGE_FILES := $(foreach p,$(PACKAGES),src/$(p)/setup.py src/$(p)/package.xml)

# Fast DDS discovery stays on this machine; plots render headless.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export MPLBACKEND := Agg
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv test demo bench experiments clean

$(INSTALLED): requirements.txt $(PACKAGE_FILES)
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps \
		--no-build-isolation $(foreach p,$(PACKAGES),-e src/$(p))
	touch $@

venv: $(INSTALLED)

# Two files at a time (pytest-xdist; a file's module fixtures are built once), then, one at a
# time, the tests that load the CPU on purpose or time the graph against the wall clock.
test: $(INSTALLED)
	$(VENV)/bin/ruff check --no-cache src scripts conftest.py
	$(PYTHON) -m pytest -n 2 --dist loadfile -m "not exclusive" src
	$(PYTHON) -m pytest -m exclusive src

demo: $(INSTALLED)
	rm -rf runs/demo
	$(VENV)/bin/treeworld launch --controller circle --steps 1000 --action-noise 1.0 --gif --record --out runs/demo

experiments: $(INSTALLED)
	for name in spiral-memory spiral-no-memory circle-memory circle-noise \
		spiral-memory-affinity circle-memory-affinity circle-noise-affinity; do \
		$(VENV)/bin/treeworld experiment $$name --out docs/experiments/$$name || exit 1; \
	done

bench: $(INSTALLED)
	$(PYTHON) scripts/bench_simulator.py
	$(PYTHON) scripts/bench_graph.py
	$(VENV)/bin/treeworld bench speed --out docs/bench --lengths 1000 10000 36000 100000 \
		--tem2d-lengths 1000 10000 36000
	$(VENV)/bin/treeworld bench speed --out docs/bench/circle --soak-path circle \
		--lengths 1000 10000 36000 100000 --tem2d-lengths
	$(VENV)/bin/treeworld bench accuracy --out docs/bench
	$(VENV)/bin/treeworld bench forage --out docs/bench
	$(PYTHON) scripts/bench_long_run.py --out docs/bench

clean:
	rm -rf $(VENV) runs
