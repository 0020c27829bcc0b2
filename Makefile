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

.PHONY: all build wallet upstream demo-scheme run run-https test vet staticcheck fmt-check clean

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

# staticcheck, at the version the project is clean with, from the Go module
# proxy (nothing to install by hand).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
staticcheck:
	CGO_ENABLED=1 $(GO) run $(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf $(BIN)
