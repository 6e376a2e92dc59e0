# s3bak — build, test, demo, lint, bench.
#
# `make tools` installs the pinned test tools into $(go env GOPATH)/bin and
# skips each one already there at the pinned version, so only the first run
# on a machine is slow (MinIO compiles from the Go module proxy: 10–20 min
# on 2 cores).

GO      ?= go
GOBIN   := $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)

MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_MODULE  := github.com/minio/minio

# Release builds say what they are: `s3bak version` prints VERSION and COMMIT
# (set with -ldflags -X), and every manifest records them.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
PREFIX  ?= /usr/local
RELEASE_PLATFORMS := linux/amd64 linux/arm64

.PHONY: all build install release test test-race test-short demo lint tools tool-minio tool-s5cmd tool-staticcheck tool-zstd tool-systemd tool-awscli bench bench-fs clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/s3bak ./cmd/s3bak

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 bin/s3bak $(DESTDIR)$(PREFIX)/bin/s3bak

# Static binaries (no libc needed: any Linux, Graviton included) and their
# SHA-256 sums: dist/s3bak-linux-amd64, dist/s3bak-linux-arm64, dist/SHA256SUMS.
release:
	rm -rf dist && mkdir -p dist
	@set -e; for p in $(RELEASE_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; \
	  echo "building dist/s3bak-$$os-$$arch ($(VERSION))"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -buildvcs=auto -ldflags '-s -w $(LDFLAGS)' \
	    -o dist/s3bak-$$os-$$arch ./cmd/s3bak; \
	done
	cd dist && sha256sum s3bak-* > SHA256SUMS
	@cat dist/SHA256SUMS

# deploy/ is a module of its own (its tests decode the deploy kit into
# k8s.io/api, Nomad's and SSM's types, kept out of s3bak's module).
test: tools
	$(GO) test -count=1 -timeout 30m ./...
	cd deploy && $(GO) test -count=1 -timeout 10m ./...

# Every package under the race detector: backup, restore, lock, chunk,
# budget and transfer run goroutines of their own. About 2 minutes on 2
# cores once built (the first build of the race runtime and the SDK takes a
# few more).
test-race: tools
	$(GO) test -race -count=1 -timeout 40m ./...

demo: build tool-minio
	$(GO) run ./demo

lint: tool-staticcheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	staticcheck ./...
	cd deploy && $(GO) vet ./... && staticcheck ./...
	$(GO) test -count=1 ./internal/layering

tools: tool-minio tool-s5cmd tool-staticcheck tool-zstd tool-systemd

# go version -m tells the module version a binary was built from: rebuild
# only when it is not the pinned one.
tool-minio:
	@if $(GO) version -m $(GOBIN)/minio 2>/dev/null | grep -q '$(MINIO_MODULE)[[:space:]]*$(MINIO_VERSION)'; then \
	  echo "minio $(MINIO_VERSION): cached in $(GOBIN)"; \
	else \
	  echo "building minio $(MINIO_VERSION) from the Go module proxy (10-20 minutes the first time)..."; \
	  $(GO) install $(MINIO_MODULE)@$(MINIO_VERSION); \
	fi

# s5cmd and staticcheck are pinned by tools/go.mod (go install of s5cmd by
# version fails on the module proxy's version list; a tools module works).
tool-s5cmd:
	@want=$$(cd tools && $(GO) list -m -f '{{.Version}}' github.com/peak/s5cmd/v2); \
	if $(GO) version -m $(GOBIN)/s5cmd 2>/dev/null | grep -q "github.com/peak/s5cmd/v2[[:space:]]*$$want"; then \
	  echo "s5cmd $$want: cached in $(GOBIN)"; \
	else cd tools && $(GO) build -o $(GOBIN)/s5cmd github.com/peak/s5cmd/v2; fi

tool-staticcheck:
	@want=$$(cd tools && $(GO) list -m -f '{{.Version}}' honnef.co/go/tools); \
	if $(GO) version -m $(GOBIN)/staticcheck 2>/dev/null | grep -q "honnef.co/go/tools[[:space:]]*$$want"; then \
	  echo "staticcheck $$want: cached in $(GOBIN)"; \
	else cd tools && $(GO) build -o $(GOBIN)/staticcheck honnef.co/go/tools/cmd/staticcheck; fi

# Debian's zstd: the reference decoder that proves stored objects are plain
# zstd streams.
tool-zstd:
	@command -v zstd >/dev/null || { \
	  echo "installing Debian's zstd..."; \
	  (apt-get install -y -q zstd >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q zstd >/dev/null)) \
	  || { echo "could not install zstd (apt-get as root); install it by hand"; exit 1; }; }

# Debian's systemd: deploy/'s test checks the units with the real
# `systemd-analyze verify` (Debian 12: systemd 252). Installed only when
# systemd-analyze is missing; nothing is started.
tool-systemd:
	@command -v systemd-analyze >/dev/null || { \
	  echo "installing Debian's systemd (for systemd-analyze verify)..."; \
	  (apt-get install -y -q --no-install-recommends systemd >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends systemd >/dev/null)) \
	  || { echo "could not install systemd (apt-get as root); install it by hand"; exit 1; }; }

# aws-cli is only a peer in `make bench` (not in `make tools`: no test needs
# it). Debian's awscli when `aws` is absent; without it the bench prints a
# note and skips the aws-cli rows.
tool-awscli:
	@command -v aws >/dev/null || { \
	  echo "installing Debian's awscli..."; \
	  (apt-get install -y -q awscli >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q awscli >/dev/null)) \
	  || echo "note: could not install awscli (apt-get as root); make bench skips the aws-cli rows"; }

# make bench BENCH_FLAGS='-size 64MiB -big 256MiB -small 1000 -rounds 1' for
# a quick look; the defaults (1 GiB set, 4 GiB file, 3 rounds) take 15-30
# minutes on 2 cores. See bench/README.md.
bench: build tools tool-awscli
	$(GO) run ./bench $(BENCH_FLAGS)

# bench-fs mounts a journaled ext4 (a sparse image, loop-mounted with
# direct I/O, so that the image's writes do not pass through the host's
# page cache a second time: needs root) for `make bench BENCH_FLAGS='-workdir /mnt/s3bak-bench'` on a host
# whose own file system is ext4 without a journal, where every download of
# many files would be slowed by the bench's own removals (bench/README.md,
# "Where the bench works"). `umount /mnt/s3bak-bench`, `losetup -d` of its
# device and removing the image undo it.
BENCH_FS_IMG  ?= /var/tmp/s3bak-bench.img
BENCH_FS_SIZE ?= 48G
BENCH_FS_DIR  ?= /mnt/s3bak-bench
bench-fs:
	@if mountpoint -q $(BENCH_FS_DIR); then echo "$(BENCH_FS_DIR) is mounted already"; exit 0; fi; \
	set -e; truncate -s $(BENCH_FS_SIZE) $(BENCH_FS_IMG); mkfs.ext4 -q -F $(BENCH_FS_IMG); \
	mkdir -p $(BENCH_FS_DIR); dev=$$(losetup --find --show --direct-io=on $(BENCH_FS_IMG)); \
	mount -o discard $$dev $(BENCH_FS_DIR); \
	echo "journaled ext4 on $(BENCH_FS_DIR) (image $(BENCH_FS_IMG))"

clean:
	rm -rf bin dist
