"""The public halves of the keys the agent can sign with: one type for every layer.

Kept apart from ``keys.py`` (which reads them from a token) so that naming the
type loads no python-pkcs11: the socket signer and the certificate builder
use it too.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, rsa

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
