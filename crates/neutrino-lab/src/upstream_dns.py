"""An upstream resolver for the lab's DNS tests: answers A queries for the names given with
their addresses (NOERROR without answers for other types, NXDOMAIN for other names), and logs
every name asked (one per line).

usage: upstream_dns.py ADDRESS NAMES_JSON LOG     NAMES_JSON: {"example.test": "203.0.113.53"}
"""
import json
import socket
import struct
import sys

address, names_file, log_file = sys.argv[1:4]
with open(names_file) as f:
    NAMES = {k.lower().rstrip("."): v for k, v in json.load(f).items()}

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((address, 53))
while True:
    data, peer = sock.recvfrom(4096)
    if len(data) < 12:
        continue
    ident, flags, qdcount = struct.unpack("!HHH", data[:6])
    pos, labels = 12, []
    while pos < len(data) and data[pos] != 0:
        n = data[pos]
        labels.append(data[pos + 1:pos + 1 + n].decode(errors="replace"))
        pos += 1 + n
    pos += 1
    qtype, qclass = struct.unpack("!HH", data[pos:pos + 4])
    question = data[12:pos + 4]
    name = ".".join(labels).lower()
    with open(log_file, "a") as log:
        log.write(name + "\n")
    known = name in NAMES
    answers = b""
    if known and qtype == 1:
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(NAMES[name])
    rcode = 0 if known else 3
    header = struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, 1 if answers else 0, 0, 0)
    sock.sendto(header + question + answers, peer)
