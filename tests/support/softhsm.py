"""Real SoftHSM2 tokens for tests, in a private token directory.

    def test_sign(softhsm_token):
        key = softhsm_token.generate_key("ec-p256", label="device")
        signer = open_module_signer(SOFTHSM_MODULE, key.uri, softhsm_token.pin)
        ...  # key.public_key is a cryptography key: issue a certificate for it

Fixtures:

- ``softhsm`` (session): a :class:`SoftHsm` whose config and token directory
  live in a temp dir; ``SOFTHSM2_CONF`` is set in ``os.environ`` for the
  whole session, so subprocesses (softhsm2-util, p11tool, pkcs11-tool, the
  ``agent`` command) see the same tokens. ``softhsm.create_token(...)``.
- ``softhsm_token`` (function): a fresh, uniquely labelled token.

Keys are generated ON the token (sensitive, never extractable) in a child
process, so this process's login state is never touched by the fixture.

SoftHSM2 reads its token directory only at C_Initialize: a token created
after the module was loaded in this process is invisible until the module is
re-initialised. ``create_token`` does that (``Module.rescan``), which needs
every session on the module closed: close your signers at the end of a test.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edgeagent.signing.module_signer import ModuleSigner, open_module_signer
from tests.support.tokens import TokenKey, make_visible, private_key_uri

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
"""Debian's path (a symlink into /usr/lib/<triplet>/softhsm/)."""

USER_PIN = "123456"
SO_PIN = "12345678"

KeySpec = Literal["ec-p256", "ec-p384", "ec-p521", "rsa-2048", "rsa-3072", "rsa-4096"]
KEY_SPECS: tuple[KeySpec, ...] = (
    "ec-p256",
    "ec-p384",
    "ec-p521",
    "rsa-2048",
    "rsa-3072",
    "rsa-4096",
)

_counter = itertools.count(1)

# Runs in a child process. SoftHSM2 (like tpm2-pkcs11) refuses CKA_EC_PARAMS
# in the private template with CKR_ATTRIBUTE_READ_ONLY, and then leaves an
# orphan, unlabelled private key behind: the curve goes in the public
# template only.
_KEYGEN = textwrap.dedent(
    """
    import sys
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism
    from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

    module, token_label, pin, spec, label, key_id = sys.argv[1:7]
    key_id = bytes.fromhex(key_id)
    lib = pkcs11.lib(module)
    token = lib.get_token(token_label=token_label)
    common = {Attribute.TOKEN: True, Attribute.LABEL: label, Attribute.ID: key_id}
    private = dict(common)
    private.update({
        Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
    })
    public = dict(common)
    public[Attribute.VERIFY] = True
    algorithm, size = spec.split("-")
    with token.open(rw=True, user_pin=pin) as session:
        if algorithm == "ec":
            curve = {"p256": "secp256r1", "p384": "secp384r1", "p521": "secp521r1"}[size]
            public[Attribute.EC_PARAMS] = encode_named_curve_parameters(curve)
            pub, _ = session.generate_keypair(
                KeyType.EC, 0, public_template=public, private_template=private,
                store=True, mechanism=Mechanism.EC_KEY_PAIR_GEN)
            sys.stdout.write("ec:" + encode_ec_public_key(pub).hex())
        else:
            pub, _ = session.generate_keypair(
                KeyType.RSA, int(size), public_template=public,
                private_template=private, store=True)
            sys.stdout.write(
                "rsa:" + pub[Attribute.MODULUS].hex() + ":" + pub[Attribute.PUBLIC_EXPONENT].hex())
    """
)


SoftHsmKey = TokenKey  # its name before tests/support/tokens.py


@dataclass(frozen=True)
class SoftHsmToken:
    """An initialised token with a user PIN and an SO PIN."""

    label: str
    pin: str
    so_pin: str
    module: Path = SOFTHSM_MODULE

    @property
    def uri(self) -> str:
        return f"pkcs11:token={self.label}"

    def generate_key(
        self, spec: KeySpec, label: str | None = None, key_id: bytes | None = None
    ) -> TokenKey:
        """Generate a key pair on the token; ``key_id`` defaults to a fresh one."""
        n = next(_counter)
        label = label if label is not None else f"key-{n}"
        key_id = key_id if key_id is not None else n.to_bytes(2, "big")
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _KEYGEN,
                str(self.module),
                self.label,
                self.pin,
                spec,
                label,
                key_id.hex(),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"generating {spec} on {self.label} failed:\n{done.stderr}")
        kind, *values = done.stdout.split(":")
        public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
        if kind == "ec":
            loaded = serialization.load_der_public_key(bytes.fromhex(values[0]))
            assert isinstance(loaded, ec.EllipticCurvePublicKey)
            public = loaded
        else:
            n, e = (int(v, 16) for v in values)
            public = rsa.RSAPublicNumbers(e, n).public_key()
        uri = private_key_uri(self.label, label, key_id)
        return TokenKey(uri=uri, public_key=public, label=label, id=key_id, spec=spec)


@dataclass(frozen=True)
class SoftHsm:
    """A SoftHSM2 installation private to this test session."""

    root: Path
    conf: Path
    token_dir: Path
    module: Path = SOFTHSM_MODULE

    def create_token(
        self, label: str | None = None, pin: str = USER_PIN, so_pin: str = SO_PIN
    ) -> SoftHsmToken:
        """Initialise a token in the next free slot, and make it visible to this process."""
        label = label or f"test-token-{next(_counter)}"
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                pin,
                "--so-pin",
                so_pin,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.make_visible()
        return SoftHsmToken(label=label, pin=pin, so_pin=so_pin, module=self.module)

    def make_visible(self) -> None:
        """Re-initialise the module if this process loaded it, so new tokens show."""
        make_visible(self.module, "new SoftHSM token")


def _require_softhsm() -> None:
    if not SOFTHSM_MODULE.exists():
        # CI installs SoftHSM2 (scripts/setup.sh): a missing one is a broken set-up.
        pytest.fail(f"SoftHSM2 not installed ({SOFTHSM_MODULE} missing): run scripts/setup.sh")


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A private SoftHSM2 (config + token dir); SOFTHSM2_CONF set for the session."""
    _require_softhsm()
    root = tmp_path_factory.mktemp("softhsm")
    token_dir = root / "tokens"
    token_dir.mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {token_dir}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    hsm = SoftHsm(root=root, conf=conf, token_dir=token_dir)
    # Loaded earlier in this process with another config? Re-read ours.
    hsm.make_visible()
    yield hsm
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def softhsm_token(softhsm: SoftHsm) -> SoftHsmToken:
    """A fresh token with PIN ``USER_PIN`` and no keys."""
    return softhsm.create_token()


OpenSigner = Callable[[str | None, str | None], ModuleSigner]


@pytest.fixture
def open_signer() -> Iterator[OpenSigner]:
    """open_module_signer on SoftHSM, closed at the end of the test."""
    opened: list[ModuleSigner] = []

    def open_(uri: str | None, pin: str | None) -> ModuleSigner:
        signer = open_module_signer(SOFTHSM_MODULE, uri, pin)
        opened.append(signer)
        return signer

    yield open_
    for signer in opened:
        signer.close()
