"""openstacksdk against Neutrino (noauth): create 250 ports, then page through them with
limit=100 the way the SDK does (following the `next` links). Prints one JSON line of facts."""
import json
import sys

import openstack

url = sys.argv[1]
conn = openstack.connection.Connection(auth_type="none", auth={"endpoint": url}, network_endpoint_override=url)
requests_seen = []
conn.session.session.hooks["response"].append(lambda r, *args, **kwargs: requests_seen.append((r.request.method, r.url)))

net = conn.network.create_network(name="sdk-net")
# Without DHCP: no network:dhcp port among the 250.
conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.98.0.0/22", is_dhcp_enabled=False)
for i in range(250):
    conn.network.create_port(network_id=net.id, name=f"p{i:03d}")

requests_seen.clear()
ports = list(conn.network.ports(network_id=net.id, limit=100))
page_requests = [u for m, u in requests_seen if m == "GET" and "/ports" in u]
print(json.dumps({
    "ports": len(ports),
    "unique": len({p.id for p in ports}),
    "names_sorted": sorted(p.name for p in ports) == [f"p{i:03d}" for i in range(250)],
    "page_requests": len(page_requests),
    "all_limited": all("limit=100" in u for u in page_requests),
}))
