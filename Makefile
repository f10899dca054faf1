# simgate — build, test and package.
# `make demo` runs the gateway against a simulated modem; `make test` runs every test.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BUILD    := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
DIST     := dist
FUZZTIME ?= 10s

# GOOS/GOARCH/GOARM triples for `make cross`: Pi Zero/1 (ARMv6), Pi 2/3 32-bit, Pi 3/4/5 64-bit, PCs.
PLATFORMS := linux/arm/6 linux/arm/7 linux/arm64 linux/amd64

.PHONY: all build test test-short lint cross bench demo deb fuzz soak clean

all: lint test build

build:
	$(BUILD) -o bin/simgate ./cmd/simgate
	$(BUILD) -o bin/modemsim ./cmd/modemsim

test:
	$(GO) test -race -timeout 30m ./...

test-short:
	$(GO) test -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

cross:
	@mkdir -p $(DIST)
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%%/*}; rest=$${p#*/}; arch=$${rest%%/*}; arm=$${rest#*/}; \
		suffix=$$arch; goarm=; \
		if [ "$$arch" = arm ]; then suffix=armv$$arm; goarm=$$arm; fi; \
		for cmd in simgate modemsim; do \
			echo "$$cmd $$os/$$suffix"; \
			GOOS=$$os GOARCH=$$arch GOARM=$$goarm $(BUILD) -o $(DIST)/$$cmd-$$os-$$suffix ./cmd/$$cmd; \
		done; \
	done
	@ls -l $(DIST)

bench:
	./scripts/bench.sh

# The demo runs the built binary, not `go run`: go run exits 1 when the
# program it runs stops on Ctrl-C, even after a clean stop. DEMOFLAGS passes
# options, e.g. make demo DEMOFLAGS='-profile simcom -for 30s'.
demo: build
	./bin/simgate demo $(DEMOFLAGS)

deb:
	VERSION=$(VERSION) COMMIT=$(COMMIT) ./packaging/build-deb.sh

fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

soak:
	./scripts/soak.sh

clean:
	rm -rf bin $(DIST)
