"""The TLS identity of the fake preview edge on 127.0.0.1:443, made once and cached.

    <cache_dir>/wrangler-dev/ca.pem       a CA that only `wrangler dev`'s own processes trust
    <cache_dir>/wrangler-dev/server.pem   the edge's certificate, signed by that CA
    <cache_dir>/wrangler-dev/server.key   its private key (mode 0600)

workerd checks the edge's certificate, and Miniflare adds the CAs named by NODE_EXTRA_CA_CERTS
to workerd's trust store; only the child process gets that variable, so nothing else on the
machine trusts this CA. The CA's private key is never written: it signs the one certificate and
is dropped, so a copy of the cache cannot vouch for any other name. Everything is made anew when
a file is missing, unreadable, expiring within RENEW_BEFORE, or names other hosts.
"""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from engine.durable import write_atomically

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
# The names wrangler dials: the IP trick makes the preview host "127.0.0.1" (see edge.py).
DNS_NAMES = ("127.0.0.1", "localhost")
CA_LIFETIME = datetime.timedelta(days=3650)
CERT_LIFETIME = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    certificate: Path
    key: Path


def tls_files(folder: Path) -> TLSFiles:
    return TLSFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")


def ensure_certificates(folder: Path, now: datetime.datetime | None = None) -> TLSFiles:
    """The cached CA and edge certificate in `folder`, made anew unless all three still serve."""
    now = now or datetime.datetime.now(datetime.UTC)
    files = tls_files(folder)
    if not _usable(files, now):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _issue(files, now)
    return files


def _usable(files: TLSFiles, now: datetime.datetime) -> bool:
    try:
        ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
        certificate = x509.load_pem_x509_certificate(files.certificate.read_bytes())
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return (
        key.public_key() == certificate.public_key()
        and min(ca.not_valid_after_utc, certificate.not_valid_after_utc) - now > RENEW_BEFORE
        and LOOPBACK in names.get_values_for_type(x509.IPAddress)
        and set(DNS_NAMES) <= set(names.get_values_for_type(x509.DNSName))
    )


def _issue(files: TLSFiles, now: datetime.datetime) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "workers-ai-local wrangler-dev CA")]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(certificate_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.IPAddress(LOOPBACK)]
    names += [x509.DNSName(name) for name in DNS_NAMES]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(certificate_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # mkstemp makes each file mode 0600. A crash between the writes leaves a key and a
    # certificate that do not match, which `_usable` rejects: the next run makes all anew.
    write_atomically(files.key, key_pem.decode())
    write_atomically(
        files.certificate, certificate.public_bytes(serialization.Encoding.PEM).decode()
    )
    write_atomically(files.ca, ca.public_bytes(serialization.Encoding.PEM).decode())


def _key_usage(*, certificate_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not certificate_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_sign,
        crl_sign=certificate_sign,
        encipher_only=False,
        decipher_only=False,
    )
