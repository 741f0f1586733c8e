#!/usr/bin/env bash
# The demo: bring up the 2-AZ fabric of examples/demo.yaml, connect from the
# consumer VPC to the endpoint's ENI in each AZ, show what each target saw,
# show the forwarders' counters, and tear everything down, also on failure.
set -euo pipefail
pvlink=${1:-bin/pvlink}
topo=examples/demo.yaml

cleanup() {
	"$pvlink" fabric down -f "$topo" >/dev/null || echo "demo: fabric down failed" >&2
}
trap cleanup EXIT

echo "== pvlink fabric up -f $topo"
"$pvlink" fabric up -f "$topo"
echo
echo "== pvlink fabric status"
"$pvlink" fabric status -f "$topo"
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
echo "demo: done; nothing of the fabric is left"
