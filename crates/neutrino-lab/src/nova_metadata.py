"""A stand-in for Nova's metadata API, checking what Nova checks (nova/api/metadata/handler.py):
X-Instance-ID, X-Tenant-ID and X-Forwarded-For must be there (else 400), X-Instance-ID-Signature
must be the hex HMAC-SHA256 of the instance id keyed with the shared secret (else 403), and the
instance must exist and belong to the tenant (else 404). It answers meta_data.json per instance
and logs every request it gets (one JSON line each) to the log file.

With CERT KEY CLIENT_CA it serves HTTPS only and requires a client certificate CLIENT_CA signed,
as Nova's metadata API behind a TLS front end that checks clients (Apache's SSLVerifyClient
require): a connection without one is refused in the handshake, and the subject of the one
presented is logged with each request.

usage: nova_metadata.py ADDRESS PORT SECRET [CERT KEY CLIENT_CA] INSTANCES_JSON LOG
  INSTANCES_JSON: {"<instance id>": "<project id>", ...}
"""
import hashlib
import hmac
import http.server
import json
import ssl
import sys

address, port, secret, *tls, instances_file, log_file = sys.argv[1:]
with open(instances_file) as f:
    INSTANCES = json.load(f)


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body, kind="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def setup(self):
        if tls:
            # The handshake, in this connection's thread: one that stalls holds up no other.
            self.request.settimeout(10)
            self.request.do_handshake()
        super().setup()

    def do_GET(self):
        headers = {k: self.headers.get(k) for k in
                   ("X-Instance-ID", "X-Tenant-ID", "X-Forwarded-For", "X-Instance-ID-Signature")}
        client = None
        if tls:
            subject = dict(part[0] for part in self.connection.getpeercert()["subject"])
            client = subject.get("commonName")
        with open(log_file, "a") as log:
            log.write(json.dumps({"path": self.path, "tls": bool(tls), "client": client, **headers}) + "\n")
        instance, tenant = headers["X-Instance-ID"], headers["X-Tenant-ID"]
        if not instance or not tenant or not headers["X-Forwarded-For"]:
            return self.answer(400, "X-Instance-ID, X-Tenant-ID and X-Forwarded-For are required\n")
        expected = hmac.new(secret.encode(), instance.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, headers["X-Instance-ID-Signature"] or ""):
            return self.answer(403, "Invalid proxy request signature.\n")
        if INSTANCES.get(instance) != tenant:
            return self.answer(404, "Instance not found\n")
        if self.path.rstrip("/") == "/openstack/latest/meta_data.json":
            body = {"uuid": instance, "project_id": tenant, "name": instance,
                    "forwarded_for": headers["X-Forwarded-For"]}
            return self.answer(200, json.dumps(body), "application/json")
        return self.answer(404, "Not found\n")

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer((address, int(port)), Handler)
if tls:
    cert, key, client_ca = tls
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(client_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    # A failed handshake raises in setup, which ends that connection only.
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
server.serve_forever()
