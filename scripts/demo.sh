#!/usr/bin/env bash
# The demo: bring up the 2-AZ fabric of examples/demo.yaml through its ctld,
# show the consumer's connection request waiting for the provider, accept it,
# connect from the consumer VPC to the endpoint's ENI in each AZ, show what
# each target saw and what the forwarders counted, and tear everything down,
# also on failure.
set -euo pipefail
pvlink=${1:-bin/pvlink}
topo=examples/demo.yaml

cleanup() {
	"$pvlink" fabric down -f "$topo" >/dev/null || echo "demo: fabric down failed" >&2
}
trap cleanup EXIT

echo "== pvlink fabric up -f $topo   (starts ctld, which builds the fabric)"
"$pvlink" fabric up -f "$topo"
echo
echo "== pvlink fabric status: the service requires acceptance, so the endpoint waits"
"$pvlink" fabric status -f "$topo"
echo
echo "== pvlink fabric probe: nothing goes through a pendingAcceptance endpoint"
"$pvlink" fabric probe -f "$topo"
echo
echo "== pvlink endpoint accept demo web   (the provider accepts the request)"
"$pvlink" endpoint accept demo web
"$pvlink" fabric status -f "$topo" | grep -E '^(ENDPOINT|vpce-)'
echo
echo "== pvlink fabric probe: one connection from the consumer VPC to each ENI"
"$pvlink" fabric probe -f "$topo"
echo
echo "== pvlink fabric metrics: what the forwarders counted"
"$pvlink" fabric metrics -f "$topo"
echo
echo "== pvlink fabric down"
trap - EXIT
"$pvlink" fabric down -f "$topo"
left=$( (ip netns list 2>/dev/null | grep '^pvl-demo-') || true)
if [ -n "$left" ]; then
	echo "demo: namespaces left behind: $left" >&2
	exit 1
fi
if pgrep -f -- "--pid-file /run/pvlink/demo/" >/dev/null; then
	echo "demo: processes of the fabric left behind" >&2
	exit 1
fi
echo "demo: done; nothing of the fabric is left"
