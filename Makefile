# BunkerOS entry points. The two commands a new machine needs: `make run` and `make test`.
# Both install what they need first (`make deps`: Debian packages via apt-get, as root or with sudo).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PROFILE ?= qemu-x86_64
PROFILE_FILE := hardware/profiles/$(PROFILE).toml
IMAGE_DIR := build/image/$(PROFILE)
IMAGE := $(IMAGE_DIR)/bunkeros.img
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CARGO ?= cargo

# Debian packages, by what needs them.
DEPS_RUST := gcc pkg-config libtss2-dev libsqlite3-dev
DEPS_IMAGE := mmdebstrap squashfs-tools cryptsetup-bin dosfstools mtools e2fsprogs fdisk binutils \
	systemd systemd-boot-efi zstd python3 git
DEPS_VM := qemu-system-x86 qemu-utils ovmf swtpm
DEPS_TEST := dbus-daemon openssl libtss2-tcti-swtpm0 certbot lego tpm2-tools iperf3 iputils-ping iproute2 \
	python3-venv nut-server nut-client snmpd snmp prometheus-alertmanager
DEPS := $(DEPS_RUST) $(DEPS_IMAGE) $(DEPS_VM) $(DEPS_TEST)
# Only `make bench` needs these (hubd against tunnels: stunnel and boringtun's `wg`). No
# recommends: wireguard-tools recommends a whole kernel image (wireguard-modules).
DEPS_BENCH := stunnel4 wireguard-tools
# boringtun-cli (userspace WireGuard), built from crates.io into build/tools for `make bench`.
BORINGTUN := build/tools/bin/boringtun-cli

# One timestamp for every image build of this make run (so the builds a comparison makes agree):
# the time of the last commit that changed what goes into the image.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct -- image hardware services tools Cargo.toml Cargo.lock 2>/dev/null)

# The release signing key (PKCS#8 PEM, P-256): it signs each image's PCR 11 prediction, so that
# trustd's CA key stays usable on every image the release key signed. A development key is made
# on first use; a production build points RELEASE_KEY at the release key, kept offline.
RELEASE_KEY ?= build/keys/release-key.pem
# The TUF keys that sign releases (TUF_KEYS/keys.toml names each role's key files and threshold)
# and the TUF root every image trusts for its updates. DEVELOPMENT keys and root are made on
# first use; a production build points TUF_KEYS at the online keys (targets, snapshot,
# timestamp) and TUF_ROOT at the root.json the offline root keys signed.
TUF_KEYS ?= build/keys/tuf
TUF_ROOT ?= $(TUF_KEYS)/root.json
# Where `make release` publishes: one TUF repository per profile, accumulating releases.
RELEASE_REPO ?= build/release/$(PROFILE)
RELEASE_TOOL := target/release/bunkeros-release
BUILD_IMAGE := $(SUDO) env SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) image/build.sh --release-key $(RELEASE_KEY) --tuf-root $(TUF_ROOT)

# Release binaries go into the image: strip build paths so they do not depend on where we build.
RELEASE_RUSTFLAGS := --remap-path-prefix=$(CURDIR)=/usr/src/bunkeros \
	--remap-path-prefix=$(or $(CARGO_HOME),$(HOME)/.cargo)=/usr/src/cargo

.PHONY: help deps build binaries release image image-lock image-verify run test test-rust pyasic-venv test-boot test-update test-reproducible test-image-faults disk-check lint fuzz bench bench-deps clean

help:
	@echo "BunkerOS: make run | make test"
	@echo "  make run           build what is missing and boot the appliance in QEMU with a software TPM"
	@echo "  make test          format and lint checks, all Rust tests, the image build, the boot and update tests"
	@echo "  make deps          install the Debian packages the build and tests need (only the missing ones)"
	@echo "  make image         build the disk image for PROFILE=$(PROFILE) into $(IMAGE_DIR)/"
	@echo "  make release       build the image and publish it as a signed TUF release into $(RELEASE_REPO)/"
	@echo "  make binaries      the release binaries (target/release) that go into the image"
	@echo "  make image-verify  build the image twice and compare: both sha256 sums are printed"
	@echo "  make image-lock    re-resolve image/packages.list into image/packages.lock"
	@echo "  make bench         benchmarks, as ratios against a baseline measured in the same run"
	@echo "  make fuzz          fuzz the parsers of untrusted input (FUZZ_SECONDS per target, default 60)"
	@echo "  make clean         remove build/ and target/"

deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "==> installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -q; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	else echo "==> Debian packages: all $(words $(DEPS)) present"; fi
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found: install the Rust toolchain (rustup)"; exit 1; }
	@$(CARGO) nextest --version >/dev/null 2>&1 || { echo "==> installing cargo-nextest"; $(CARGO) install --locked cargo-nextest; }

build: deps
	$(CARGO) build --workspace --locked

binaries: deps
	@echo "==> release binaries (target/release)"
	RUSTFLAGS="$(RELEASE_RUSTFLAGS)" $(CARGO) build --workspace --release --locked

build/keys/release-key.pem:
	@echo "==> no release key: making a DEVELOPMENT release key at $@ (production: RELEASE_KEY=<path>)"
	@mkdir -p $(@D) && chmod 0700 $(@D)
	@(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $@.tmp) && mv $@.tmp $@

# Made once (file targets: only when missing); an existing key set or root is never replaced.
$(TUF_KEYS)/keys.toml: | binaries
	@echo "==> no TUF keys: making DEVELOPMENT TUF keys at $(TUF_KEYS) (production: TUF_KEYS=<dir>, TUF_ROOT=<root.json>)"
	$(RELEASE_TOOL) tuf-keys --dir $(TUF_KEYS)

$(TUF_ROOT): | $(TUF_KEYS)/keys.toml binaries
	@echo "==> no TUF root: signing a DEVELOPMENT TUF root at $@ with the keys in $(TUF_KEYS)"
	$(RELEASE_TOOL) tuf-root --keys $(TUF_KEYS) --out $@

# An image build published as a TUF release: the artefacts an appliance installs into its other
# slot, signed by the TUF keys, under the root the image carries.
release: image $(TUF_ROOT)
	@echo "==> release of $(IMAGE_DIR) into $(RELEASE_REPO)"
	$(RELEASE_TOOL) publish --image-dir $(IMAGE_DIR) --keys $(TUF_KEYS) --root $(TUF_ROOT) --repo $(RELEASE_REPO)

image: binaries $(RELEASE_KEY) $(TUF_ROOT)
	@echo "==> image for profile $(PROFILE)"
	$(BUILD_IMAGE) --profile $(PROFILE_FILE) --out $(IMAGE_DIR)

image-lock: binaries $(RELEASE_KEY) $(TUF_ROOT)
	$(BUILD_IMAGE) --profile $(PROFILE_FILE) --out $(IMAGE_DIR) --refresh-lock

image-verify: binaries $(RELEASE_KEY) $(TUF_ROOT)
	$(BUILD_IMAGE) --profile $(PROFILE_FILE) --out build/verify/first --force
	$(BUILD_IMAGE) --profile $(PROFILE_FILE) --out build/verify/second --force
	@a=$$(sha256sum < build/verify/first/bunkeros.img | cut -d' ' -f1); \
	b=$$(sha256sum < build/verify/second/bunkeros.img | cut -d' ' -f1); \
	echo "first build:  $$a"; echo "second build: $$b"; \
	if [ "$$a" = "$$b" ]; then echo "image-verify: the two builds are bit-identical"; \
	else echo "image-verify: the builds DIFFER"; diff <(cd build/verify/first && sha256sum *) <(cd build/verify/second && sha256sum *) || true; exit 1; fi

run: image
	@eval "$$(target/release/bunkerctl profile env $(PROFILE_FILE))"; echo; \
	echo "==> Booting BunkerOS ($(PROFILE)) in QEMU with a software TPM 2.0 (swtpm)."; \
	if [ "$$BUNKER_ROOT_CONSOLE" = 1 ]; then \
	echo "    DEVELOPMENT profile: after firmware, kernel and systemd, the console opens a root shell."; \
	else \
	echo "    What you see is the appliance's serial console: firmware, kernel, then the status screen"; \
	echo "    that shows every BunkerOS unit and refreshes itself. There is no login prompt by design."; \
	fi; \
	echo "    Under TCG (no usable KVM) the console is ready after about 40-60 s."; \
	echo "    Leave QEMU with Ctrl-a then x. The disk overlay and TPM state persist in build/run/."; echo
	tests/vm/vm.sh --image $(IMAGE) --interactive --overlay build/run/$(PROFILE).qcow2 --tpm-state build/run/$(PROFILE)-tpm

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test-rust: deps pyasic-venv
	$(CARGO) nextest run --workspace --locked --no-fail-fast

# pyasic, the third-party miner client the simulated miners are checked against (hardware/sim
# tests/pyasic.rs); pinned to the version whose reply parsing the notes verified.
PYASIC_VERSION := 0.79.0
VENV := build/venv
pyasic-venv: $(VENV)/.pyasic-$(PYASIC_VERSION)

$(VENV)/.pyasic-$(PYASIC_VERSION):
	@echo "==> Python venv at $(VENV) with pyasic==$(PYASIC_VERSION) (for hardware/sim's pyasic test)"
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check pyasic==$(PYASIC_VERSION)
	@touch $@

# The image build's own faults: a missing tool, a bad profile, a step failing midway.
test-image-faults: binaries $(RELEASE_KEY) $(TUF_ROOT)
	$(SUDO) env RELEASE_KEY=$(RELEASE_KEY) TUF_ROOT=$(TUF_ROOT) python3 tests/image/build_faults_test.py

test-boot: image
	python3 tests/boot/boot_test.py $(IMAGE_DIR) build/test/boot

# Signed A/B updates of one QEMU machine (tests/update/update_test.py): builds B and C from the same
# inputs as the image (versions +1 and +2; C with another release key), publishes them as TUF
# releases onto a USB stick image, and boots five times: refusals and a power cut mid-write, the
# retry, B blessed, C failing its health gate, the fallback to B.
test-update: image $(TUF_ROOT)
	python3 tests/update/update_test.py $(IMAGE_DIR) build/test/update --release-key $(RELEASE_KEY) \
		--tuf-keys $(TUF_KEYS) --tuf-root $(TUF_ROOT) --profile $(PROFILE_FILE)

# A second build from the same inputs must give the same bytes as the one the boot test booted.
test-reproducible: image
	$(BUILD_IMAGE) --profile $(PROFILE_FILE) --out build/verify/again --force
	@a=$$(sha256sum < $(IMAGE) | cut -d' ' -f1); b=$$(sha256sum < build/verify/again/bunkeros.img | cut -d' ' -f1); \
	echo "image:        $$a"; echo "second build: $$b"; \
	if [ "$$a" = "$$b" ]; then echo "reproducible: the two builds are bit-identical"; \
	else echo "reproducible: the builds DIFFER"; diff <(cd $(IMAGE_DIR) && sha256sum *) <(cd build/verify/again && sha256sum *) || true; exit 1; fi

test: disk-check lint test-rust test-image-faults test-reproducible test-boot test-update

# `make test` is one full run, not an edit loop: cargo's incremental cache (as large as the build
# itself) buys nothing there, so its builds go without it.
test lint test-rust: export CARGO_INCREMENTAL := 0

# A full run from a clean clone wrote 6 GB (target/ 3.5 GB, build/ 2.5 GB) plus apt's and mmdebstrap's
# caches; say early, not 20 minutes in, when the disk cannot hold that with room to spare.
TEST_DISK_GB := 10
disk-check:
	@free=$$(df -P --block-size=1G . | awk 'NR==2 {print $$4}'); \
	echo "==> disk: $$free GB free here; a full make test from scratch writes about 6 GB"; \
	if [ "$$free" -lt $(TEST_DISK_GB) ]; then \
		echo "warning: less than $(TEST_DISK_GB) GB free: the run may stop with 'No space left on device'" >&2; fi

# Benchmarks: each prints absolute figures and ratios against a baseline measured in the same run.
bench-deps: deps
	@missing=$$(for p in $(DEPS_BENCH); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "==> installing Debian packages for the benchmarks: $$missing"; \
		$(SUDO) apt-get update -q; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	else echo "==> Debian packages for the benchmarks: all $(words $(DEPS_BENCH)) present"; fi

# Built once (the file target: only when missing), pinned to the version the baselines were taken with.
$(BORINGTUN):
	@echo "==> boringtun-cli 0.7.1 into build/tools (the userspace WireGuard hubd is compared with)"
	$(CARGO) install boringtun-cli --locked --version 0.7.1 --root build/tools

bench: deps bench-deps pyasic-venv $(BORINGTUN)
	@echo "==> trustd: issuance in process against the raw TPM signature rate (swtpm), then memory over BENCH_CERTS (default 5000) more certificates"
	$(CARGO) bench -p trustd --bench issuance --locked
	@echo "==> trustd: issuance through D-Bus (org.bunkeros.Trust1) against the raw TPM signature rate"
	$(CARGO) bench -p trustd --bench dbus_issuance --locked
	@echo "==> trustd: issuance through ACME (RFC 8555 over TLS 1.3, instant-acme clients, http-01) against the raw TPM signature rate"
	$(CARGO) bench -p trustd --bench acme_issuance --locked
	@echo "==> hubd: path computation on a synthetic 1,000-hub graph against plain Dijkstra"
	$(CARGO) bench -p hubd --bench path_selection --locked
	@echo "==> hubd: the data plane with real hubd processes (throughput, latency per hop, failover, memory per session)"
	$(CARGO) bench -p hubd --bench data_plane --locked
	@echo "==> hubd against tunnels: iperf3 through hubd (IP over TUN, service forward; 1 hop and a transit hub) against veth, boringtun, stunnel and openssl speed, in network namespaces"
	BORINGTUN=$(CURDIR)/$(BORINGTUN) $(CARGO) bench -p hubd --bench tunnels --locked
	@echo "==> minerd: a full telemetry poll of 1,000 simulated miners (minersim, own process) against pyasic polling the same fleet, and discovery of a /22"
	$(CARGO) bench -p minerd --bench fleet_poll --locked
	@echo "==> minerd: the Stratum proxy (memory per miner at 5,000 miners, share latency at 1,000 shares/s, CPU per 1,000 shares) against the test pool alone"
	$(CARGO) bench -p minerd --bench proxy --locked
	@echo "==> sited: alarm latency (contact -> siren coil) and CPU per 1,000 sensors polled on sitesim's 1,036-sensor site against the poll period, plain Modbus round trips and a bare poller; UPS on battery (upsd + dummy-ups) -> power budget on D-Bus against upsd's own report"
	$(CARGO) bench -p sited --bench site --locked
	@echo "==> updated: verify and write a release the size of a real one into slot B of a GPT disk image, against dd of the same files to the same targets (install to blessed under TCG: make test-update prints it)"
	$(CARGO) bench -p updated --bench install --locked

# Fuzz the parsers of untrusted input with libFuzzer (cargo-fuzz). RUSTC_BOOTSTRAP lets the stable
# toolchain take the sanitizer flags cargo-fuzz passes. Each target runs FUZZ_SECONDS; the corpus
# grows in fuzz/corpus/<target> (seeded from fuzz/seeds/<target>), crashes land in fuzz/artifacts/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := csr translog_bundle acme_jws hub_advertisement hub_circuit hub_session_frame cgminer_reply stratum_message audit_log upsd_reply modbus_registers snmp_answer rollout_evidence rollout_exchange update_metadata
fuzz: deps
	@$(CARGO) fuzz --version >/dev/null 2>&1 || { echo "==> installing cargo-fuzz"; $(CARGO) install --locked cargo-fuzz; }
	@for t in $(FUZZ_TARGETS); do \
		echo "==> fuzz $$t for $(FUZZ_SECONDS) s"; mkdir -p fuzz/corpus/$$t; \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir fuzz $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=65536 || exit 1; \
	done

clean:
	rm -rf build target fuzz/target
