"""The client's side of a TLS 1.2 handshake after the ServerHello, on ``cryptography``.

tlslite-ng 0.8.2's own TLS 1.2 key exchange cannot be used as it is:

- ECDHE runs on python-ecdsa (P-256/P-384) or pure-Python X25519;
- it checks the ServerKeyExchange signature and its own CertificateVerify
  through python-ecdsa attributes (``public_key.curve.baselen``), and cuts an
  ECDSA digest to the curve's size, so a P-256 key asked for SHA-384 signs
  a 32-byte stub of the digest under the name "sha384";
- it refuses a CertificateRequest that lists no ``rsa`` signature algorithm
  (an ECDSA-only or PSS-only server) and, when the server lists nothing the
  key can make, signs with its own first choice anyway;
- it verifies the server's chain only after ServerHelloDone.

So :func:`client_key_exchange` replaces ``TLSConnection._clientKeyExchange``
for the ECDHE suites we offer. It verifies the server's chain the moment its
Certificate arrives, checks the ServerKeyExchange signature with
``cryptography`` against the server's key and a scheme we offered, computes
the shared secret with ``cryptography``, and has the token sign the
CertificateVerify with a scheme from the server's CertificateRequest.
tlslite keeps the message parsing, the transcript hashes and the PRF
(``hashlib``/``hmac``: C code) and the Finished exchange.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from tlslite.constants import (
    AlertDescription,
    CertificateType,
    CipherSuite,
    ClientCertificateType,
    ContentType,
    ECCurveType,
    HandshakeType,
    SignatureScheme,
)
from tlslite.messages import Certificate, CertificateRequest, CertificateVerify, ClientKeyExchange

from edgeagent.errors import TlsHandshakeFailed, UnsupportedKeyType
from edgeagent.signing.signer import HashName, Padding, PublicKey, Signer
from edgeagent.tls.kex import exchange_for, group_name

Scheme = tuple[int, int]

# The only TLS 1.2 suites we offer and accept: ECDHE, AEAD (RFC 5289, RFC 7905).
TLS12_SUITES = (
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
)
_ECDSA_SUITES = frozenset(TLS12_SUITES[:3])

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}

# Signature schemes a TLS 1.2 server may sign its key exchange with: the ones
# the ClientHello offers (client.handshake_settings). No SHA-1, no SHA-224.
SERVER_SCHEMES: dict[Scheme, tuple[str, str]] = {
    SignatureScheme.ecdsa_secp256r1_sha256: ("ecdsa", "sha256"),
    SignatureScheme.ecdsa_secp384r1_sha384: ("ecdsa", "sha384"),
    SignatureScheme.ecdsa_secp521r1_sha512: ("ecdsa", "sha512"),
    SignatureScheme.rsa_pss_rsae_sha256: ("pss", "sha256"),
    SignatureScheme.rsa_pss_rsae_sha384: ("pss", "sha384"),
    SignatureScheme.rsa_pss_rsae_sha512: ("pss", "sha512"),
    SignatureScheme.rsa_pss_pss_sha256: ("pss", "sha256"),
    SignatureScheme.rsa_pss_pss_sha384: ("pss", "sha384"),
    SignatureScheme.rsa_pss_pss_sha512: ("pss", "sha512"),
    SignatureScheme.rsa_pkcs1_sha256: ("pkcs1v15", "sha256"),
    SignatureScheme.rsa_pkcs1_sha384: ("pkcs1v15", "sha384"),
    SignatureScheme.rsa_pkcs1_sha512: ("pkcs1v15", "sha512"),
    SignatureScheme.ed25519: ("ed25519", ""),
}

# What our key signs a TLS 1.2 CertificateVerify with, best first: the
# first one the server's CertificateRequest lists wins.
_EC_CURVE_HASH: dict[str, HashName] = {
    "secp256r1": "sha256",
    "secp384r1": "sha384",
    "secp521r1": "sha512",
}
_RSA_PREFERENCE: tuple[tuple[Scheme, HashName, Padding], ...] = (
    (SignatureScheme.rsa_pss_rsae_sha256, "sha256", "pss"),
    (SignatureScheme.rsa_pkcs1_sha256, "sha256", "pkcs1v15"),
    (SignatureScheme.rsa_pss_rsae_sha384, "sha384", "pss"),
    (SignatureScheme.rsa_pss_rsae_sha512, "sha512", "pss"),
    (SignatureScheme.rsa_pkcs1_sha384, "sha384", "pkcs1v15"),
    (SignatureScheme.rsa_pkcs1_sha512, "sha512", "pkcs1v15"),
)
_ECDSA_SCHEMES: dict[HashName, Scheme] = {
    "sha256": SignatureScheme.ecdsa_secp256r1_sha256,
    "sha384": SignatureScheme.ecdsa_secp384r1_sha384,
    "sha512": SignatureScheme.ecdsa_secp521r1_sha512,
}


def scheme_text(scheme: Scheme) -> str:
    return SignatureScheme.toRepr(scheme) or f"({scheme[0]}, {scheme[1]})"


def server_signature_refusal(
    key: Any, scheme: Scheme, signature: bytes, signed: bytes, cipher_suite: int
) -> str | None:
    """Why the ServerKeyExchange signature is not acceptable, or None when it verifies."""
    if cipher_suite in _ECDSA_SUITES:
        if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            return "the server chose an ECDSA cipher suite but its certificate has no EC key"
    elif not isinstance(key, rsa.RSAPublicKey):
        return "the server chose an RSA cipher suite but its certificate has no RSA key"
    kind, hash_name = SERVER_SCHEMES.get(scheme, ("", ""))
    if not kind:
        return f"the server signed with {scheme_text(scheme)}, which we did not offer"
    try:
        if kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            if key.curve.name not in _EC_CURVE_HASH:
                return f"the server's key is on {key.curve.name}, which we do not accept"
            key.verify(signature, signed, ec.ECDSA(_HASHES[hash_name]))
        elif kind == "pss" and isinstance(key, rsa.RSAPublicKey):
            algorithm = _HASHES[hash_name]
            pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
            key.verify(signature, signed, pss, algorithm)
        elif kind == "pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), _HASHES[hash_name])
        elif kind == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signed)
        else:
            return f"the server signed with {scheme_text(scheme)}, which its key cannot make"
    except InvalidSignature:
        return "the server's key exchange signature does not verify with its certificate's key"
    return None


def certificate_verify_scheme(
    public: PublicKey, server_schemes: list[Scheme]
) -> tuple[Scheme, HashName, Padding] | None:
    """The scheme our key signs the CertificateVerify with: one the server listed."""
    offered = set(server_schemes)
    if isinstance(public, ec.EllipticCurvePublicKey):
        own = _EC_CURVE_HASH.get(public.curve.name)
        if own is None:
            return None
        # The curve's own hash first; TLS 1.2 lets any ECDSA hash go with any curve.
        candidates: tuple[HashName, ...] = (own, "sha256", "sha384", "sha512")
        for ec_hash in candidates:
            if _ECDSA_SCHEMES[ec_hash] in offered:
                return _ECDSA_SCHEMES[ec_hash], ec_hash, "ecdsa"
        return None
    for scheme, hash_name, pad in _RSA_PREFERENCE:
        if scheme in offered:
            return scheme, hash_name, pad
    return None


def _verify_own(
    public: PublicKey, signature: bytes, digest: bytes, hash_name: str, pad: str
) -> bool:
    """Check the token's signature before it leaves (a faulty signature can leak the key)."""
    algorithm = _HASHES[hash_name]
    prehashed = utils.Prehashed(algorithm)
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, digest, ec.ECDSA(prehashed))
        elif pad == "pss":
            pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
            public.verify(signature, digest, pss, prehashed)
        else:
            public.verify(signature, digest, padding.PKCS1v15(), prehashed)
    except InvalidSignature:
        return False
    return True


def client_key_exchange(
    conn: Any,
    settings: Any,
    cipher_suite: int,
    client_chain: Any,
    signer: Signer,
    client_random: bytes,
    server_random: bytes,
) -> Generator[Any, None, None]:
    """``_clientKeyExchange`` for our TLS 1.2 ECDHE suites; yields tlslite's I/O states.

    Ends by yielding ``(premaster_secret, server_chain, client_chain, None)``
    as tlslite's own does.
    """
    if cipher_suite not in TLS12_SUITES:
        yield from conn._sendError(
            AlertDescription.handshake_failure,
            f"the server chose cipher suite {cipher_suite:#06x}, which we did not offer",
        )

    # Certificate: verified now, before anything of ours is sent or signed.
    for result in conn._getMsg(
        ContentType.handshake, HandshakeType.certificate, CertificateType.x509
    ):
        if result in (0, 1):
            yield result
        else:
            break
    certificate = result
    for result in conn._clientGetKeyFromChain(certificate, settings):
        if result in (0, 1):
            yield result
        else:
            break
    server_key, server_chain, _ = result
    key = server_key.public

    # ServerKeyExchange: a named curve we offered, signed by the server's key.
    for result in conn._getMsg(
        ContentType.handshake, HandshakeType.server_key_exchange, cipher_suite
    ):
        if result in (0, 1):
            yield result
        else:
            break
    ske = result
    exchange: Any = (
        exchange_for(ske.named_curve) if ske.curve_type == ECCurveType.named_curve else None
    )
    if exchange is None or group_name(ske.named_curve) not in settings.eccCurves:
        yield from conn._sendError(
            AlertDescription.illegal_parameter,
            f"the server chose key exchange group {group_name(ske.named_curve or 0)}, "
            "which we did not offer",
        )
    scheme = (ske.hashAlg, ske.signAlg)
    signed = bytes(client_random + server_random + ske.writeParams())
    refusal = server_signature_refusal(key, scheme, bytes(ske.signature), signed, cipher_suite)
    if refusal is not None:
        yield from conn._sendError(AlertDescription.decrypt_error, refusal)
    conn.serverSigAlg = scheme
    conn.ecdhCurve = ske.named_curve

    # CertificateRequest (optional), ServerHelloDone.
    for result in conn._getMsg(
        ContentType.handshake,
        (HandshakeType.certificate_request, HandshakeType.server_hello_done),
    ):
        if result in (0, 1):
            yield result
        else:
            break
    request = result if isinstance(result, CertificateRequest) else None
    if request is not None:
        for result in conn._getMsg(ContentType.handshake, HandshakeType.server_hello_done):
            if result in (0, 1):
                yield result
            else:
                break

    # Decide how to sign before sending anything: refuse cleanly if we cannot.
    choice: tuple[Scheme, HashName, Padding] | None = None
    if request is not None:
        public = signer.public_key()
        wanted_type = (
            ClientCertificateType.ecdsa_sign
            if isinstance(public, ec.EllipticCurvePublicKey)
            else ClientCertificateType.rsa_sign
        )
        choice = certificate_verify_scheme(public, list(request.supported_signature_algs))
        if choice is None or wanted_type not in request.certificate_types:
            listed = ", ".join(scheme_text(s) for s in request.supported_signature_algs)
            error = UnsupportedKeyType(
                f"the cloud accepts client signatures {listed or '(none)'}; the device key "
                f"({type(public).__name__.removesuffix('PublicKey')}) can make none of them "
                "in TLS 1.2",
                "use a key type the cloud accepts, or a cloud endpoint that speaks TLS 1.3",
            )
            yield from conn._refuse(AlertDescription.handshake_failure, error)

    # Our key share, computed by OpenSSL. The ClientHello already carries an
    # ephemeral key for its TLS 1.3 offer (x25519): its public half is on
    # the wire, its private half was never used, and only one of the two
    # exchanges ever happens, so it serves here once instead of a new key.
    offered = getattr(conn, "client_key_shares", {}).pop(ske.named_curve, None)
    if offered is not None:
        private, our_share = offered.private, offered.key_exchange
    else:
        private = exchange.get_random_private_key()
        our_share = exchange.calc_public_value(private)
    premaster = bytearray(exchange.calc_shared_key(private, ske.ecdh_Ys))

    if request is not None:
        message = Certificate(CertificateType.x509, conn.version)
        message.create(client_chain)
        for result in conn._sendMsg(message):
            yield result
    key_exchange = ClientKeyExchange(cipher_suite, conn.version).createECDH(our_share)
    for result in conn._sendMsg(key_exchange):
        yield result
    # The extended master secret hashes the transcript up to here, as does
    # the CertificateVerify (RFC 7627 section 4).
    conn._certificate_verify_handshake_hash = conn._handshake_hash.copy()

    if choice is not None:
        scheme, hash_name, pad = choice
        digest = bytes(conn._certificate_verify_handshake_hash.digest(hash_name))
        signature = signer.sign_digest(digest, hash_name, pad)
        if not _verify_own(signer.public_key(), signature, digest, hash_name, pad):
            raise TlsHandshakeFailed(
                f"the signature the token made ({scheme_text(scheme)}) does not verify with "
                "its own public key",
                "the token is faulty or the key URI selects another key than the "
                "certificate's; check with `agent cert show`",
            )
        verify = CertificateVerify(conn.version).create(bytearray(signature), scheme)
        for result in conn._sendMsg(verify):
            yield result

    yield premaster, server_chain, client_chain if request is not None else None, None
