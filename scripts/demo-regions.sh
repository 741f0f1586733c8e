#!/usr/bin/env bash
# Cross-Region access and a Region outage, rehearsed: bring up the two-Region
# fabric of examples/two-regions.yaml (a service hosted in us-east-1, offered
# in us-west-2; a consumer endpoint in us-west-2), connect by the endpoint's
# name, take one provider AZ down (the other carries on), then the
# provider's Region (the endpoint fails: no failover across Regions), bring
# both back, and tear everything down, also on failure.
set -euo pipefail
pvlink=${1:-bin/pvlink}
topo=examples/two-regions.yaml
name=two-regions
ns=pvl-$name-consumer

cleanup() {
	"$pvlink" fabric down "$name" >/dev/null || echo "demo-regions: fabric down failed" >&2
}
trap cleanup EXIT

echo "== pvlink fabric up -f $topo"
"$pvlink" fabric up -q -f "$topo"
echo
echo "== the endpoint: its Region, its service's, and its names (fabric status -o json)"
"$pvlink" fabric status "$name" -o json | python3 -c '
import json, sys
for e in json.load(sys.stdin)["endpoints"]:
    print(json.dumps({k: e[k] for k in ("id", "region", "service_region", "dns_names")}, indent=2))'
dns=$("$pvlink" fabric status "$name" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["endpoints"][0]["dns_names"][0])')
target() { # one connection by name: the AZ of the target that answered, or the error
	{ ip netns exec "$ns" "$pvlink" client "$dns:80" --message "hello across Regions
" --timeout "${1:-5s}" 2>&1 || true; } | python3 -c '
import json, sys
text = sys.stdin.read()
try:
    r = json.loads(text[text.index("{"):])
    print("answered by a target in", r["target"]["az"], "proxy header vpce:", r["target"]["proxy"]["vpce_id"])
except Exception:
    print("no answer:", text.strip().splitlines()[-1])'
}
echo
echo "== from us-west-2, by name: $dns"
for i in 1 2 3 4; do target; done
echo
echo "== pvlink fault az-down $name use1-az1: the provider's other AZ carries on once the target there fails its checks"
"$pvlink" fault az-down "$name" use1-az1
sleep 3
for i in 1 2 3 4; do target; done
"$pvlink" fault az-up "$name" use1-az1
echo
echo "== pvlink fault region-down $name us-east-1: the endpoint fails, with no failover to another Region"
"$pvlink" fault region-down "$name" us-east-1
"$pvlink" fabric status "$name" | grep FAULT
target 3s
echo
echo "== pvlink fault region-up $name us-east-1"
"$pvlink" fault region-up "$name" us-east-1
for i in $(seq 20); do
	out=$(target 2s)
	case "$out" in answered*) echo "$out"; break ;; esac
	sleep 0.5
done
echo
echo "== pvlink fabric down $name"
trap - EXIT
"$pvlink" fabric down "$name"
if (ip netns list 2>/dev/null | grep -q "^pvl-$name-"); then
	echo "demo-regions: namespaces left behind" >&2
	exit 1
fi
echo "demo-regions: done; nothing of the fabric is left"
