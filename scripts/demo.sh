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
echo "== the provider sees the request and accepts it, with the AWS CLI against the fabric's API"
aws=/usr/bin/aws
[ -x "$aws" ] || aws=aws
echo '$ eval "$(pvlink fabric env demo provider)"'
eval "$("$pvlink" fabric env demo provider)"
echo '$ aws ec2 describe-vpc-endpoint-connections --endpoint-url $PVLINK_ENDPOINT_URL'
"$aws" ec2 describe-vpc-endpoint-connections --endpoint-url "$PVLINK_ENDPOINT_URL" --output table \
	--query 'VpcEndpointConnections[].{Endpoint:VpcEndpointId,Owner:VpcEndpointOwner,State:VpcEndpointState,Service:ServiceId}'
sid=$("$aws" ec2 describe-vpc-endpoint-service-configurations --endpoint-url "$PVLINK_ENDPOINT_URL" --query 'ServiceConfigurations[0].ServiceId' --output text)
eid=$("$aws" ec2 describe-vpc-endpoint-connections --endpoint-url "$PVLINK_ENDPOINT_URL" --query 'VpcEndpointConnections[0].VpcEndpointId' --output text)
echo "\$ aws ec2 accept-vpc-endpoint-connections --service-id $sid --vpc-endpoint-ids $eid --endpoint-url \$PVLINK_ENDPOINT_URL"
"$aws" ec2 accept-vpc-endpoint-connections --service-id "$sid" --vpc-endpoint-ids "$eid" --endpoint-url "$PVLINK_ENDPOINT_URL" --output json
echo '$ aws ec2 describe-vpc-endpoints   (as the consumer)'
eval "$("$pvlink" fabric env demo consumer)"
"$aws" ec2 describe-vpc-endpoints --endpoint-url "$PVLINK_ENDPOINT_URL" --output table \
	--query 'VpcEndpoints[].{Endpoint:VpcEndpointId,State:State,Regional:DnsEntries[0].DnsName}'
# The accept is committed at once; give the forwarders a moment to apply it.
for i in $(seq 50); do
	"$pvlink" fabric status demo -o json | grep -q '"phase": "up"' && break
	sleep 0.1
done
echo
echo "== by name, from the consumer VPC: the endpoint's regional DNS name (the VPC's resolver, at its base + 2)"
name=$("$aws" ec2 describe-vpc-endpoints --endpoint-url "$PVLINK_ENDPOINT_URL" --query 'VpcEndpoints[0].DnsEntries[0].DnsName' --output text)
echo "\$ ip netns exec pvl-demo-consumer getent hosts $name"
ip netns exec pvl-demo-consumer getent hosts "$name"
echo "\$ ip netns exec pvl-demo-consumer pvlink client $name:80 --bytes 1048576"
ip netns exec pvl-demo-consumer "$pvlink" client "$name:80" --bytes 1048576
echo
echo "== pvlink fabric probe: one connection from the consumer VPC to each ENI"
"$pvlink" fabric probe -f "$topo"
echo
echo "== pvlink fabric metrics: what the forwarders counted"
"$pvlink" fabric metrics -f "$topo"
echo
echo "== the same through CloudWatch's API, as the consumer reads its endpoint's metrics"
eid=$("$aws" ec2 describe-vpc-endpoints --endpoint-url "$PVLINK_ENDPOINT_URL" --query 'VpcEndpoints[0].VpcEndpointId' --output text)
vpc=$("$aws" ec2 describe-vpc-endpoints --endpoint-url "$PVLINK_ENDPOINT_URL" --query 'VpcEndpoints[0].VpcId' --output text)
svcname=$("$aws" ec2 describe-vpc-endpoints --endpoint-url "$PVLINK_ENDPOINT_URL" --query 'VpcEndpoints[0].ServiceName' --output text)
echo "\$ aws cloudwatch get-metric-statistics --namespace AWS/PrivateLinkEndpoints --metric-name NewConnections --dimensions ... --period 60 --statistics Sum"
"$aws" cloudwatch get-metric-statistics --endpoint-url "$PVLINK_ENDPOINT_URL" --namespace AWS/PrivateLinkEndpoints --metric-name NewConnections \
	--dimensions "Name=Endpoint Type,Value=Interface" "Name=Service Name,Value=$svcname" "Name=VPC Endpoint Id,Value=$eid" "Name=VPC Id,Value=$vpc" \
	--start-time "$(date -u -d '-5 min' +%FT%TZ)" --end-time "$(date -u -d '+1 min' +%FT%TZ)" --period 60 --statistics Sum --output table
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
