# pvlink: the two commands that must work on a fresh Debian machine, as root:
#   make demo   bring up a 2-AZ fabric, send traffic through it, show what the
#               targets saw, tear it all down
#   make test   unit tests and the netns integration tests

GO      ?= go
BIN     := bin/pvlink
PKGS    := ./...
# Integration tests need root, /dev/net/tun and network namespaces; they
# skip without root unless CI is set, in which case they fail instead.
TESTFLAGS ?= -count=1 -timeout 15m
# The integration tests run again against a -race build: the relay, the
# runner and the poller carrying traffic, and ctld's changes and restarts.
RACE_TESTS := TestShortExchangesAllEndWithTheirEOF|TestTargetThatSpeaksFirstReachesEveryConsumer|TestEndpointCarriesTrafficOnlyWhileAvailable|TestLiveChangesKeepTheForwardersRunning|TestKilledForwarderIsRestartedWithTheLatestSnapshot|TestAWorkerRestartLeavesTheOtherWorkersFlowsAlone|TestAWorkerThatCannotStartAgainGivesUpItsQueues|TestUnhealthyTargetLosesItsFlows|TestDeregisteredTargetDrains|TestFlowLogsRecordEachDirection|TestACaptureShowsTheHandshake|TestCloudWatchAnswersTheGuidesCommands

.PHONY: all build gvisor demo demo-regions test check-env demo-deps test-deps fuzz bench bench-go vet clean

all: build

# pvlink builds gVisor with the changes in third_party/gvisor (README.md
# there): scripts/gvisor-module.sh lays them over the module go.mod requires,
# in build/gvisor, and writes build/go.mod, go.mod with a replace of it.
# Every go command here uses that go.mod; a plain `go build` builds the
# same program without the changes.
MODFILE := $(CURDIR)/build/go.mod
GOMOD   := -modfile=$(MODFILE)

gvisor:
	@./scripts/gvisor-module.sh $(GO) build

# -buildvcs=auto stamps the commit into the binary (`pvlink version`) even
# where GOFLAGS turns that off; outside a git checkout it stamps nothing.
build: gvisor
	$(GO) build $(GOMOD) -buildvcs=auto -o $(BIN) ./cmd/pvlink

# check-env says what the machine lacks, and installs what Debian packages.
check-env:
	@command -v $(GO) >/dev/null || { echo "make: Go is not installed (https://go.dev/dl/); pvlink needs Go 1.26"; exit 1; }
	@if [ "$$(id -u)" != 0 ]; then echo "make: pvlink's fabric needs root (network namespaces, TUN devices): run as root or with sudo"; exit 1; fi
	@if [ ! -c /dev/net/tun ]; then \
		echo "make: /dev/net/tun is missing; trying to load the tun module"; \
		modprobe tun 2>/dev/null || true; \
		[ -c /dev/net/tun ] || { echo "make: no /dev/net/tun: load the tun module or give this container the device"; exit 1; }; \
	fi
	@command -v ip >/dev/null || { echo "make: installing iproute2 (ip netns, to inspect fabrics)"; apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null; }

# demo-deps installs what the demos drive pvlink with: Debian's AWS CLI
# (the provider's accept, the consumer's describe, CloudWatch) and python3
# (demo-regions reads the fabric's JSON with it).
demo-deps:
	@if [ ! -x /usr/bin/aws ] || ! command -v python3 >/dev/null; then \
		echo "make: installing Debian's awscli and python3 for the demo"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq awscli python3 >/dev/null; fi

# test-deps adds what the tests drive pvlink with: boto3, dig, Prometheus
# (the scrape and dashboard tests), tshark (reads `pvlink capture` files)
# and tmux (the `pvlink top` test).
test-deps: demo-deps
	@if ! /usr/bin/python3 -c 'import boto3' 2>/dev/null || ! command -v dig >/dev/null \
		|| ! command -v prometheus >/dev/null || ! command -v tshark >/dev/null || ! command -v tmux >/dev/null; then \
		echo "make: installing Debian's python3-boto3, bind9-dnsutils (dig), prometheus, tshark and tmux for the tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-boto3 bind9-dnsutils prometheus tshark tmux >/dev/null; fi

demo: check-env demo-deps build
	./scripts/demo.sh $(BIN)

# demo-regions rehearses cross-Region access and a Region outage on
# examples/two-regions.yaml.
demo-regions: check-env demo-deps build
	./scripts/demo-regions.sh $(BIN)

test: build
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory check-env test-deps; fi
	$(GO) vet $(GOMOD) $(PKGS)
	PVLINK_BIN=$(CURDIR)/$(BIN) $(GO) test $(GOMOD) $(TESTFLAGS) -v $(PKGS) 2>&1 | ./scripts/testsummary.sh
	@echo "== the hot paths' benchmarks, once each: a benchmark that no longer runs fails the tests"
	$(GO) test $(GOMOD) -run '^$$' -bench . -benchtime 1x ./proxyproto/ ./dataplane/ ./nat/ ./peer/
	@echo "== the concurrent packages again, under the race detector"
	$(GO) test $(GOMOD) -count=1 -race ./flowtable/ ./nat/ ./proxyproto/ ./dataplane/ ./ctl/...
	@echo "== the relay, runner and poller under load, and ctld, in a -race build of pvlink"
	$(GO) build $(GOMOD) -buildvcs=auto -race -o $(BIN)-race ./cmd/pvlink
	PVLINK_BIN=$(CURDIR)/$(BIN)-race $(GO) test $(GOMOD) $(TESTFLAGS) -run '$(RACE_TESTS)' ./cmd/pvlink/

# Each fuzz target runs FUZZTIME (60 s) on its own; a crash fails the run
# and leaves the input under the package's testdata/fuzz.
FUZZTIME ?= 60s
fuzz: gvisor
	$(GO) test $(GOMOD) -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./proxyproto/
	$(GO) test $(GOMOD) -run '^$$' -fuzz '^FuzzIngress$$' -fuzztime $(FUZZTIME) ./dataplane/
	$(GO) test $(GOMOD) -run '^$$' -fuzz '^FuzzResolver$$' -fuzztime $(FUZZTIME) ./ctl/dns/

# The end-to-end comparison, quick mode (about a minute): pvlink against the
# kernel (routed, DNAT) and HAProxy with send-proxy-v2. It needs Debian's
# haproxy and nftables, which it installs if they are missing.
BENCH_OUT ?= bench-out
bench: check-env build
	@for p in haproxy nft; do command -v $$p >/dev/null || NEED=1; done; \
	if [ -n "$$NEED" ]; then echo "make: installing haproxy and nftables for the benchmark"; \
		apt-get update -qq && apt-get install -y -qq haproxy nftables >/dev/null; fi
	./$(BIN) bench --quick --out $(BENCH_OUT)

# Go benchmarks of the hot paths.
bench-go: gvisor
	$(GO) test $(GOMOD) -run '^$$' -bench . -benchmem ./proxyproto/ ./dataplane/ ./nat/ ./peer/

vet: gvisor
	$(GO) vet $(GOMOD) $(PKGS)

clean:
	rm -rf bin build
