"""The edge's CA and certificate: made once, reused, made anew when they no longer serve."""

import datetime
import os
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from server.wrangler_dev.certs import CERT_LIFETIME, RENEW_BEFORE, ensure_certificates, tls_files

NOW = datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC)


def contents(folder: Path) -> list[bytes]:
    files = tls_files(folder)
    return [files.ca.read_bytes(), files.certificate.read_bytes(), files.key.read_bytes()]


def test_a_client_that_trusts_the_ca_accepts_the_edge_as_127_0_0_1(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "wrangler-dev")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(files.certificate, files.key)
    client_context = ssl.create_default_context(cafile=files.ca)
    left, right = socket.socketpair()

    def accept() -> None:
        with server_context.wrap_socket(left, server_side=True) as tls:
            tls.sendall(b"ok")

    thread = threading.Thread(target=accept)
    thread.start()
    with client_context.wrap_socket(right, server_hostname="127.0.0.1") as tls:
        assert tls.recv(2) == b"ok"
    thread.join()


def test_the_key_is_private_and_the_ca_key_is_never_written(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "wrangler-dev")

    assert files.key.stat().st_mode & 0o777 == 0o600
    assert sorted(path.name for path in files.ca.parent.iterdir()) == [
        "ca.pem",
        "server.key",
        "server.pem",
    ]


def test_a_second_run_reuses_the_cached_files(tmp_path: Path) -> None:
    ensure_certificates(tmp_path, NOW)
    first = contents(tmp_path)

    ensure_certificates(tmp_path, NOW + datetime.timedelta(days=30))

    assert contents(tmp_path) == first


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda folder: tls_files(folder).key.unlink(), id="key-missing"),
        pytest.param(lambda folder: tls_files(folder).ca.write_text("junk"), id="ca-unreadable"),
        pytest.param(
            lambda folder: tls_files(folder).key.write_bytes(
                ensure_certificates(folder / "other", NOW).key.read_bytes()
            ),
            id="key-of-another-certificate",
        ),
    ],
)
def test_files_that_do_not_fit_together_are_made_anew(
    tmp_path: Path, spoil: Callable[[Path], object]
) -> None:
    ensure_certificates(tmp_path, NOW)
    first = contents(tmp_path)
    spoil(tmp_path)

    files = ensure_certificates(tmp_path, NOW)

    assert contents(tmp_path)[1] != first[1]
    certificate = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    certificate.verify_directly_issued_by(ca)


def test_a_certificate_close_to_expiry_is_renewed(tmp_path: Path) -> None:
    ensure_certificates(tmp_path, NOW)
    first = contents(tmp_path)

    ensure_certificates(tmp_path, NOW + CERT_LIFETIME - RENEW_BEFORE + datetime.timedelta(days=1))

    assert contents(tmp_path)[1] != first[1]


def test_the_folder_is_made_private(tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "wrangler-dev"

    ensure_certificates(folder, NOW)

    assert os.stat(folder).st_mode & 0o777 == 0o700
