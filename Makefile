# The README's two commands are `make run` and `make test`.
GO      ?= go
PKGS    ?= ./...

.PHONY: run test test-short lint bench demo build bench-load

## run: the service on the embedded default (SQLite under ./data, http://localhost:8080)
run:
	$(GO) run ./cmd/connect

## build: the binaries into ./bin
build:
	$(GO) build -o bin/ ./cmd/...

## test: vet, gofmt check and every test with the race detector. Storage
## tests also run on PostgreSQL: TEST_DATABASE_URL if set, otherwise a
## throwaway server started by scripts/testpg.sh when PostgreSQL's binaries
## are installed (skipped, with a visible message, when they are not).
test:
	$(GO) vet $(PKGS)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	./scripts/with-testpg.sh $(GO) test -race -count=1 -p 1 -timeout 30m $(PKGS)

## demo: a first look — the service, a simulated Jira site, pairing, a full sync
demo:
	$(GO) run ./cmd/connect demo

## lint: go vet and gofmt (staticcheck when installed)
lint:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l .)" || (gofmt -l .; exit 1)
	@command -v staticcheck >/dev/null && staticcheck $(PKGS) || true

## bench: micro-benchmarks of the hot paths (see BENCHMARKS.md for the load runs)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/atlassianjwt/

## bench-load: JWT-verified webhook load on PostgreSQL against the built binary (see BENCHMARKS.md)
.PHONY: bench-load
bench-load:
	GO=$(GO) ./scripts/bench-webhooks.sh
