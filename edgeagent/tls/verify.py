"""Verify the cloud's certificate chain and hostname (tlslite does neither).

Uses ``cryptography.x509.verification`` (the WebPKI server policy). When
verification fails we work out *why*, so the user reads "expired" or "issued
for another host" instead of one opaque error.
"""

from __future__ import annotations

import datetime
import ipaddress
import warnings
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from edgeagent.errors import (
    RootCertificatesUnreadable,
    ServerCertificateExpired,
    ServerCertificateUntrusted,
    ServerHostnameMismatch,
    ServerKeyTooWeak,
)

# NIST SP 800-131A / the CA/Browser Forum baseline: RSA-1024 is factorable by a
# well-funded attacker, and a forged CA key forges every server.
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256


class TrustAnchors(list[x509.Certificate]):
    """The CA certificates of one ``<cloud>.root_cert_path``, and where they came from.

    A list, so every place that takes the anchors takes these; ``path`` and
    ``setting`` let a refusal say which file to fix.
    """

    def __init__(self, certs: Sequence[x509.Certificate], path: Path, setting: str = "") -> None:
        super().__init__(certs)
        self.path = path
        self.setting = setting
        """The configuration key, e.g. ``c8y.root_cert_path``; "" when the loader did not say."""


def roots_setting(anchors: Sequence[x509.Certificate], cloud: str = "") -> str:
    """The configuration key the anchors came from, as a fix names it."""
    if isinstance(anchors, TrustAnchors) and anchors.setting:
        return anchors.setting
    return f"{cloud}.root_cert_path" if cloud else "the cloud's root_cert_path"


def roots_text(anchors: Sequence[x509.Certificate], cloud: str = "") -> str:
    """``c8y.root_cert_path (/etc/ssl/certs)``: where the anchors came from, for messages."""
    setting = roots_setting(anchors, cloud)
    return f"{setting} ({anchors.path})" if isinstance(anchors, TrustAnchors) else setting


def load_trust_anchors(root_cert_path: Path, setting: str = "") -> TrustAnchors:
    """Every CA certificate in a PEM file, or in the PEM files of a directory.

    ``setting`` is the configuration key the path came from (``c8y.root_cert_path``),
    for messages. A path that does not exist, cannot be read or holds no CA
    certificate raises RootCertificatesUnreadable: the configuration's
    problem, never the device certificate's.
    """
    named = setting
    setting = setting or "the cloud's root_cert_path"
    fix = (
        f"set {setting} to the PEM file (or directory of PEM files) of the CA that "
        "issued the cloud's server certificate, e.g. /etc/ssl/certs"
    )
    try:
        files = (
            sorted(p for p in root_cert_path.iterdir() if p.is_file())
            if (root_cert_path.is_dir())
            else [root_cert_path]
        )
    except PermissionError as error:
        raise RootCertificatesUnreadable(
            f"cannot list the CA directory {root_cert_path} ({setting}): permission denied",
            f"make {root_cert_path} readable by the user running the agent",
        ) from error
    anchors: dict[bytes, x509.Certificate] = {}
    for file in files:
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise RootCertificatesUnreadable(
                f"the trusted CA file {file} ({setting}) does not exist", fix
            ) from None
        except PermissionError as error:
            raise RootCertificatesUnreadable(
                f"cannot read the trusted CA file {file} ({setting}): permission denied",
                f"make {file} readable by the user running the agent",
            ) from error
        except OSError as error:
            raise RootCertificatesUnreadable(
                f"cannot read the trusted CA file {file} ({setting}): {error.strerror}", fix
            ) from error
        if b"-----BEGIN CERTIFICATE-----" not in data:
            continue  # directories like /etc/ssl/certs hold other files too
        try:
            with warnings.catch_warnings():
                # System stores carry old roots cryptography warns about
                # (negative serials); they are the user's trust, not ours.
                warnings.simplefilter("ignore")
                certs = x509.load_pem_x509_certificates(data)
            for cert in certs:
                anchors[cert.fingerprint(SHA256())] = cert
        except ValueError:
            continue
    if not anchors:
        raise RootCertificatesUnreadable(
            f"no CA certificate found in {root_cert_path} ({setting})", fix
        )
    return TrustAnchors(list(anchors.values()), root_cert_path, named)


def _subject_alt_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(san.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return names


def _hostname_matches(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, tail = host.partition(".")
        return bool(head) and tail == pattern[2:]
    return pattern == host


def verify_server_chain(
    chain: list[x509.Certificate],
    host: str,
    store: Store,
    anchors: Sequence[x509.Certificate] = (),
    now: datetime.datetime | None = None,
    cloud: str = "",
) -> None:
    """Raise one of our TLS errors unless ``chain`` is valid for ``host``.

    ``chain[0]`` is the server's certificate, the rest are intermediates as
    the server sent them. ``store`` is built once per TLS context: a system
    store of ~150 roots costs ~0.5 ms to build, every handshake otherwise.
    ``anchors`` are the certificates ``store`` holds: the diagnosis of a
    failure needs them (a ``Store`` does not give them back), and as
    :class:`TrustAnchors` they name the file. ``cloud`` names the
    configuration section in fixes (``c8y``).
    """
    if not chain:
        raise ServerCertificateUntrusted("the server sent no certificate")
    now = now or datetime.datetime.now(datetime.UTC)
    subject: x509.DNSName | x509.IPAddress
    try:
        subject = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        subject = x509.DNSName(host)
    verifier = PolicyBuilder().store(store).time(now).build_server_verifier(subject)
    try:
        verified = verifier.verify(chain[0], chain[1:])
    except VerificationError as error:
        raise _diagnose(chain, host, anchors, now, str(error), cloud) from error
    # The verified path ends at the trust anchor, which the server never sends:
    # a weak root in the store is as weak as a weak leaf.
    weak = _weak_key_error(verified)
    if weak is not None:
        raise weak


def _key_strength(cert: x509.Certificate) -> str | None:
    """``"RSA 1024 bits"`` or ``"EC secp192r1"`` when the key is too weak, else None."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"RSA {key.key_size} bits"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        return f"EC {key.curve.name} ({key.curve.key_size} bits)"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size} bits"
    return None


def _weak_key_error(certs: Sequence[x509.Certificate]) -> ServerKeyTooWeak | None:
    for position, cert in enumerate(certs):
        strength = _key_strength(cert)
        if strength is None:
            continue
        which = (
            "the server's certificate"
            if position == 0
            else "the CA certificate"
            if position == len(certs) - 1 and cert.issuer == cert.subject
            else "an intermediate CA certificate"
        )
        return ServerKeyTooWeak(
            f"{which} ({cert.subject.rfc4514_string()}) has a {strength} key; the agent "
            f"accepts RSA of at least {MIN_RSA_BITS} bits or EC P-256 and above",
            "the cloud (or the CA in the trust store, if it is the weak one) must "
            "re-issue the certificate with an RSA-2048+ or EC P-256+ key; do not "
            "weaken the check: a key this small can be forged",
        )
    return None


def _path_to_anchor(
    chain: list[x509.Certificate], anchors: Sequence[x509.Certificate]
) -> list[x509.Certificate] | None:
    """The chain from the server's certificate up to a trust anchor, by names and
    signatures only (no dates, no host): whether anything we trust vouches for it."""
    path = [chain[0]]
    spare = list(chain[1:])
    for _ in range(len(chain) + 1):
        current = path[-1]
        if current in anchors:
            return path
        for anchor in anchors:
            if _issued_by(current, anchor):
                return [*path, anchor]
        parent = next((cert for cert in spare if _issued_by(current, cert)), None)
        if parent is None:
            return None
        spare.remove(parent)
        path.append(parent)
    return None


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# What cryptography's verifier says, in a person's words (the rest is passed on).
_VERIFIER_WORDS = (
    (
        "extendedKeyUsage",
        "the server's certificate is not issued for TLS servers (extendedKeyUsage)",
    ),
    ("keyUsage", "a certificate in the chain is not allowed to be used this way (keyUsage)"),
    ("basicConstraints", "a CA certificate in the chain is not marked as a CA (basicConstraints)"),
    ("path length", "the chain is longer than a CA in it allows (pathLenConstraint)"),
    ("max depth", "the chain is longer than the verifier follows"),
)


def _in_words(detail: str) -> str:
    for marker, words in _VERIFIER_WORDS:
        if marker.lower() in detail.lower():
            return words
    return f"the verifier refused it: {detail}"


def _diagnose(
    chain: list[x509.Certificate],
    host: str,
    anchors: Sequence[x509.Certificate],
    now: datetime.datetime,
    detail: str,
    cloud: str = "",
) -> Exception:
    roots = roots_text(anchors, cloud)
    setting = roots_setting(anchors, cloud)
    url = f"{cloud}.url" if cloud else "the cloud's url"
    # Trust first: an impostor's certificate that is also expired must read as
    # "nothing trusts it", not as "check the clock".
    path = _path_to_anchor(chain, anchors)
    if path is None:
        issuer = chain[-1].issuer.rfc4514_string()
        return ServerCertificateUntrusted(
            f"the cloud's certificate is not signed by a CA in {roots}: it was issued by "
            f"{issuer}, and none of the {len(anchors)} CA certificate(s) there is that CA "
            "or leads to it",
            f"set {setting} to the CA that issued the cloud's certificate (the cloud's "
            "documentation names it); if it is right already, something between this "
            "device and the cloud may be intercepting the connection",
        )
    weak = _weak_key_error(path)
    if weak is not None:
        return weak
    for cert in path:
        if now < cert.not_valid_before_utc or now > cert.not_valid_after_utc:
            which = (
                "the server's certificate"
                if cert is chain[0]
                else "the trusted CA certificate"
                if cert is path[-1]
                else "an intermediate CA"
            )
            return ServerCertificateExpired(
                f"{which} ({cert.subject.rfc4514_string()}) is valid only from "
                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; now is {now:%Y-%m-%d %H:%M} UTC",
                "check this device's clock; if it is right, the cloud's certificate "
                "must be renewed",
            )
    names = _subject_alt_names(chain[0])
    if not any(_hostname_matches(name, host) for name in names):
        return ServerHostnameMismatch(
            f"the server's certificate is for {', '.join(names) or 'no host name'}, "
            f"not for {host!r}",
            f"check {url}: it must be the host name the cloud's certificate was issued for",
        )
    return ServerCertificateUntrusted(
        f"the cloud's certificate leads to a CA in {roots}, but the chain breaks a rule "
        f"a server's chain must keep: {_in_words(detail)}",
        "the cloud's operator must fix its certificate chain; do not weaken the check",
    )
