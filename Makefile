# caddyregister: `make test` is the one test command (CI runs it through
# .ci/run on a fresh clone, so it installs what it needs).

GO        ?= go
SUDO      := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
XCADDY    ?= $(shell $(GO) env GOPATH)/bin/xcaddy
# An execution count, not a duration: with a duration, Go before 1.27 can
# fail a clean run with "context deadline exceeded" when the deadline
# meets a worker mid-input (golang/go#75804; seen here on FuzzDecodeCreate).
FUZZTIME  ?= 100000x

.PHONY: test deps fmt-check vet gotest fuzz run xcaddy bench screenshots

test: deps fmt-check vet gotest fuzz

# redis-server is what the tests run against (never an in-memory fake);
# python3-requests and node run the saymon document's own client examples;
# curl and jq the README's user journey.
APT_INSTALL = $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
deps:
	@command -v redis-server >/dev/null 2>&1 || { echo "installing redis-server"; $(APT_INSTALL) redis-server >/dev/null; }
	@# redis-cli joins and reshards the test cluster (testredis.StartCluster).
	@command -v redis-cli >/dev/null 2>&1 || { echo "installing redis-tools"; $(APT_INSTALL) redis-tools >/dev/null; }
	@python3 -c 'import requests' 2>/dev/null || /usr/bin/python3 -c 'import requests' 2>/dev/null || \
		{ echo "installing python3-requests"; $(APT_INSTALL) python3-requests >/dev/null; }
	@command -v node >/dev/null 2>&1 || { echo "installing nodejs"; $(APT_INSTALL) nodejs >/dev/null; }
	@# curl and jq run the README's user journey (TestUserJourney).
	@command -v jq >/dev/null 2>&1 && command -v curl >/dev/null 2>&1 || { echo "installing jq curl"; $(APT_INSTALL) jq curl >/dev/null; }
	@# Headless Chromium runs the hosted pages' browser tests (TestPagesBrowser).
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ echo "installing chromium"; $(APT_INSTALL) chromium >/dev/null; }
	@redis-server --version

fmt-check:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

gotest:
	$(GO) test -race -timeout 9m ./...
	@# sync.Pool drops objects at random under -race, so this one runs without it.
	$(GO) test -count=1 -run '^(TestArgon2idHashAllocations|TestArgon2idScratchReused)$$' ./caddyregister/password/

# Short fuzz runs of the request decoders, seeded with the documents' samples,
# and of the identifier key (a key's key is itself).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeJSON$$' -fuzztime $(FUZZTIME) ./caddyregister/contract/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCreate$$' -fuzztime $(FUZZTIME) ./caddyregister/contract/indiqus/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeAddUser$$' -fuzztime $(FUZZTIME) ./caddyregister/contract/soajs/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRegister$$' -fuzztime $(FUZZTIME) ./caddyregister/contract/rpost/
	$(GO) test -run '^$$' -fuzz '^FuzzIdentifierKey$$' -fuzztime $(FUZZTIME) ./caddyregister/store/

# Screenshots of each hosted page at desktop and phone width, for the
# README: the browser test's journey, writing docs/screenshots/*.png.
screenshots: deps
	mkdir -p docs/screenshots
	PAGES_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestPagesBrowser$$' ./tests/

run:
	$(GO) run ./cmd/caddy run --config Caddyfile

# Builds ./caddy from xcaddy.json with xcaddy. The local module is pinned
# to a fake version and replaced by this checkout, because plain
# `--with mod=.` cannot resolve an unpublished module path.
xcaddy:
	@[ -x "$(XCADDY)" ] || $(GO) install github.com/caddyserver/xcaddy/cmd/xcaddy@latest
	$(XCADDY) build $$($(GO) run ./internal/xcaddyargs xcaddy.json) --output ./caddy

# Performance figures on this machine (not part of `make test`; takes a few
# minutes, loopback only): bare hash rate, registrations/s on Redis and on
# the embedded store, cheap paths vs `respond`, the 500-client overload
# check and Redis round trips per registration. Prints a summary table with
# PASS/FAIL against the targets; fails only when a step could not run.
# Flags: make bench BENCHFLAGS='-reg-d 10s -over-c 200' (see internal/bench).
bench: deps
	GO=$(GO) $(GO) run ./internal/bench $(BENCHFLAGS)
