# qgis_insar_ml — build, test and demo targets. Every target sets itself up.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Debian 3.22's /usr/bin/qgis_process wrapper passes --noversioncheck, which 3.22 rejects:
# call the binary. Override on other systems: make demo QGIS_PROCESS=/path/to/qgis_process
QGIS_PROCESS ?= /usr/bin/qgis_process.bin
STAGE := build/plugins
PLUGIN := qgis_insar_ml
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := qgis python3-qgis python3-gdal gdal-bin python3-scipy python3-matplotlib python3-venv
PROFILE ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default
VERSION := $(shell sed -n 's/^version=//p' metadata.txt)
export QT_QPA_PLATFORM ?= offscreen
export QGIS_PLUGINPATH := $(CURDIR)/$(STAGE)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup test test-322 test-340 demo zip deploy stage bench clean screenshots

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-qt6.txt
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { \
	  echo "Installing Debian packages: $(APT_PACKAGES)"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(APT_PACKAGES); }
	@[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --upgrade --target $(VENV)/pyqt6 -r requirements-qt6.txt
	@touch $@

# A plugin folder made of links to the checkout, for qgis_process and manual runs.
stage:
	@mkdir -p $(STAGE)/$(PLUGIN)
	@for item in $(PLUGIN)/*; do ln -sfn "$(CURDIR)/$$item" "$(STAGE)/$(PLUGIN)/$$(basename $$item)"; done
	@for item in metadata.txt resources models; do ln -sfn "$(CURDIR)/$$item" "$(STAGE)/$(PLUGIN)/$$item"; done

# The suite on the system's QGIS (3.22 on Debian 12), then on QGIS 3.40 LTR unpacked from
# bookworm-backports into build/qgis340 (once, ~15 s), with the same .venv. The suite includes
# the Qt6 / QGIS 4 static checks (tests/test_qt6_compat.py).
test: test-322 test-340

test-322: setup stage
	$(PY) -m pytest tests -q

test-340: setup stage
	bash scripts/qgis340_env.sh $(PY) -m pytest tests -q

demo: setup stage
	$(PY) scripts/demo.py --qgis-process "$(QGIS_PROCESS)" --out out/demo

bench: setup stage
	$(PY) benchmarks/filters_throughput.py

# Every dialog in a real window, as PNGs in docs/screenshots/: under Xvfb when it is installed (or can be,
# with apt-get), else Qt's offscreen platform, which renders the same widgets.
screenshots: setup stage
	@command -v xvfb-run >/dev/null || $(SUDO) apt-get install -y -q xvfb >/dev/null 2>&1 || \
	  echo "Xvfb not available: rendering offscreen"
	@if command -v xvfb-run >/dev/null; then QT_QPA_PLATFORM=xcb xvfb-run -a $(PY) scripts/screenshots.py; \
	  else $(PY) scripts/screenshots.py; fi

zip: build/$(PLUGIN)-$(VERSION).zip

build/$(PLUGIN)-$(VERSION).zip: metadata.txt $(shell find $(PLUGIN) resources models -type f -not -name '*.pyc')
	@rm -rf build/zip && mkdir -p build/zip/$(PLUGIN)
	@cd $(PLUGIN) && find . -name '*.py' -print0 | xargs -0 -I{} cp --parents {} ../build/zip/$(PLUGIN)/
	@cp -r metadata.txt resources models build/zip/$(PLUGIN)/
	@cd build/zip && rm -f ../$(PLUGIN)-$(VERSION).zip && python3 -m zipfile -c ../$(PLUGIN)-$(VERSION).zip $(PLUGIN)
	@echo "Built $@ (Plugins ▸ Manage and Install Plugins ▸ Install from ZIP)"

deploy: zip
	@mkdir -p "$(PROFILE)/python/plugins"
	@rm -rf "$(PROFILE)/python/plugins/$(PLUGIN)"
	@cp -r build/zip/$(PLUGIN) "$(PROFILE)/python/plugins/"
	@echo "Installed into $(PROFILE)/python/plugins/$(PLUGIN); enable it in Plugins ▸ Manage and Install Plugins."

clean:
	rm -rf build out .pytest_cache
