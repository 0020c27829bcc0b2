# caddy-irma: `make run` starts the demo, `make run-https` the same demo on
# https in production mode, `make test` runs every test.

GO       ?= go
BIN      ?= bin
DEMO_DIR ?= .demo
DEMO_URL ?= http://localhost:8080/irma/
# The size of the demo issuer key, generated once by the first `make run`:
# 1024 bits take seconds, 2048 bits (production size) a minute or more.
# Later runs reuse the key, whatever its size.
DEMO_KEY_BITS ?= 1024
# The https demo (make run-https) keeps its own state: its scheme names the
# timestamp service at the https URL. Both as in Caddyfile.https.example;
# port 8443 needs no root.
HTTPS_DEMO_DIR = .demo-https
HTTPS_DEMO_ORIGIN = https://localhost:8443

.PHONY: all build wallet upstream demo-scheme run run-https test vet staticcheck fmt-check fuzz bench screenshots clean

all: build wallet

## build: the Caddy binary with the caddy-irma modules (no cgo)
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/caddy ./cmd/caddy

## wallet: the development wallet (needs cgo and libsqlcipher-dev)
wallet:
	CGO_ENABLED=1 $(GO) build -o $(BIN)/irma-wallet ./cmd/irma-wallet

## demo-scheme: the local demo scheme and its keys in $(DEMO_DIR) (once)
demo-scheme: build
	$(BIN)/caddy irma demo-scheme --dir $(DEMO_DIR) --url $(DEMO_URL) \
		$(if $(wildcard $(DEMO_DIR)/privkeys/*.xml),,--bits $(DEMO_KEY_BITS))

## upstream: the example upstream app (examples/upstream)
upstream:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/upstream ./examples/upstream

## run: the demo on http://localhost:8080, with the example upstream on
## 127.0.0.1:9090 (Ctrl-C stops both)
run: build upstream demo-scheme
	@$(BIN)/upstream & upstream=$$!; \
	trap 'kill $$upstream 2>/dev/null; wait $$upstream 2>/dev/null' EXIT INT TERM; \
	$(BIN)/caddy run --config Caddyfile.example --adapter caddyfile

## run-https: the demo on https://localhost:8443 in production mode
## (Caddyfile.https.example), with a certificate from Caddy's local CA (tls
## internal), whose root the example upstream trusts to fetch the JWKS
## (Ctrl-C stops both)
run-https: build upstream
	@$(MAKE) --no-print-directory demo-scheme DEMO_DIR=$(HTTPS_DEMO_DIR) DEMO_URL=$(HTTPS_DEMO_ORIGIN)/irma/
	@echo "Caddy's local CA: $(HTTPS_DEMO_DIR)/caddy/pki/authorities/local/root.crt (see \"HTTPS and production mode\" in the README)"
	@SSL_CERT_FILE=$(HTTPS_DEMO_DIR)/caddy/pki/authorities/local/root.crt \
		$(BIN)/upstream --jwks-url $(HTTPS_DEMO_ORIGIN)/irma/jwks.json --issuer $(HTTPS_DEMO_ORIGIN) & upstream=$$!; \
	trap 'kill $$upstream 2>/dev/null; wait $$upstream 2>/dev/null' EXIT INT TERM; \
	$(BIN)/caddy run --config Caddyfile.https.example --adapter caddyfile

## test: formatting, vet, staticcheck, and every test (unit, Caddy
## integration, end to end)
test: fmt-check vet staticcheck
	CGO_ENABLED=1 $(GO) test -count=1 -timeout 15m ./...

vet:
	CGO_ENABLED=1 $(GO) vet ./...

## screenshots: the README's pictures of the session page (login, pairing,
## done, cancelled; at a phone's and a desktop's width), taken in Chromium
## by TestPagesAccessible, which checks every page with axe-core as it goes
SCREENSHOTS_DIR = caddyirma/e2e/screenshots
screenshots:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	CADDY_IRMA_SCREENSHOTS=$$tmp CGO_ENABLED=1 $(GO) test -count=1 -run 'TestPagesAccessible$$' ./caddyirma/e2e/ && \
	mkdir -p $(SCREENSHOTS_DIR) && \
	for state in login pairing done cancelled; do for width in phone desktop; do \
		cp "$$tmp/page-$$state-$$width.png" $(SCREENSHOTS_DIR)/; done; done && \
	echo "screenshots in $(SCREENSHOTS_DIR)"

# staticcheck, at the version the project is clean with, from the Go module
# proxy (nothing to install by hand).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
staticcheck:
	CGO_ENABLED=1 $(GO) run $(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## fuzz: a fuzz campaign (not part of make test): every fuzz target for
## FUZZTIME (default 10m), one after another on one core; the inputs that
## each finds new go into its package's testdata/fuzz, where make test runs
## them as seeds. FUZZ=<regexp> picks targets, e.g. FUZZ=FuzzCheck.
FUZZTIME ?= 10m
FUZZ     ?= .
fuzz:
	@cache=$$($(GO) env GOCACHE)/fuzz; \
	for pkg in $$(CGO_ENABLED=1 $(GO) list ./caddyirma/...); do \
		dir=$$(CGO_ENABLED=1 $(GO) list -f '{{.Dir}}' $$pkg); \
		for t in $$(CGO_ENABLED=1 $(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' | grep -E -- '$(FUZZ)'); do \
			echo "== $$pkg $$t"; \
			CGO_ENABLED=1 $(GO) test $$pkg -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) -parallel 1 || exit 1; \
			mkdir -p $$dir/testdata/fuzz/$$t; \
			cp -n $$cache/$$pkg/$$t/* $$dir/testdata/fuzz/$$t/ 2>/dev/null || true; \
		done; \
	done

## bench: the published benchmarks (not part of make test; about 10
## minutes, more the first time: it builds `yivi` from the Go module proxy
## and generates a 2048-bit scheme, cached in ~/.cache/caddy-irma): the
## load run (cost per request against plain reverse_proxy, wrk), the unlock
## benchmark (Chromium and the wallet, memory and Redis) and the login-cost
## run (CPU per login against irma server). Each writes its result into
## $(BENCH_OUT); irma-benchreport gathers them, with the machine, into
## $(BENCH_DIR)/results.json and draws $(BENCH_DIR)/bench.svg, which the
## README shows. Run it on a machine that does nothing else meanwhile.
BENCH_OUT ?= .bench
BENCH_DIR ?= caddyirma/e2e/benchresults
BENCH_UNLOCKS ?= 40
BENCH_LOGINS ?= 100
BENCH_ROUNDS ?= 6
bench:
	rm -rf $(BENCH_OUT) && mkdir -p $(BENCH_OUT) $(BENCH_DIR)
	IRMA_BENCH_OUT=$(abspath $(BENCH_OUT)) CGO_ENABLED=1 $(GO) test -count=1 -timeout 60m -run '^$$' \
		-bench '^BenchmarkLoadRatio$$' -benchtime 1x ./caddyirma/e2e
	IRMA_BENCH_OUT=$(abspath $(BENCH_OUT)) CGO_ENABLED=1 $(GO) test -count=1 -timeout 60m -run '^$$' \
		-bench '^BenchmarkUnlock$$' -benchtime $(BENCH_UNLOCKS)x ./caddyirma/e2e
	IRMA_BENCH_OUT=$(abspath $(BENCH_OUT)) IRMA_BENCH_LOGINS=$(BENCH_LOGINS) IRMA_BENCH_ROUNDS=$(BENCH_ROUNDS) \
		CGO_ENABLED=1 $(GO) test -count=1 -timeout 60m -run '^$$' \
		-bench '^BenchmarkLoginCost$$' -benchtime 1x ./caddyirma/e2e
	$(GO) run ./cmd/irma-benchreport -in $(BENCH_OUT) -json $(BENCH_DIR)/results.json -svg $(BENCH_DIR)/bench.svg

clean:
	rm -rf $(BIN)
