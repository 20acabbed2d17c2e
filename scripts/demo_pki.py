"""The demo's test PKI: a local CA and the certificates `scripts/demo.sh` needs.

    python scripts/demo_pki.py DIR --device-public-key pub.der --device-cn demo-device

writes into DIR:

- ``ca.pem`` / ``ca.key``: a self-signed root CA. The agent trusts it
  (c8y.root_cert_path) and the stand-in cloud accepts client certificates
  it issued.
- ``server.pem`` / ``server.key``: the stand-in cloud's server certificate,
  for ``localhost`` and 127.0.0.1.
- ``cloud-app.pem`` / ``cloud-app.key``: a client certificate with a key
  file, for mosquitto_sub / mosquitto_pub playing the cloud's side.
- ``device.pem``: the device certificate, CN ``--device-cn``, for the public
  key read from the token (DER SubjectPublicKeyInfo, what ``pkcs11-tool
  --read-object --type pubkey`` writes). Its private half stays on the
  token: a real CA would sign a CSR the token signed; the demo's CA simply
  certifies the public key.

The certificates carry the extensions a strict verifier
(``cryptography.x509.verification``, which the agent uses) requires.
Standalone on purpose: the demo must not depend on the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Leave room for a clock that differs a little between processes and machines.
BACKDATE = datetime.timedelta(hours=1)
LIFETIME = datetime.timedelta(days=7)


def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    """Write a PEM key readable by its owner only (it is a private key, even in a demo)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def key_usage(*, cert_sign: bool = False, key_encipherment: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


class DemoCa:
    """A root CA (EC P-256) that issues end-entity certificates."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgeagent demo"),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        now = datetime.datetime.now(datetime.UTC)
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(key_usage(cert_sign=True), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self,
        public_key: CertificateIssuerPublicKeyTypes,
        common_name: str,
        *,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName],
    ) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                key_usage(key_encipherment=isinstance(public_key, rsa.RSAPublicKey)),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self.key, hashes.SHA256())


def load_token_public_key(path: Path) -> CertificateIssuerPublicKeyTypes:
    """The token key's public half: DER SubjectPublicKeyInfo (pkcs11-tool) or PEM."""
    data = path.read_bytes()
    key = (
        serialization.load_pem_public_key(data)
        if data.lstrip().startswith(b"-----BEGIN")
        else serialization.load_der_public_key(data)
    )
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise SystemExit(f"demo_pki.py: {path}: not an EC or RSA public key")
    return key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="where to write the PEM files")
    parser.add_argument(
        "--device-public-key", type=Path, required=True, help="the token key's public key (DER)"
    )
    parser.add_argument("--device-cn", default="demo-device", help="the device id")
    args = parser.parse_args()
    out: Path = args.directory
    out.mkdir(parents=True, exist_ok=True)

    ca = DemoCa("edgeagent demo CA")
    write_cert(ca.cert, out / "ca.pem")
    write_key(ca.key, out / "ca.key")

    server_key = ec.generate_private_key(ec.SECP256R1())
    server = ca.issue(
        server_key.public_key(),
        "localhost",
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    write_cert(server, out / "server.pem")
    write_key(server_key, out / "server.key")

    app_key = ec.generate_private_key(ec.SECP256R1())
    app = ca.issue(
        app_key.public_key(),
        "cloud-app",
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        sans=[x509.DNSName("cloud-app")],
    )
    write_cert(app, out / "cloud-app.pem")
    write_key(app_key, out / "cloud-app.key")

    device = ca.issue(
        load_token_public_key(args.device_public_key),
        args.device_cn,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        sans=[x509.DNSName(args.device_cn)],
    )
    write_cert(device, out / "device.pem")

    written = {
        "ca.pem": "trusted by the agent and by the stand-in cloud (client certificates)",
        "server.pem": "the stand-in cloud (localhost, 127.0.0.1), key in server.key",
        "cloud-app.pem": "the cloud application (mosquitto_sub/pub), key in cloud-app.key",
        "device.pem": "the device, for the key on the token: there is no key file",
    }
    for name, meaning in written.items():
        cert = x509.load_pem_x509_certificate((out / name).read_bytes())
        print(f"  {name:<14} {cert.subject.rfc4514_string()}: {meaning}")


if __name__ == "__main__":
    main()
