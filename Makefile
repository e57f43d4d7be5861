# keel — see README.md. `make` builds, `make test` runs every test (QEMU boots
# included), `make demo` boots a demo A/B disk in QEMU.
SHELL := /bin/bash
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)
OUT ?= out
GOFLAGS_BUILD := -trimpath -buildvcs=false -gcflags=all=-l -gcflags=runtime= -gcflags=crypto/...= -gcflags=golang.org/x/crypto/...= -ldflags="-s -w -buildid="
export CGO_ENABLED := 0
# The tests run the tools install-deps.sh installs (mkfs.*, sfdisk, losetup,
# cryptsetup, veritysetup, blkid), most in /usr/sbin, which a non-login
# shell's PATH may lack: a test would skip for a tool that is there.
export PATH := $(PATH):/usr/sbin:/sbin
PREFIX ?= /usr
DESTDIR ?=
FUZZTIME ?= 3s
QEMU_TIMEOUT ?= 80m

CMDS := init mkinitrd slotctl
BINS := $(addprefix $(OUT)/,$(CMDS))

.PHONY: all build deps test vet unit fuzz qemu demo bench install deb clean
all: build

build: $(BINS) $(OUT)/init.cpio.zst
$(OUT)/%: FORCE
	@mkdir -p $(OUT)
	$(GO) build $(GOFLAGS_BUILD) -o $@ ./$*
FORCE:

# The init's precompressed segment (mkinitrd/segment.go): /init alone,
# compressed once at zstd -19; mkinitrd puts it in front of every image
# instead of compressing the init at its default level each time. go build
# always rewrites out/init, so a stamp of its hash (and SOURCE_DATE_EPOCH)
# saves the 2 s of zstd -19 when nothing changed.
$(OUT)/init.cpio.zst: $(OUT)/init $(OUT)/mkinitrd
	@stamp="$$(sha256sum < $(OUT)/init) $${SOURCE_DATE_EPOCH:-0}"; \
	if [ -e $@ ] && [ "$$(cat $@.stamp 2>/dev/null)" = "$$stamp" ]; then touch $@; exit 0; fi; \
	if command -v zstd >/dev/null; then \
	  set -o pipefail; $(OUT)/mkinitrd init-segment --init $(OUT)/init | zstd -19 -q -c > $@.tmp && mv $@.tmp $@ && echo "$$stamp" > $@.stamp && echo "init segment: $@"; \
	else \
	  rm -f $@ $@.stamp; echo "make: no zstd tool (Debian package zstd): images will carry the init compressed at mkinitrd's default level"; \
	fi

deps:
	@./scripts/install-deps.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }

unit: build
	$(GO) test -short -count=1 ./...

# Each fuzz target runs for FUZZTIME as a smoke test (the corpus seeds run in `unit`),
# FUZZ_JOBS (default 2) at a time with one worker each.
fuzz:
	@./scripts/fuzz-smoke.sh $(FUZZTIME)

# The console's last lines of each failed boot (vm's fail message) are
# repeated at the end, where a CI summary shows them.
qemu: build
	$(GO) test -count=1 -timeout $(QEMU_TIMEOUT) -v ./qemu-tests/... 2>&1 | tee $(OUT)/qemu-tests.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go'; rc=$${PIPESTATUS[0]}; \
	if [ $$rc -ne 0 ]; then echo "== the consoles of the failed boots ($(OUT)/qemu-tests.log) =="; \
	  awk '/_test\.go:[0-9]+: /{head=$$0} /console lines:$$/{print head; p=1} p{print} /full log: /{p=0}' $(OUT)/qemu-tests.log; fi; exit $$rc

test: deps vet unit fuzz qemu

demo: deps build
	@./scripts/demo.sh

# Boots keel and its peers (initramfs-tools, dracut, tiny-initramfs, installed
# generator-only from Debian's packages) against one root; writes BENCHMARKS.md.
bench: deps
	@./bench/install-peers.sh
	@mkdir -p $(OUT)
	KEEL_BENCH=1 $(GO) test -count=1 -timeout 40m -run '^TestBench$$' -v ./bench 2>&1 | tee $(OUT)/bench.log; exit $${PIPESTATUS[0]}

install: build
	install -D -m 0755 $(OUT)/mkinitrd $(DESTDIR)$(PREFIX)/bin/mkinitrd
	install -D -m 0755 $(OUT)/slotctl $(DESTDIR)$(PREFIX)/bin/slotctl
	install -D -m 0755 $(OUT)/init $(DESTDIR)$(PREFIX)/lib/keel/init
	if [ -e $(OUT)/init.cpio.zst ]; then install -D -m 0644 $(OUT)/init.cpio.zst $(DESTDIR)$(PREFIX)/lib/keel/init.cpio.zst; fi
	install -D -m 0644 systemd/keel-mark-good.service $(DESTDIR)$(PREFIX)/lib/systemd/system/keel-mark-good.service
	install -D -m 0644 systemd/rauc.service.d/keel.conf $(DESTDIR)$(PREFIX)/lib/systemd/system/rauc.service.d/keel.conf
	install -d $(DESTDIR)$(PREFIX)/libexec
	ln -sf ../bin/slotctl $(DESTDIR)$(PREFIX)/libexec/keel-rauc-backend

# out/keel_VERSION_amd64.deb: what `make install` installs, plus the kernel
# hooks and /etc/keel/mkinitrd.conf (packaging/, docs/integration.md).
deb: build
	rm -rf $(OUT)/deb-root
	$(MAKE) --no-print-directory install DESTDIR=$(abspath $(OUT))/deb-root PREFIX=/usr
	./packaging/build-deb.sh $(OUT)/deb-root $(OUT)

clean:
	rm -rf $(OUT)
