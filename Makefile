# Loomi Pay — the two commands a newcomer needs:
#   make run    the whole stack locally (API + webhook + processor + Lakala sandbox)
#   make test   every test (real PostgreSQL and Redis; see docs/LOCAL.md), and at its end what it skipped
GO ?= go

.PHONY: run test test-steps lint cfn-lint unit build e2e guide-clients bench bench-smoke chaos chaos-cluster crashpoints crashpoints-sample crashpoints-run console-screenshots sdk fuzz fuzz-smoke

# The Lambda functions, each built to bin/<fn>/bootstrap and zipped to bin/<fn>.zip.
FUNCTIONS := createorder getorder refund webhook processor console migrate sandbox
# What SAM's go1.x builder does with GOFLAGS set as docs/DEPLOYING.md shows: a static arm64 binary
# without the RPC runtime (provided.al2023 only speaks the Runtime API), paths and symbols stripped.
LAMBDA_BUILD := CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w'

# RUN_FLAGS passes flags to loomipay dev, e.g. make run RUN_FLAGS='--addr 127.0.0.1:3001'.
RUN_FLAGS ?=
# Built, then exec'd rather than go run: go run exits 1 when interrupted even after the program
# stopped cleanly, which made Ctrl-C end with "make: *** Error 1".
run:
	@mkdir -p bin
	$(GO) build -o bin/loomipay ./cmd/loomipay
	exec bin/loomipay dev $(RUN_FLAGS)

# make test runs the steps with LOOMIPAY_SKIP_LOG naming a file in which every test skipped for a
# missing tool or data (internal/testskip; cfn-lint and the guide's check below) writes one line:
# what is missing and how to enable it. At the end, pass or fail, it prints them, one line per
# cause with how many tests it stopped. Under CI=true (.ci/run) such tests fail instead.
test:
	@skips=$$(mktemp); \
	LOOMIPAY_SKIP_LOG=$$skips $(MAKE) --no-print-directory test-steps; status=$$?; \
	if [ -s $$skips ]; then \
	  echo; echo "make test SKIPPED (each line: what is missing, how to enable it):"; \
	  awk -F'\t' '{ n[$$1]++; if (!($$1 in first)) { first[$$1] = $$2; order[++k] = $$1 } } \
	    END { for (i = 1; i <= k; i++) printf "  SKIP: %s — %d test(s), e.g. %s\n", order[i], n[order[i]], first[order[i]] }' $$skips; \
	else echo; echo "make test skipped nothing."; fi; \
	rm -f $$skips; exit $$status

test-steps: lint unit chaos-cluster crashpoints-sample sdk fuzz-smoke guide-clients bench-smoke

lint: cfn-lint
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) -C tools vet ./...
	$(GO) -C sdk/go vet ./...

# template.yaml through AWS's own linter (cfn-lint, which expands the SAM transform with
# aws-sam-translator), as AWS users run it before a deploy: any error or warning fails. A warning
# that does not apply is suppressed in the template itself (Metadata: cfn-lint: config:
# ignore_checks) with its reason. CI (CI=true) requires it; elsewhere it is skipped with a hint.
cfn-lint:
	@if command -v cfn-lint >/dev/null 2>&1; then cfn-lint template.yaml; \
	elif [ "$$CI" = true ]; then echo "cfn-lint is not installed (CI requires it): pip install cfn-lint" >&2; exit 1; \
	else echo "skipping cfn-lint on template.yaml: not installed (pip install cfn-lint)"; \
	  if [ -n "$$LOOMIPAY_SKIP_LOG" ]; then printf 'cfn-lint is not installed: template.yaml not linted (enable: pip install cfn-lint)\tmake lint\n' >> "$$LOOMIPAY_SKIP_LOG"; fi; fi

unit:
	$(GO) test -race -count=1 -timeout 10m ./...

# The Go SDK (its own module, sdk/go) against loomipay dev built from this tree, on the local
# PostgreSQL (a database of its own; needs psql) and Redis.
sdk:
	$(GO) -C sdk/go test -race -count=1 -timeout 5m ./...

# The ledger-agreement property suite (internal/chaos): SCHEDULES seeded random schedules (300 by
# default), PARALLEL at a time, PROCESSORS processors each; SEED=… re-runs one schedule (a failing
# schedule prints its seed). CLUSTER=1 puts their streams on a real three-master Redis Cluster
# (redis-server 7 processes the suite starts). make test runs a dozen of them under the race
# detector, and three more on a cluster (chaos-cluster).
SCHEDULES ?= 300
PARALLEL ?= 8
PROCESSORS ?= 1
CLUSTER ?=
chaos:
	SEED=$(SEED) $(GO) test -count=1 -timeout 60m ./internal/chaos -run TestLedgerAgreement \
	  -schedules $(SCHEDULES) -parallel $(PARALLEL) -processors $(PROCESSORS) $(if $(CLUSTER),-redis-cluster)

# The crash-point suite (internal/crashpoints, built with -tags crashpoints): every crash point of
# the money path (shared/crash) in every flow that meets it, the process dying there or its
# deadline expiring there, each case run to quiescence and checked against the ledger. It prints
# how many points and cases it ran. The whole suite takes longer than make test's budget for it,
# so make test runs a seeded sample (CRASH_SAMPLE cases; a failing run prints its seed).
CRASH_SAMPLE ?= 60
CRASH_FLAGS ?=
crashpoints:
	@$(MAKE) --no-print-directory crashpoints-run CRASH_FLAGS='$(CRASH_FLAGS)'

crashpoints-sample:
	@$(MAKE) --no-print-directory crashpoints-run CRASH_FLAGS='-sample $(CRASH_SAMPLE) $(CRASH_FLAGS)'

crashpoints-run:
	@log=$$(mktemp); $(GO) test -count=1 -tags crashpoints -timeout 40m ./internal/crashpoints -run 'TestEveryCrashPoint' -v $(CRASH_FLAGS) > $$log 2>&1; \
	status=$$?; grep -E '^(--- FAIL|    --- FAIL|ok|FAIL)|crash points|a sample of|^\s+crashpoints_test.go:[0-9]+: (no quiescence|.*want|.*has no case)' $$log; \
	grep -E '^    --- PASS' $$log | grep -vc '/probe ' | xargs printf 'crash-point cases passed: %s\n'; rm -f $$log; exit $$status

chaos-cluster:
	$(GO) test -race -count=1 -timeout 5m ./internal/chaos -run TestLedgerAgreement -schedules 3 -redis-cluster

# The integration guide's own Python and Node.js clients, unedited, against the local stack.
# Listed after unit in test, so it starts on a warm build cache.
guide-clients:
	GO=$(GO) clients/run.sh

# bootstrap sits at the zip root, where provided.al2023 looks for it, executable. zip is used
# when installed, else tools/lambdazip (the Go standard library's archive/zip).
build:
	@set -e; for fn in $(FUNCTIONS); do \
	  rm -rf bin/$$fn bin/$$fn.zip; \
	  $(LAMBDA_BUILD) -o bin/$$fn/bootstrap ./functions/$$fn; \
	  if command -v zip >/dev/null 2>&1; then zip -qj bin/$$fn.zip bin/$$fn/bootstrap; \
	  else $(GO) -C tools run ./lambdazip $(CURDIR)/bin/$$fn.zip $(CURDIR)/bin/$$fn/bootstrap; fi; \
	  printf '%-12s bootstrap %6s KiB   zip %6s KiB\n' $$fn $$(( $$(wc -c < bin/$$fn/bootstrap) / 1024 )) $$(( $$(wc -c < bin/$$fn.zip) / 1024 )); \
	done

# The five binaries, built for this machine, under the Lambda Runtime Interface Emulator
# against real PostgreSQL and Redis (part of unit too; this runs it alone).
e2e:
	$(GO) test -count=1 -timeout 5m -v ./e2e/

# The performance suite (bench/): every row at full size against real PostgreSQL, Redis and the
# sandbox, repeated, in under 10 minutes; rewrites docs/BENCHMARKS.md. Row 3 needs wrk
# (apt-get install wrk); without it the row is reported as not run.
bench:
	@mkdir -p docs
	$(GO) test ./bench -count=1 -timeout 20m -v -run 'TestReport' -report=$(CURDIR)/docs/BENCHMARKS.md

# Every row and every benchmark at tiny size, in seconds, so the suite cannot rot.
bench-smoke:
	$(GO) test ./bench -count=1 -timeout 5m -run 'TestReport' -bench . -benchtime 1x -smoke

# Fuzz targets (every parser of outside input: request bodies, notifications, Authorization,
# amounts, API keys). Their committed seed corpora (testdata/fuzz/) run in every go test; these
# targets also mutate them, FUZZTIME per target: briefly in make test, longer in make fuzz. The
# budgets are counts of inputs, not durations: Go 1.26's fuzzing coordinator can report a spurious
# "context deadline exceeded" when a -fuzztime duration ends under load (golang/go#75804, fixed in
# Go 1.27), which would fail a run that found nothing.
FUZZ_PKGS := ./shared/pay ./shared/lakala ./shared/service
FUZZTIME ?= 1000000x
fuzz:
	@set -e; for pkg in $(FUZZ_PKGS); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
	    $(GO) test $$pkg -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME); \
	  done; \
	done

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=20000x

# the console's browser test, saving its screenshots to docs/console (needs chromium and
# npm ci in e2e/console).
console-screenshots:
	CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -v -run TestConsoleInBrowser ./e2e/console/
