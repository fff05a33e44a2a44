# Build, test and install repmgr (Rust). See README.md.

CARGO ?= cargo
# Integration tests each run real PostgreSQL servers; 2 threads suit 2 cores.
TEST_THREADS ?= 2

PG_BINDIR := $(shell pg_config --bindir 2>/dev/null)
PGDIR ?= $(if $(PG_BINDIR),$(patsubst %/,%,$(dir $(PG_BINDIR))),/usr/lib/postgresql/15)
PREFIX ?= /usr
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=
# make install overwrites files of installed packages only with FORCE=1.
FORCE ?=
# The binary make install and make deb take.
REPMGR_BIN ?= target/release/repmgr
DEB_OUTDIR ?= target/deb

# What make install writes (without DESTDIR): checked first by the guard.
MAN_PAGES := $(wildcard man/*.[1-9])
INSTALL_TARGETS := $(PGDIR)/bin/repmgr $(PGDIR)/bin/repmgrd \
	$(foreach f,$(MAN_PAGES),$(MANDIR)/man$(patsubst .%,%,$(suffix $(f)))/$(notdir $(f)))

.PHONY: all build check fmt-check clippy layers test sim install deb demo demo-failover demo-down clean

all: build

# repmgr's last place for repmgr.conf is PostgreSQL's sysconfdir.
build:
	REPMGR_PG_SYSCONFDIR="$(shell pg_config --sysconfdir 2>/dev/null)" REPMGR_PG_BINDIR="$(PG_BINDIR)" $(CARGO) build --release

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

# The module layering (src/layering.rs): the CLI and the daemon apart,
# no module naming a higher layer, no import circles between files.
layers:
	@! grep -rnE 'crate::commands|commands::' src/daemon src/ops src/db --include=*.rs | grep -v '^[^:]*:[0-9]*:\s*//' || { echo "layering: src/daemon, src/ops or src/db names commands"; exit 1; }
	@! grep -rnE 'crate::daemon' src/commands src/ops src/db --include=*.rs | grep -v '^[^:]*:[0-9]*:\s*//' || { echo "layering: src/commands, src/ops or src/db names the daemon"; exit 1; }
	@! grep -rnE '\blog::(trace|debug|info|warn|error|log)!' src --include=*.rs | grep -v '^src/logging.rs:' || { echo "logging: use the log_* macros (repmgr's levels), not log:: directly"; exit 1; }
	$(CARGO) test --lib -q layering

# Static checks only (no servers).
check: fmt-check clippy layers

# Static checks, then doc tests, then unit and integration tests against
# real PostgreSQL (integration last, so its summary is the closing line).
test: check
	$(CARGO) test --doc
	$(CARGO) test --lib --bins --tests -- --test-threads=$(TEST_THREADS)

# The deterministic simulation of repmgrd's protocol: SIM_SEEDS schedules
# (make test runs it with 2000), SIM_SEED=S replays one with its trace.
SIM_SEEDS ?= 20000
sim:
	SIM_SEEDS=$(SIM_SEEDS) $(CARGO) test --release --test sim

# Refuses (before copying anything) to overwrite a file an installed
# package owns, e.g. Debian's postgresql-15-repmgr: see
# scripts/install-guard.sh. Not checked with DESTDIR set; FORCE=1 overrides.
install: build
	@DESTDIR="$(DESTDIR)" FORCE="$(FORCE)" bash scripts/install-guard.sh $(INSTALL_TARGETS)
	install -d $(DESTDIR)$(PGDIR)/bin
	install -m 0755 "$(REPMGR_BIN)" $(DESTDIR)$(PGDIR)/bin/repmgr
	ln -sf repmgr $(DESTDIR)$(PGDIR)/bin/repmgrd
	$(if $(wildcard man/*.1),install -d $(DESTDIR)$(MANDIR)/man1 && install -m 0644 $(wildcard man/*.1) $(DESTDIR)$(MANDIR)/man1/)
	$(if $(wildcard man/*.5),install -d $(DESTDIR)$(MANDIR)/man5 && install -m 0644 $(wildcard man/*.5) $(DESTDIR)$(MANDIR)/man5/)
	$(if $(wildcard man/*.8),install -d $(DESTDIR)$(MANDIR)/man8 && install -m 0644 $(wildcard man/*.8) $(DESTDIR)$(MANDIR)/man8/)

# A Debian package (repmgr-rs) with dpkg-deb, in $(DEB_OUTDIR): see
# scripts/mkdeb.sh.
deb: build
	bash scripts/mkdeb.sh "$(REPMGR_BIN)" "$(DEB_OUTDIR)"

# The seed README's three-node example with repmgrd, under /tmp/repmgr-demo.
demo:
	@bash scripts/demo.sh up

# kill -9 the demo's primary and watch repmgrd fail over.
demo-failover:
	@bash scripts/demo.sh failover

demo-down:
	@bash scripts/demo.sh down

clean:
	$(CARGO) clean
