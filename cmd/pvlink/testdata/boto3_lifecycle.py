"""The endpoint lifecycle through boto3, as a script a user would write.

Environment: PVLINK_ENDPOINT_URL, AWS_DEFAULT_REGION, and the two
accounts' keys (CONSUMER_KEY, CONSUMER_SECRET, PROVIDER_KEY,
PROVIDER_SECRET). Prints one line per step and 'lifecycle ok' at the end;
any surprise raises.
"""
import os
import time

import boto3
from botocore.exceptions import ClientError


def client(prefix):
    return boto3.client(
        "ec2",
        endpoint_url=os.environ["PVLINK_ENDPOINT_URL"],
        region_name=os.environ["AWS_DEFAULT_REGION"],
        aws_access_key_id=os.environ[prefix + "_KEY"],
        aws_secret_access_key=os.environ[prefix + "_SECRET"],
    )


def wait_state(ec2, endpoint_id, want, timeout=10):
    deadline = time.time() + timeout
    while True:
        state = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"][0]["State"]
        if state == want:
            return
        if time.time() > deadline:
            raise AssertionError(f"{endpoint_id} is {state}, not {want}, after {timeout}s")
        time.sleep(0.2)


consumer, provider = client("CONSUMER"), client("PROVIDER")

vpc_id = consumer.describe_vpcs()["Vpcs"][0]["VpcId"]
consumer.get_waiter("vpc_available").wait(VpcIds=[vpc_id], WaiterConfig={"Delay": 1, "MaxAttempts": 5})
print("vpc", vpc_id, "available")
subnets = [s["SubnetId"] for s in consumer.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]]
service = consumer.describe_vpc_endpoint_services()["ServiceDetails"][0]
assert service["AcceptanceRequired"], service

endpoint = consumer.create_vpc_endpoint(
    VpcEndpointType="Interface", VpcId=vpc_id, ServiceName=service["ServiceName"], SubnetIds=subnets
)["VpcEndpoint"]
endpoint_id = endpoint["VpcEndpointId"]
assert endpoint["State"] == "pendingAcceptance", endpoint
print("requested", endpoint_id)

try:
    consumer.accept_vpc_endpoint_connections(ServiceId=service["ServiceId"], VpcEndpointIds=[endpoint_id])
    raise AssertionError("the consumer accepted its own request")
except ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidVpcEndpointServiceId.NotFound", e.response

pending = provider.describe_vpc_endpoint_connections(
    Filters=[{"Name": "vpc-endpoint-state", "Values": ["pendingAcceptance"]}]
)["VpcEndpointConnections"]
assert [c["VpcEndpointId"] for c in pending] == [endpoint_id], pending
out = provider.accept_vpc_endpoint_connections(ServiceId=service["ServiceId"], VpcEndpointIds=[endpoint_id])
assert not out.get("Unsuccessful"), out
wait_state(consumer, endpoint_id, "available")
print("accepted", endpoint_id)

provider.reject_vpc_endpoint_connections(ServiceId=service["ServiceId"], VpcEndpointIds=[endpoint_id])
wait_state(consumer, endpoint_id, "rejected")
print("rejected", endpoint_id)

out = consumer.delete_vpc_endpoints(VpcEndpointIds=[endpoint_id])
assert not out.get("Unsuccessful"), out
# deleting while the host lets go of it, then gone.
deadline = time.time() + 10
while True:
    try:
        state = consumer.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"][0]["State"]
        assert state == "deleting", state
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidVpcEndpointId.NotFound", e.response
        break
    if time.time() > deadline:
        raise AssertionError("the deleted endpoint is still described after 10s")
    time.sleep(0.2)
print("deleted", endpoint_id)
print("lifecycle ok")
