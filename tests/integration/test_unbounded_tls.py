"""Issue 22 item 8 over TLS, as Trestle is reached: the client's watched HTTPS connections
verify the certificate and read pages as before, and the whole-answer deadline ends a
trickled answer on a TLS socket too."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from trestle_tasks.core.errors import InvalidResponseError
from trestle_tasks.trestle.client import new_session
from trestle_tasks.trestle.query import ODataQuery

from .hostile_stream import cause_of, client_for, hostile, send_json
from .test_unbounded_responses import fetch_in_thread

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def tls_session(cert_path: Path) -> requests.Session:
    session = new_session()
    session.verify = str(cert_path)
    session.trust_env = False  # REQUESTS_CA_BUNDLE would win over `verify`
    return session


def serve_tls(route, certificate: tuple[Path, Path]) -> Iterator[str]:  # type: ignore[no-untyped-def]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return hostile(route, tls=context)


def test_pages_are_read_over_verified_tls(certificate):
    def route(handler: BaseHTTPRequestHandler) -> None:
        send_json(handler, {"value": [{"ListingKey": "a"}]})

    with serve_tls(route, certificate) as base:
        assert base.startswith("https://")
        client = client_for(base, session=tls_session(certificate[0]))
        assert client.get_page(ODataQuery("Property")).records == [{"ListingKey": "a"}]
        stranger = client_for(base)  # the system's CAs: this certificate is not one of them
        with pytest.raises(Exception, match="SSLError"):
            stranger.get_page(ODataQuery("Property"))


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_trickled_answer_over_tls_ends_at_the_deadline(certificate, part):
    def route(handler: BaseHTTPRequestHandler) -> None:
        if part == "headers":
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        else:
            handler.send_response(200)
            handler.send_header("Content-Length", "100000")
            handler.end_headers()
        for _ in range(100000):
            handler.wfile.write(b"a")
            handler.wfile.flush()
            time.sleep(0.5)

    with serve_tls(route, certificate) as base:
        client = client_for(base, timeout_s=1.0, session=tls_session(certificate[0]))
        outcome, elapsed = fetch_in_thread(client, 30)
    assert outcome, f"the trickled {part}: still being read after {elapsed:.0f} s"
    error = cause_of(outcome[0]) if outcome[0] is not None else None
    assert isinstance(error, InvalidResponseError), outcome
    assert "still arriving 5 s after the request was sent" in str(error)
    assert 4.5 <= elapsed < 10, elapsed
