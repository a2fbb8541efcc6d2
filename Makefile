# lwtui: `make demo` and `make test` on a fresh machine (see README.md).
# Every target that runs lwtui first runs scripts/bootstrap.sh, which installs
# what is missing and does nothing, quietly, when all is there.

PY := .venv/bin/python

# lwtui needs root; through sudo when we are not root and it is installed.
ifeq ($(shell id -u),0)
SUDO :=
else
SUDO := $(shell command -v sudo 2>/dev/null)
ifeq ($(SUDO),)
NOROOT := lwtui needs root (BPF programs, routes, namespaces) and sudo is not installed: run make as root
endif
endif

.PHONY: bootstrap test demo screenshots bench clean

bootstrap:
ifdef NOROOT
	@echo "make: $(NOROOT)" >&2; exit 1
endif
	@$(SUDO) scripts/bootstrap.sh $(BOOTSTRAP_ARGS)

# Three workers on any number of CPUs (many tests wait on packets and timers;
# tests/conftest.py says which are kept apart), then the few
# that must run with no other lwtui on the host.
test: bootstrap
	$(SUDO) $(PY) -m pytest -q -n 3 --dist loadgroup -m 'not alone' tests
	$(SUDO) $(PY) -m pytest -q -m alone tests

demo: bootstrap
	$(SUDO) .venv/bin/lwtui demo

screenshots: bootstrap
	$(SUDO) $(PY) scripts/screenshots.py

# iperf3 too; a target-specific variable reaches the bootstrap prerequisite.
bench: BOOTSTRAP_ARGS := --bench
bench: bootstrap
	$(SUDO) $(PY) -m bench

clean:
	$(SUDO) rm -rf .venv .pytest_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec $(SUDO) rm -rf {} +
