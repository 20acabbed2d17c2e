"""Signing with keys generated on a real SoftHSM2 token, verified with cryptography."""

from __future__ import annotations

import datetime
import hashlib
import threading

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID

from edgeagent.errors import CertificateKeyMismatch, UnsupportedKeyType
from edgeagent.pkcs11.uri import parse_uri
from edgeagent.signing.match import check_matches_certificate
from edgeagent.signing.signer import HashName, Padding, PublicKey, Signer, sign_data
from tests.support.softhsm import KeySpec, OpenSigner, SoftHsmToken

pytestmark = pytest.mark.integration

HASHES: dict[HashName, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


def verify(
    public: PublicKey, signature: bytes, data: bytes, hash_name: HashName, pad: Padding
) -> None:
    algorithm = HASHES[hash_name]
    if isinstance(public, ec.EllipticCurvePublicKey):
        assert pad == "ecdsa"
        public.verify(signature, data, ec.ECDSA(algorithm))
    elif pad == "pss":
        public.verify(
            signature,
            data,
            padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size),
            algorithm,
        )
    else:
        public.verify(signature, data, padding.PKCS1v15(), algorithm)


@pytest.mark.parametrize("spec", ["ec-p256", "ec-p384", "ec-p521", "rsa-2048", "rsa-3072"])
def test_sign_and_verify_each_key_type(
    softhsm_token: SoftHsmToken, open_signer: OpenSigner, spec: KeySpec
) -> None:
    key = softhsm_token.generate_key(spec, label="device")
    signer = open_signer(key.uri, softhsm_token.pin)

    assert isinstance(signer, Signer)
    assert signer.cryptoki is True
    assert signer.public_key() == key.public_key
    location = parse_uri(signer.location)
    assert (location.token, location.object, location.id, location.type) == (
        softhsm_token.label,
        "device",
        key.id,
        "private",
    )
    assert location.serial and location.model == "SoftHSM v2"

    paddings: list[Padding] = ["ecdsa"] if spec.startswith("ec") else ["pss", "pkcs1v15"]
    data = b"TLS 1.3, client CertificateVerify" + spec.encode()
    for hash_name in HASHES:
        for pad in paddings:
            signature = sign_data(signer, data, hash_name, pad)
            verify(signer.public_key(), signature, data, hash_name, pad)
            if pad == "ecdsa":
                utils.decode_dss_signature(signature)  # DER, not raw r||s


def test_rsa_4096_pss(softhsm_token: SoftHsmToken, open_signer: OpenSigner) -> None:
    key = softhsm_token.generate_key("rsa-4096")
    signer = open_signer(key.uri, softhsm_token.pin)
    assert isinstance(signer.public_key(), rsa.RSAPublicKey)
    signature = sign_data(signer, b"x", "sha512", "pss")
    verify(key.public_key, signature, b"x", "sha512", "pss")


def test_wrong_padding_for_key_type(softhsm_token: SoftHsmToken, open_signer: OpenSigner) -> None:
    key = softhsm_token.generate_key("ec-p256")
    signer = open_signer(key.uri, softhsm_token.pin)
    with pytest.raises(UnsupportedKeyType):
        signer.sign_digest(hashlib.sha256(b"x").digest(), "sha256", "pss")
    with pytest.raises(ValueError, match="32 bytes"):
        signer.sign_digest(b"short", "sha256", "ecdsa")


def test_signs_with_the_selected_handle_not_a_new_search(
    softhsm_token: SoftHsmToken, open_signer: OpenSigner
) -> None:
    """thin-edge #3601: a key added later with the same label must not be used."""
    first = softhsm_token.generate_key("ec-p256", label="device", key_id=b"\x01")
    signer = open_signer("pkcs11:object=device;token=" + softhsm_token.label, softhsm_token.pin)
    softhsm_token.generate_key("ec-p256", label="device", key_id=b"\x02")

    class NoSearch:
        """The session, except that searching the token fails the test."""

        def __init__(self, session: object) -> None:
            self._session = session

        def get_objects(self, *args: object, **kwargs: object) -> object:
            raise AssertionError("the token was searched again before signing")

        def __getattr__(self, name: str) -> object:
            return getattr(self._session, name)

    shared = signer._selected.session
    real_session = shared.session
    shared.session = NoSearch(real_session)
    try:
        for _ in range(5):
            signature = sign_data(signer, b"data", "sha256", "ecdsa")
            assert isinstance(first.public_key, ec.EllipticCurvePublicKey)
            first.public_key.verify(signature, b"data", ec.ECDSA(hashes.SHA256()))
    finally:
        shared.session = real_session


def test_concurrent_signing_from_threads(
    softhsm_token: SoftHsmToken, open_signer: OpenSigner
) -> None:
    ec_key = softhsm_token.generate_key("ec-p256")
    rsa_key = softhsm_token.generate_key("rsa-2048")
    # Two signers on one token share its session: both paths are exercised.
    signers = [
        open_signer(ec_key.uri, softhsm_token.pin),
        open_signer(rsa_key.uri, softhsm_token.pin),
    ]
    failures: list[BaseException] = []
    done = [0]
    lock = threading.Lock()

    def work(n: int) -> None:
        signer = signers[n % 2]
        pad: Padding = "ecdsa" if n % 2 == 0 else "pss"
        try:
            for i in range(40):
                data = f"thread {n} message {i}".encode()
                verify(
                    signer.public_key(), sign_data(signer, data, "sha256", pad), data, "sha256", pad
                )
                with lock:
                    done[0] += 1
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    assert done[0] == 8 * 40


def test_closing_one_signer_keeps_the_shared_session_for_the_other(
    softhsm_token: SoftHsmToken, open_signer: OpenSigner
) -> None:
    key = softhsm_token.generate_key("ec-p256")
    first = open_signer(key.uri, softhsm_token.pin)
    second = open_signer(key.uri, softhsm_token.pin)
    first.close()
    first.close()  # idempotent
    signature = sign_data(second, b"still logged in", "sha256", "ecdsa")
    verify(key.public_key, signature, b"still logged in", "sha256", "ecdsa")


def _certificate_for(public: PublicKey) -> x509.Certificate:
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-1")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(issuer_key, hashes.SHA256())
    )


def test_certificate_must_match_the_key(
    softhsm_token: SoftHsmToken, open_signer: OpenSigner
) -> None:
    key = softhsm_token.generate_key("ec-p384")
    other = softhsm_token.generate_key("ec-p384")
    signer = open_signer(key.uri, softhsm_token.pin)
    check_matches_certificate(signer, _certificate_for(key.public_key))
    with pytest.raises(CertificateKeyMismatch) as caught:
        check_matches_certificate(signer, _certificate_for(other.public_key))
    assert signer.location in caught.value.cause
    assert "device.cert_path" in caught.value.fix


def test_signature_does_not_verify_with_another_key(
    softhsm_token: SoftHsmToken, open_signer: OpenSigner
) -> None:
    """The verification helper above can fail: a test that cannot fail proves nothing."""
    key = softhsm_token.generate_key("ec-p256")
    other = softhsm_token.generate_key("ec-p256")
    signer = open_signer(key.uri, softhsm_token.pin)
    signature = sign_data(signer, b"data", "sha256", "ecdsa")
    with pytest.raises(InvalidSignature):
        verify(other.public_key, signature, b"data", "sha256", "ecdsa")
