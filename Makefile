# plaudhook's build. Every Go command runs with cgo (mattn/go-sqlite3) and the sqlite_fts5 tag.
export CGO_ENABLED := 1
TAGS     := sqlite_fts5
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
GO       ?= go
BIN      := bin/plaudhook

.PHONY: all run build generate check-generated test test-short lint bench clean

all: build

## run: build and serve on 127.0.0.1:8080 with ./data/plaudhook.db (first run prints the admin password)
run: build
	./$(BIN) serve --log-level $${PLAUDHOOK_LOG_LEVEL:-info}

## build: compile bin/plaudhook
build:
	$(GO) build -tags $(TAGS) -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/plaudhook

## generate: regenerate templ views
generate:
	$(GO) tool templ generate

## check-generated: fail if the committed templ output is stale
check-generated:
	$(GO) tool templ generate
	@git diff --exit-code -- '*_templ.go' || (echo "generated views are stale: run make generate and commit" && exit 1)
	@test -z "$$(git status --porcelain -- '*_templ.go')" || (echo "untracked generated views: commit them" && exit 1)

## test: the whole suite, with the race detector, including browser tests (needs chromium)
test: lint check-generated
	$(GO) test -tags $(TAGS) -race -count=1 -timeout 30m -cover ./...

## test-short: the suite without the race detector, for a quick loop
test-short:
	$(GO) test -tags $(TAGS) -count=1 ./...

## lint: go vet and gofmt
lint:
	$(GO) vet -tags $(TAGS) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '_templ.go$$'))" || (gofmt -l $$(git ls-files '*.go' | grep -v '_templ.go$$'); echo "gofmt needed"; exit 1)

## bench: Go benchmarks, then the load tool against a fresh server beside a bare net/http handler
bench: build
	$(GO) test -tags $(TAGS) -run '^$$' -bench . -benchmem -count 3 ./...
	./$(BIN) bench --duration $${BENCH_DURATION:-3s}

## clean: remove build output (never ./data)
clean:
	rm -rf bin
