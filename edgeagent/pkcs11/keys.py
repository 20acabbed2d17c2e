"""What kind of key a token holds, and its public half read from the token.

    public = read_public_key(session, private_key)   # cryptography key
    kind = key_kind(public)                           # KeyKind("ec", 256, "secp256r1")

Private keys stay sensitive and non-extractable; the public half comes from
attributes every module exposes: CKA_MODULUS / CKA_PUBLIC_EXPONENT for RSA
(on the private key, or on its public twin), and for EC the CKA_EC_POINT of
the public key object with the same CKA_ID (SoftHSM2 has no CKA_EC_POINT on
EC private keys, and leaves CKA_EC_PARAMS empty there).

Call these with the token session's lock held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pkcs11.exceptions as p11x
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, KeyType, ObjectClass

from edgeagent.errors import UnsupportedKeyType
from edgeagent.pkcs11.objects import twin_template
from edgeagent.pkcs11.public_key import PublicKey

# CKA_EC_PARAMS of a named curve is the DER-encoded OID; these are the ones
# TLS 1.3 has signature schemes for.
CURVES_BY_PARAMS: dict[bytes, ec.EllipticCurve] = {
    bytes.fromhex("06082a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("06052b81040022"): ec.SECP384R1(),
    bytes.fromhex("06052b81040023"): ec.SECP521R1(),
}
RSA_MIN_BITS = 2048
_FIX = "use an EC P-256/P-384/P-521 or an RSA key of 2048 bits or more"


@dataclass(frozen=True)
class KeyKind:
    """``algorithm`` and size; ``curve`` is set for EC keys once known."""

    algorithm: Literal["ec", "rsa"]
    bits: int
    curve: str | None = None

    def __str__(self) -> str:
        return f"EC {self.curve}" if self.algorithm == "ec" else f"RSA-{self.bits}"


def _attr(obj: Any, attribute: Attribute) -> Any:
    """The attribute's value, or None when the module does not have it.

    Narrower than ``objects.attribute_or_none``: a token that fails here for another
    reason (removed, session gone) must say so, not read as "no public half".
    """
    try:
        return obj[attribute]
    except (p11x.AttributeTypeInvalid, p11x.AttributeSensitive, p11x.FunctionFailed):
        return None


def _label(obj: Any) -> str:
    return str(_attr(obj, Attribute.LABEL) or "")


def find_public_twin(session: Any, private_key: Any, key_type: KeyType) -> Any | None:
    """The public key object stored with ``private_key`` (same CKA_ID, else same label)."""
    template = twin_template(ObjectClass.PUBLIC_KEY, private_key)
    if template is None:
        return None  # nothing ties a public object to this key
    template[Attribute.KEY_TYPE] = key_type
    return next(iter(session.get_objects(template)), None)


def key_kind(public: PublicKey, label: str = "") -> KeyKind:
    """Classify a key by its public half; raise UnsupportedKeyType for small RSA keys."""
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < RSA_MIN_BITS:
            raise UnsupportedKeyType(f"RSA key {label!r} has only {public.key_size} bits", _FIX)
        return KeyKind("rsa", public.key_size)
    return KeyKind("ec", public.curve.key_size, public.curve.name)


def _public_attributes(
    session: Any, private_key: Any, key_type: KeyType, first: Attribute, second: Attribute
) -> tuple[Any, Any] | None:
    """Two public attributes, from the private key itself (some modules put them
    there, not SoftHSM2) or else from its public twin (same CKA_ID)."""
    for obj in (private_key, find_public_twin(session, private_key, key_type)):
        if obj is None:
            continue
        a, b = _attr(obj, first), _attr(obj, second)
        if a and b:
            return a, b
    return None


def _rsa_numbers(session: Any, private_key: Any) -> tuple[int, int]:
    found = _public_attributes(
        session, private_key, KeyType.RSA, Attribute.MODULUS, Attribute.PUBLIC_EXPONENT
    )
    if found is not None:
        modulus, exponent = found
        return int.from_bytes(modulus, "big"), int.from_bytes(exponent, "big")
    raise UnsupportedKeyType(
        f"cannot read the public half of RSA key {_label(private_key)!r} from the token",
        "store the public key on the token with the same CKA_ID as the private key",
    )


def read_public_key(session: Any, private_key: Any) -> PublicKey:
    """The public key of ``private_key`` as a cryptography object."""
    key_type = _attr(private_key, Attribute.KEY_TYPE)
    if key_type == KeyType.RSA:
        n, e = _rsa_numbers(session, private_key)
        return rsa.RSAPublicNumbers(e, n).public_key()
    if key_type != KeyType.EC:
        name = getattr(key_type, "name", repr(key_type))
        raise UnsupportedKeyType(f"key {_label(private_key)!r} is of type {name}", _FIX)
    found = _public_attributes(
        session, private_key, KeyType.EC, Attribute.EC_PARAMS, Attribute.EC_POINT
    )
    if found is not None:
        return ec_public_key(*found)
    raise UnsupportedKeyType(
        f"cannot read the public half of EC key {_label(private_key)!r} from the token",
        "store the public key on the token with the same CKA_ID as the private key",
    )


def ec_public_key(ec_params: bytes, ec_point: bytes) -> ec.EllipticCurvePublicKey:
    """Build the key from CKA_EC_PARAMS (a named curve) and CKA_EC_POINT."""
    curve = CURVES_BY_PARAMS.get(bytes(ec_params))
    if curve is None:
        raise UnsupportedKeyType(f"EC key on curve with parameters {bytes(ec_params).hex()}", _FIX)
    coordinate = (curve.key_size + 7) // 8
    # The spec says DER OCTET STRING; some modules hand back the bare point.
    # Both start with 0x04, so tell them apart by length.
    point = bytes(ec_point)
    if len(point) != 1 + 2 * coordinate:
        point = _octet_string(point)
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    except ValueError as exc:
        raise UnsupportedKeyType(f"the token's CKA_EC_POINT is not a {curve.name} point") from exc


def _octet_string(der: bytes) -> bytes:
    """The content of a DER OCTET STRING (short or long length form)."""
    if len(der) < 2 or der[0] != 0x04:
        raise UnsupportedKeyType("the token's CKA_EC_POINT is not an OCTET STRING")
    length, start = der[1], 2
    if length & 0x80:
        size = length & 0x7F
        length, start = int.from_bytes(der[2 : 2 + size], "big"), 2 + size
    if start + length != len(der):
        raise UnsupportedKeyType("the token's CKA_EC_POINT has a bad length")
    return der[start:]
