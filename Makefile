# Loomi Pay — the two commands a newcomer needs:
#   make run    the whole stack locally (API + webhook + processor + Lakala sandbox)
#   make test   every test (real PostgreSQL and Redis; see README)
GO ?= go

.PHONY: run test lint unit

run:
	$(GO) run ./cmd/loomipay dev

test: lint unit

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -count=1 -timeout 10m ./...
