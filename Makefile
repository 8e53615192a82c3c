# rlnet: build, install, test and package.
#
# The install layout is written here once: packaging/debian/rules and
# packaging/rpm/rlnet.spec call `make` and `make install`. Packagers' knobs are
# the usual ones (PREFIX, DESTDIR, BINDIR, ...). See packaging/README.md.
#
#   make                      release binary and shell completions
#   make install PREFIX=/usr DESTDIR=/tmp/root
#   make vendor               vendor/crates.io: every crate Cargo.lock names,
#                             for builds without network (not committed)
#   make test                 as root: install the test tools, prepare the
#                             machine, run the whole suite (what CI runs)
#   make deb                  .deb packages in build/deb/ (packaging/debian)
#   make srpm                 source RPM in build/rpm/ (packaging/rpm/rlnet.spec)
#   make dist                 release and vendored-crates tarballs in build/dist/
#   make packaging-check      CI: build the .deb, lint, install, smoke-test, remove

VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)

PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
LIBEXECDIR  ?= $(PREFIX)/libexec
DATADIR     ?= $(PREFIX)/share
MANDIR      ?= $(DATADIR)/man
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR  ?= $(DATADIR)/zsh/vendor-completions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
# AppArmor reads /etc/apparmor.d whatever the prefix.
SYSCONFDIR  ?= /etc
APPARMORDIR ?= $(SYSCONFDIR)/apparmor.d
# Podman's `helper_binaries_dir` (and RootlessKit/Buildah via PATH) find the
# helper names pasta and slirp4netns here; both are symlinks to rlnet.
PKGLIBEXECDIR ?= $(LIBEXECDIR)/rlnet
# 4.0 (has the `userns` rule Ubuntu 24.04+ needs) or 3.0 (Debian 12's parser);
# empty: what $(APPARMORDIR)/abi/ on this machine offers, else 4.0.
APPARMOR_ABI ?=
DESTDIR     ?=

CARGO ?= cargo
CARGO_TARGET_DIR ?= target
BIN ?= $(CARGO_TARGET_DIR)/release/rlnet
# Completions come from the built binary. A cross build, whose binary cannot
# run on the build machine, points this at a runnable rlnet (or an emulator).
COMPLETION ?= $(BIN) completion
COMPDIR := build/completions

# The vendored crates: used, with --offline, whenever the tree is there.
VENDOR_DIR := vendor/crates.io
ifneq ($(wildcard $(VENDOR_DIR)/.),)
OFFLINE := --offline --config 'source.crates-io.replace-with="vendored-crates"' \
	--config 'source.vendored-crates.directory="$(CURDIR)/$(VENDOR_DIR)"'
endif
CARGO_BUILD_FLAGS ?=

# Debian 12 and 13 ship a rustc older than rust-version (Cargo.toml): the
# build profile pkg.rlnet.rustup takes cargo/rustc from PATH (rustup) instead
# of Build-Depends. Chosen automatically unless set.
DEB_PROFILES ?= $(shell dpkg --compare-versions "$$(dpkg-query -W -f='$${Version}' rustc 2>/dev/null || echo 0)" ge 1.91 || echo pkg.rlnet.rustup)
DEB_BUILD_OPTIONS ?=
DEB_DIR := build/deb
DEB_SRC := $(DEB_DIR)/rlnet-$(VERSION)
DIST_DIR := build/dist
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

SELINUXTYPE ?= targeted
SELINUX_DEVEL_MAKEFILE ?= /usr/share/selinux/devel/Makefile

.PHONY: all build completions install uninstall vendor test check test-installed \
	selinux install-selinux deb srpm dist packaging-check clean

all: build completions

build:
	$(CARGO) build --release --locked $(OFFLINE) $(CARGO_BUILD_FLAGS)

completions:
	@test -x "$(BIN)" || { echo "make completions: $(BIN) is missing; run make first" >&2; exit 1; }
	mkdir -p $(COMPDIR)
	$(COMPLETION) bash > $(COMPDIR)/rlnet.bash.tmp
	$(COMPLETION) zsh > $(COMPDIR)/_rlnet.tmp
	$(COMPLETION) fish > $(COMPDIR)/rlnet.fish.tmp
	@for f in rlnet.bash _rlnet rlnet.fish; do \
		test -s $(COMPDIR)/$$f.tmp || { echo "make completions: '$(COMPLETION)' printed nothing for $$f" >&2; exit 1; }; \
		mv $(COMPDIR)/$$f.tmp $(COMPDIR)/$$f; done

# No cargo here: `sudo make install` after `make` must not need root's cargo.
install:
	@test -x "$(BIN)" || { echo "make install: $(BIN) is missing; run make first" >&2; exit 1; }
	@test -s $(COMPDIR)/rlnet.bash || { echo "make install: completions are missing; run make first" >&2; exit 1; }
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/rlnet
	install -D -m 0644 man/rlnet.1 $(DESTDIR)$(MANDIR)/man1/rlnet.1
	install -D -m 0644 $(COMPDIR)/rlnet.bash $(DESTDIR)$(BASHCOMPDIR)/rlnet
	install -D -m 0644 $(COMPDIR)/_rlnet $(DESTDIR)$(ZSHCOMPDIR)/_rlnet
	install -D -m 0644 $(COMPDIR)/rlnet.fish $(DESTDIR)$(FISHCOMPDIR)/rlnet.fish
	install -d -m 0755 $(DESTDIR)$(PKGLIBEXECDIR)
	ln -sfr $(DESTDIR)$(BINDIR)/rlnet $(DESTDIR)$(PKGLIBEXECDIR)/pasta
	ln -sfr $(DESTDIR)$(BINDIR)/rlnet $(DESTDIR)$(PKGLIBEXECDIR)/slirp4netns
	install -d -m 0755 $(DESTDIR)$(APPARMORDIR)
	sh packaging/apparmor/install-profile.sh packaging/apparmor/usr.bin.rlnet \
		$(BINDIR)/rlnet "$(APPARMOR_ABI)" > $(DESTDIR)$(APPARMORDIR)/usr.bin.rlnet
	chmod 0644 $(DESTDIR)$(APPARMORDIR)/usr.bin.rlnet

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/rlnet $(DESTDIR)$(MANDIR)/man1/rlnet.1 \
		$(DESTDIR)$(BASHCOMPDIR)/rlnet $(DESTDIR)$(ZSHCOMPDIR)/_rlnet \
		$(DESTDIR)$(FISHCOMPDIR)/rlnet.fish \
		$(DESTDIR)$(PKGLIBEXECDIR)/pasta $(DESTDIR)$(PKGLIBEXECDIR)/slirp4netns \
		$(DESTDIR)$(APPARMORDIR)/usr.bin.rlnet
	-rmdir $(DESTDIR)$(PKGLIBEXECDIR)

vendor:
	$(CARGO) vendor --locked --versioned-dirs $(VENDOR_DIR) > /dev/null
	@echo "vendored $$(ls $(VENDOR_DIR) | wc -l) crates into $(VENDOR_DIR); builds use them offline"

# The README's test command. As root: install what the tests drive, prepare
# the machine, then run everything with missing user namespaces as a failure.
# The e2e tests run rlnet as `nobody`, so the built binaries must be reachable
# by that user: a clone under /root builds into /var/tmp instead.
test:
	bash tests/prepare-machine.sh
	@if [ "$(origin CARGO_TARGET_DIR)" = file ] \
	   && ! setpriv --reuid=65534 --regid=65534 --clear-groups -- test -x "$(CURDIR)" 2>/dev/null; then \
		export CARGO_TARGET_DIR=/var/tmp/rlnet-test-target; \
		mkdir -p $$CARGO_TARGET_DIR; chmod 0755 $$CARGO_TARGET_DIR; \
		echo "make test: $(CURDIR) is not reachable by nobody; building into $$CARGO_TARGET_DIR"; \
	fi; \
	RLNET_REQUIRE_USERNS=1 $(CARGO) test --locked $(OFFLINE)

# The tests that need no namespaces, no root and no network: what a package
# build root can run (dh_auto_test, rpm %check).
check:
	$(CARGO) test --locked $(OFFLINE) --lib --test cli --test inmem --test port_cli

# The end-to-end and compatibility suites against an installed rlnet (the
# Debian autopkgtest: make test-installed RLNET_BIN=/usr/bin/rlnet).
RLNET_BIN ?= /usr/bin/rlnet
# Selecting test targets stops cargo from building the examples, so the
# traffic helper (examples/testkit/) is built first.
test-installed:
	$(CARGO) build --locked $(OFFLINE) --example testkit
	RLNET_BIN=$(RLNET_BIN) RLNET_REQUIRE_USERNS=1 $(CARGO) test --locked $(OFFLINE) --no-fail-fast \
		--test 'e2e_*' --test 'compat_*'

# The SELinux module (m4, checkmodule, semodule_package through the policy's
# devel Makefile: selinux-policy-devel on Fedora, selinux-policy-dev on Debian).
selinux:
	rm -rf build/selinux
	mkdir -p build/selinux
	cp packaging/selinux/rlnet.te packaging/selinux/rlnet.fc packaging/selinux/rlnet.if build/selinux/
	$(MAKE) -C build/selinux -f $(SELINUX_DEVEL_MAKEFILE) rlnet.pp

install-selinux:
	install -D -m 0644 build/selinux/rlnet.pp $(DESTDIR)$(DATADIR)/selinux/packages/$(SELINUXTYPE)/rlnet.pp
	install -D -m 0644 packaging/selinux/rlnet.if $(DESTDIR)$(DATADIR)/selinux/devel/include/distributed/rlnet.if

deb:
	@test -d $(VENDOR_DIR) || $(MAKE) vendor
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_SRC)
	tar -c --exclude=./target --exclude=./build --exclude=./.git --exclude=./debian -f - . \
		| tar -x -C $(DEB_SRC)
	cp -r packaging/debian $(DEB_SRC)/debian
	cd $(DEB_SRC) && DEB_BUILD_PROFILES="$(DEB_PROFILES)" DEB_BUILD_OPTIONS="$(DEB_BUILD_OPTIONS)" \
		dpkg-buildpackage -us -uc -b
	@ls -l $(DEB_DIR)/*.deb

dist:
	@test -d $(VENDOR_DIR) || $(MAKE) vendor
	mkdir -p $(DIST_DIR)
	git archive --format=tar --prefix=rlnet-$(VERSION)/ HEAD | gzip -n > $(DIST_DIR)/rlnet-$(VERSION).tar.gz
	tar --sort=name --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 --numeric-owner \
		-c $(VENDOR_DIR) | gzip -n > $(DIST_DIR)/rlnet-$(VERSION)-vendor.tar.gz
	@ls -l $(DIST_DIR)

srpm: dist
	rpmbuild -bs --define "_topdir $(CURDIR)/build/rpmbuild" \
		--define "_sourcedir $(CURDIR)/$(DIST_DIR)" --define "_srcrpmdir $(CURDIR)/build/rpm" \
		packaging/rpm/rlnet.spec

packaging-check:
	bash packaging/ci/check.sh

clean:
	$(CARGO) clean
	rm -rf build
