"""A little internet of our own for egress tests: a network namespace joined to the
host by a veth pair, holding HTTPS (and HTTP) servers at two addresses, with
certificates from a test CA, under names only the platform's resolver knows
(`SANDBAY_NETWORK__EGRESS_HOSTS`). Each server answers with the request it got
(method, path, headers, and their SHA-256) as JSON, so a test sees what arrived."""

import contextlib
import datetime
import ipaddress
import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_SERVER = textwrap.dedent(
    """
    import hashlib, http.server, json, ssl, sys, threading

    class Echo(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def _answer(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode("latin-1") if length else ""
            if self.path.startswith("/bytes/"):
                size = int(self.path.split("/")[2])
                self.send_response(200)
                self.send_header("content-length", str(size))
                self.end_headers()
                chunk = b"x" * 65536
                while size > 0:
                    self.wfile.write(chunk[:size]); size -= len(chunk)
                return
            data = json.dumps({
                "server": self.server.label, "method": self.command, "path": self.path,
                "headers": dict(self.headers.items()), "body": body,
                # What arrived, as a client that must not see it can check it.
                "sha256": {
                    "path": hashlib.sha256(self.path.encode()).hexdigest(),
                    "body": hashlib.sha256(body.encode("latin-1")).hexdigest(),
                    **{k.lower(): hashlib.sha256(v.encode()).hexdigest()
                       for k, v in self.headers.items()},
                },
            }).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        do_GET = do_POST = _answer
        def log_message(self, *args):
            pass

    def serve(address, port, label, cert):
        server = http.server.ThreadingHTTPServer((address, port), Echo)
        server.label = label
        if cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()

    for spec in sys.argv[1:]:
        address, port, label, cert = spec.split(",")
        serve(address, int(port), label, cert)
    print("ready", flush=True)
    threading.Event().wait()
    """
)


@dataclass
class Site:
    name: str
    address: str


@dataclass
class EgressLab:
    """Two sites (`a`, `b`) with HTTPS on 443 and HTTP on 80, and a third address
    (`stray`) that no name leads to."""

    a: Site
    b: Site
    stray: Site
    ca_file: Path
    namespace: str
    hosts: dict[str, list[str]] = field(default_factory=dict)


def _cert(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, name: str, out: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _ca(out: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbay egress test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@contextlib.contextmanager
def egress_lab(workdir: Path, subnet: str = "10.231.0.0/24") -> Iterator[EgressLab]:
    """The namespace, its servers and their CA; all removed on exit."""
    tag = secrets.token_hex(3)
    namespace, host_if, ns_if = f"sbeg-{tag}", f"sbeh{tag}", f"sben{tag}"
    net = ipaddress.ip_network(subnet)
    gateway, a, b, stray = (str(net[i]) for i in (1, 2, 3, 4))
    workdir.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _ca(workdir / "ca.pem")
    lab = EgressLab(
        a=Site(f"alpha-{tag}.egress.test", a),
        b=Site(f"beta-{tag}.egress.test", b),
        stray=Site(f"stray-{tag}.egress.test", stray),
        ca_file=workdir / "ca.pem",
        namespace=namespace,
    )
    specs = []
    for site in (lab.a, lab.b, lab.stray):
        cert = workdir / f"{site.name}.pem"
        _cert(ca_key, ca, site.name, cert)
        specs += [f"{site.address},443,{site.name},{cert}", f"{site.address},80,{site.name},"]
    script = workdir / "servers.py"
    script.write_text(_SERVER)
    proc: subprocess.Popen[str] | None = None
    _run("ip", "netns", "add", namespace)
    try:
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _run("ip", "link", "set", ns_if, "netns", namespace)
        _run("ip", "addr", "add", f"{gateway}/{net.prefixlen}", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        for address in (a, b, stray):
            _run("ip", "-n", namespace, "addr", "add", f"{address}/{net.prefixlen}", "dev", ns_if)
        _run("ip", "-n", namespace, "link", "set", ns_if, "up")
        _run("ip", "-n", namespace, "link", "set", "lo", "up")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, str(script), *specs],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        lab.hosts = {lab.a.name: [a], lab.b.name: [b]}
        yield lab
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
