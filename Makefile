# Two commands for a fresh machine:
#   make demo   - set everything up and deploy the two demo tenants (CPU build of vLLM)
#   make test   - everything CI runs: lint, unit, LUKS on loop devices, e2e, the Locust
#                 scenarios and their planted break, the multi-host stage (two hosts over
#                 SSH: their suite, testinfra and its planted breaks), Molecule, LUKS VM;
#                 the stages and jobs are declared in scripts/ci.py (STAGES)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INVENTORY ?= inventory/local
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv docker demo deploy smoke plan usage lint unit volume volume-vm molecule e2e test bench loadtest \
  loadtest-short loadtest-planted loadtest-short-planted scenarios loadtests multihost-bringup \
  multihost-checks check docker-test loadtests-untimed \
  test-infra test-infra-planted test-gpu bench-verbs bench-monitoring device-check device-pack images-export multihost \
  multihost-up multihost-down test-multihost multihost-stage gateway

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/ansible-playbook: requirements.txt
	@if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
	  echo "installing python3-venv"; apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

# The shared test and tooling library (tests/lib: tenancy_inventory, checks, ...) on the
# virtualenv's path, so scripts, load tests and suites import it without editing sys.path.
# Written on every `make venv` (cheap), so a virtualenv copied from another checkout
# points at this one.
venv: $(BIN)/ansible-playbook ## Create the virtualenv with the pinned tools
	@echo "$(CURDIR)/tests/lib" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tenancy-lib.pth"

docker: venv ## Install and start the Docker engine with the docker role (playbooks/host.yml --tags docker)
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/host.yml --tags docker $(DOCKER_ARGS)

# `make test` owns the test machine's Docker daemon, as the docker role does on a GPU host
# (roles/docker/defaults/main.yml): ports published through the kernel's NAT, not a
# docker-proxy process that no tenant's cpuset holds (the front_door scenario measures
# it), and containers kept across a daemon restart. The demo inventory leaves a laptop's
# daemon.json alone (inventory/local/group_vars/all/docker.yml); the keys set here stay.
TEST_DOCKER_ARGS := -e @tests/docker-daemon.yml

deploy: venv docker ## Build images, generate the tiny model, converge the tenants (site.yml)
	$(BIN)/ansible-playbook -i $(INVENTORY) site.yml

smoke: venv ## Chat with every tenant through its gateway and print the table
	$(BIN)/python scripts/tenancy_smoke.py --inventory $(INVENTORY)

demo: deploy smoke ## The main job: deploy the demo tenants, then prove they answer

usage: venv ## Usage per tenant over the last SINCE (default 24h) from each host's Prometheus; chart in tenants-usage.svg
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/tenants-usage.yml -e since=$(or $(SINCE),24h)

plan: venv ## Print the plan without changing anything
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/plan.yml

lint: venv ## ruff, yamllint, ansible-lint (production profile) and a syntax check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint -s .
	$(BIN)/python scripts/gen_docs.py --check
	$(BIN)/ansible-lint --offline
	$(BIN)/ansible-playbook -i $(INVENTORY) --syntax-check site.yml playbooks/plan.yml playbooks/host.yml playbooks/tenant-add.yml \
	  playbooks/tenant-update.yml playbooks/tenant-remove.yml playbooks/rotate-keys.yml playbooks/tenants-list.yml \
	  playbooks/tenants-usage.yml playbooks/tenant-cert.yml

unit: venv ## Unit tests of the planner filter
	$(BIN)/pytest -q tests/unit --durations=5

# Side by side: each is one busy process, and the machine has two cores. Output whole
# per target; a failure in either fails check (the other finishes first).
check: venv ## The fast tier: lint and unit tests, side by side (a few minutes; make test starts with it)
	$(MAKE) --no-print-directory -j2 --output-sync=target lint unit

volume: venv ## The tenant role's LUKS header, key, rotation and erase tasks on loop devices
	$(BIN)/pytest -v tests/volume --durations=10

gateway: venv docker ## The gateway's HAProxy (its image, the template's resolvers) through a DNS outage and NXDOMAIN (tests/gateway)
	$(BIN)/pytest -v tests/gateway --durations=5

volume-vm: venv ## LUKS volumes on a real kernel: Molecule scenario in a qemu VM (roles/tenant/molecule/volume_vm)
	cd roles/tenant && molecule test -s volume_vm

# The Docker-in-Docker instances are built from the local base image (the images role
# builds it: make deploy, or images-export in `make test`, which runs Molecule after it).
molecule: venv docker ## Molecule scenarios of the host roles (docker: Docker-in-Docker; toolkit: repo only; driver: check mode)
	cd roles/docker && molecule test
	cd roles/nvidia_container_toolkit && molecule test -s repo_only
	cd roles/nvidia_driver && molecule test -s check_mode

# The host roles' Molecule scenarios and the LUKS VM side by side: neither measures time,
# and they share nothing (Docker-in-Docker instances; a qemu VM). Each one's output is
# printed whole when it ends.
scenarios: venv docker ## molecule and volume-vm at once (make -j2)
	$(MAKE) --no-print-directory -j2 --output-sync=target molecule volume-vm

test-gpu: venv ## On a GPU host, after site.yml: MIG slices per tenant, NVML memory within quota (tests/gpu)
	TENANCY_INVENTORY=$(INVENTORY) $(BIN)/pytest -v -rsP tests/gpu

# A GPU machine with only a driver, nvidia-ml-py and PyTorch (no Docker, no vLLM, no
# network): the system python3, no venv. See scripts/device_check.py for what it writes.
# ansible-core (pure Python) makes it also record the facts module's answer and the
# plans: `make device-pack` here copies it to .device/site, which travels with the tree.
DEVICE_OUT ?= reports/device
DEVICE_SITE := .device/site
device-check: ## On a bare GPU machine: record NVML facts, torch vs NVML totals, the CUDA context overhead, MPS limits and the plans into DEVICE_OUT
	PYTHONPATH=$(CURDIR)/$(DEVICE_SITE)$${PYTHONPATH:+:$$PYTHONPATH} python3 scripts/device_check.py --out $(DEVICE_OUT)

device-pack: venv ## Copy ansible-core (pure Python) into .device/site for make device-check on a machine without it
	rm -rf $(DEVICE_SITE) && mkdir -p $(DEVICE_SITE)
	site=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  cp -r $$site/ansible $$site/ansible_core-*.dist-info $$site/resolvelib $$site/resolvelib-*.dist-info $(DEVICE_SITE)/
	find $(DEVICE_SITE) -name __pycache__ -prune -exec rm -rf {} +

e2e: venv docker ## Deploy the demo tenants and test them end to end
	$(BIN)/pytest -v tests/e2e --durations=15

# `make test` is scripts/ci.py: its STAGES table says what runs, in what order and what
# side by side (two lanes in the suites stage: the machine has two cores), and each job
# is one of the targets in this file. It prints each stage's and job's time against CI's
# budget (50 minutes cold) and the figures in docs/benchmarks.md ("CI times"), keeps each
# job's output in reports/jobs/JOB.log and, when a job fails, ends with
# scripts/why_failed.py's excerpt of its log (CI keeps only the tail of the output).
# One job alone: make test ONLY=e2e (or scripts/ci.py --only e2e); all: scripts/ci.py --list.
test: venv ## Everything CI runs (scripts/ci.py: the stages and jobs declared); ONLY=job[,job] runs just those
	$(BIN)/python scripts/ci.py $(if $(ONLY),--only $(ONLY))

docker-test: venv ## Docker as make test owns it (tests/docker-daemon.yml: kernel NAT, live-restore)
	$(MAKE) --no-print-directory docker DOCKER_ARGS='$(TEST_DOCKER_ARGS)'

# Multi-host: two Debian 12 hosts in system containers, reached only over SSH
# (tests/multihost/README.md). The controller builds the images once and ships them as
# archives (images_source: archive).
MULTIHOST := inventory/multihost
images-export: venv docker ## Build the images on this controller and save them as archives for inventory/multihost
	time $(BIN)/ansible-playbook -i $(MULTIHOST) playbooks/images-export.yml

multihost-up: venv docker images-export ## Start the two multi-host test hosts (sshd only; the roles install the rest)
	time $(BIN)/ansible-playbook tests/multihost/up.yml

multihost: venv docker images-export ## Start the multi-host test hosts and converge inventory/multihost over SSH (site.yml)
	$(MAKE) --no-print-directory multihost-bringup

# up.yml and the converge, assuming the archives exist (make multihost, make test).
# The first converge over SSH is one of CI's longest steps (about 10 minutes): a time
# stamp per task and the slowest tasks at its end say where it goes.
multihost-bringup: venv
	time $(BIN)/ansible-playbook tests/multihost/up.yml
	time ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks $(BIN)/ansible-playbook -i $(MULTIHOST) site.yml

test-multihost: venv ## Test the converged multi-host inventory from the controller (tests/multihost)
	TENANCY_MULTIHOST=1 TENANCY_INVENTORY=$(MULTIHOST) $(BIN)/pytest -v tests/multihost --durations=15

multihost-down: venv ## Remove the multi-host test hosts and everything they left on this machine
	$(BIN)/ansible-playbook tests/multihost/down.yml

# One multi-host deployment serves the multi-host suite, the testinfra suite and its
# planted breaks.
multihost-checks: venv ## On the converged multi-host hosts: test-multihost, test-infra and its planted breaks
	time $(MAKE) --no-print-directory test-multihost
	time $(MAKE) --no-print-directory test-infra INVENTORY=$(MULTIHOST)
	time $(MAKE) --no-print-directory test-infra-planted INVENTORY=$(MULTIHOST)

multihost-stage: multihost ## make multihost, multihost-checks, multihost-down
	$(MAKE) --no-print-directory multihost-checks
	$(MAKE) --no-print-directory multihost-down

# The timed Locust scenarios and their planted break, alone (on the tenants e2e leaves
# deployed), with the multi-host test hosts paused if any are up: the freezer stops their
# engines' idle polling. The untimed ones (they count: rotation, rate_limit) run in the
# suites stage beside other jobs (loadtests-untimed).
loadtests: venv ## The short timed Locust scenarios and the planted break, with the multi-host test hosts paused
	tests/hold-containers.sh pause tenancy.multihost=true \
	  $(BIN)/python loadtests/run.py --short --planted --only timed --inventory $(INVENTORY) all

loadtests-untimed: venv ## The short Locust scenarios that count, not time (rotation, rate_limit), on the deployed tenants
	$(BIN)/python loadtests/run.py --short --only untimed --inventory $(INVENTORY) all

# Scenarios: qps noisy_neighbour oom rotation chaos rate_limit front_door, or all (loadtests/README.md);
# noisy_images (a flood of big pictures on the image tenant) runs only when named.
# qps, noisy_neighbour and oom run with rpm_limit lifted and converge it back afterwards.
SCENARIO ?= qps
loadtest: venv ## Run a Locust scenario, full length, against the deployed tenants (SCENARIO=qps|...|all)
	$(BIN)/python loadtests/run.py --inventory $(INVENTORY) $(SCENARIO)

loadtest-short: venv ## Short versions of every Locust scenario (thresholds enforced; about 13 minutes)
	$(BIN)/python loadtests/run.py --short --inventory $(INVENTORY) all

PLANTED ?= noisy_neighbour
loadtest-planted: venv ## Prove a scenario catches its planted break (PLANTED=noisy_neighbour: engines sharing a core; front_door: a gateway on the victim's cores)
	$(BIN)/python loadtests/run.py --planted $(PLANTED) --inventory $(INVENTORY)

loadtest-short-planted: venv ## loadtest-short, then the planted break in the same lifted-limit window
	$(BIN)/python loadtests/run.py --short --planted --inventory $(INVENTORY) all

test-infra: venv ## testinfra checks of the deployed tenants: isolation, hardening, secrets, volumes
	TENANCY_INVENTORY=$(INVENTORY) $(BIN)/pytest -v tests/infra --durations=10

test-infra-planted: venv ## Prove that every tests/infra check catches a planted break
	TENANCY_INVENTORY=$(INVENTORY) $(BIN)/python tests/infra/plant_breaks.py

# The benchmark sends far more than the demo's rpm_limit, so it lifts the limit for its
# run (tenancy_tenant_overrides) and puts the inventory's own limits back afterwards.
bench: venv docker ## Gateway overhead and converge benchmarks (results: docs/benchmarks.md)
	$(BIN)/ansible-playbook -i $(INVENTORY) site.yml -e '{"tenancy_tenant_overrides": {"rpm_limit": 100000000}}' >/dev/null
	$(BIN)/python scripts/bench_gateway.py --inventory $(INVENTORY) || status=$$?; \
	  $(BIN)/ansible-playbook -i $(INVENTORY) site.yml >/dev/null; exit $${status:-0}
	$(BIN)/python scripts/bench_converge.py --inventory $(INVENTORY)
	$(BIN)/python scripts/bench_adapters.py --inventory $(INVENTORY)

bench-verbs: venv docker ## tenant-add/remove and no-op site.yml from 2 to 5 tenants (scripts/bench_verbs.py)
	$(BIN)/python scripts/bench_verbs.py --inventory $(INVENTORY) --up-to 5

bench-monitoring: venv ## What the host's Prometheus costs (CPU, memory, disk), idle and under load
	$(BIN)/python scripts/bench_monitoring.py --inventory $(INVENTORY) --clients 0 --seconds 60
	$(BIN)/python scripts/bench_monitoring.py --inventory $(INVENTORY) --clients 2 --seconds 120
