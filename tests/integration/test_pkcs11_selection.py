"""Token and key selection from a URI on real SoftHSM2 tokens."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from edgeagent.errors import KeyNotFound, MissingConfigValue, PinIncorrect, TokenNotFound
from edgeagent.pkcs11.module import load_module
from edgeagent.pkcs11.tokens import list_tokens
from edgeagent.pkcs11.uri import parse_uri
from edgeagent.signing.module_signer import ModuleSigner
from edgeagent.signing.signer import sign_data
from tests.support.softhsm import SOFTHSM_MODULE, OpenSigner, SoftHsm, SoftHsmKey, SoftHsmToken

pytestmark = pytest.mark.integration


def signs_with(signer: ModuleSigner, key: SoftHsmKey) -> bool:
    signature = sign_data(signer, b"which key?", "sha256", "ecdsa")
    assert isinstance(key.public_key, ec.EllipticCurvePublicKey)
    try:
        key.public_key.verify(signature, b"which key?", ec.ECDSA(hashes.SHA256()))
    except Exception:
        return False
    return True


def test_wrong_pin(softhsm_token: SoftHsmToken, open_signer: OpenSigner) -> None:
    key = softhsm_token.generate_key("ec-p256")
    with pytest.raises(PinIncorrect) as caught:
        open_signer(key.uri, "000000")
    assert repr(softhsm_token.label) in caught.value.cause
    assert "CKR_PIN_INCORRECT" in caught.value.cause
    assert "device.cryptoki.pin" in caught.value.fix
    assert "000000" not in str(caught.value)
    # Not retried, nothing left logged in: the right PIN works at once.
    assert signs_with(open_signer(key.uri, softhsm_token.pin), key)


def test_no_pin_for_a_token_that_needs_login(
    softhsm_token: SoftHsmToken, open_signer: OpenSigner
) -> None:
    key = softhsm_token.generate_key("ec-p256")
    with pytest.raises(MissingConfigValue, match=r"device\.cryptoki\.pin"):
        open_signer(key.uri, "")


def test_key_not_found_lists_the_keys_that_exist(
    softhsm_token: SoftHsmToken, open_signer: OpenSigner
) -> None:
    a = softhsm_token.generate_key("ec-p256", label="alpha")
    b = softhsm_token.generate_key("rsa-2048", label="beta")
    with pytest.raises(KeyNotFound) as caught:
        open_signer(f"{softhsm_token.uri};object=gamma", softhsm_token.pin)
    message = caught.value.cause
    assert "object=gamma" in message
    for key in (a, b):
        listed = parse_uri(re.search(rf"pkcs11:\S*object={key.label}\S*", message)[0])  # type: ignore[index]
        assert (listed.token, listed.id, listed.type) == (softhsm_token.label, key.id, "private")
    assert "device.key_uri" in caught.value.fix


def test_certificate_uri_is_not_a_key(softhsm_token: SoftHsmToken, open_signer: OpenSigner) -> None:
    softhsm_token.generate_key("ec-p256", label="k")
    with pytest.raises(KeyNotFound, match="names a cert object"):
        open_signer(f"{softhsm_token.uri};object=k;type=cert", softhsm_token.pin)


def test_token_not_found_lists_the_tokens(
    softhsm_token: SoftHsmToken, open_signer: OpenSigner
) -> None:
    with pytest.raises(TokenNotFound) as caught:
        open_signer("pkcs11:token=no-such-token;object=k", softhsm_token.pin)
    message = caught.value.cause
    assert "token=no-such-token" in message
    assert f"token {softhsm_token.label!r}" in message
    assert f"token={softhsm_token.label}" in message  # a URI to copy
    assert "device.key_uri" in caught.value.fix


def test_ambiguous_uri_warns_and_takes_the_first(
    softhsm_token: SoftHsmToken, open_signer: OpenSigner, caplog: pytest.LogCaptureFixture
) -> None:
    one = softhsm_token.generate_key("ec-p256", label="same", key_id=b"\x01")
    two = softhsm_token.generate_key("ec-p256", label="same", key_id=b"\x02")
    with caplog.at_level(logging.WARNING, logger="edgeagent.pkcs11"):
        signer = open_signer(f"{softhsm_token.uri};object=same", softhsm_token.pin)
    [record] = [r for r in caplog.records if r.name == "edgeagent.pkcs11"]
    text = record.getMessage()
    assert record.levelno == logging.WARNING
    assert "2 private keys match" in text
    assert "device.key_uri" in text
    assert "id=%01" in text and "id=%02" in text
    # The first candidate listed is the one used, and the signer says so.
    candidates = re.findall(r"^\s+(pkcs11:\S+)$", text, flags=re.M)
    assert len(candidates) == 2
    assert signer.location == candidates[0]
    # "First" is by CKA_ID, the same in every process (not C_FindObjects order).
    assert parse_uri(signer.location).id == one.id
    assert signs_with(signer, one) and not signs_with(signer, two)


def test_unique_uri_does_not_warn(
    softhsm_token: SoftHsmToken, open_signer: OpenSigner, caplog: pytest.LogCaptureFixture
) -> None:
    softhsm_token.generate_key("ec-p256", label="same", key_id=b"\x01")
    two = softhsm_token.generate_key("ec-p256", label="same", key_id=b"\x02")
    with caplog.at_level(logging.WARNING, logger="edgeagent.pkcs11"):
        signer = open_signer(f"{softhsm_token.uri};object=same;id=%02", softhsm_token.pin)
    assert not [r for r in caplog.records if r.name == "edgeagent.pkcs11"]
    assert signs_with(signer, two)


def test_token_only_uri_takes_the_key_on_it(
    softhsm_token: SoftHsmToken, open_signer: OpenSigner, caplog: pytest.LogCaptureFixture
) -> None:
    key = softhsm_token.generate_key("ec-p256", label="only")
    with caplog.at_level(logging.WARNING, logger="edgeagent.pkcs11"):
        signer = open_signer(softhsm_token.uri, softhsm_token.pin)
    assert parse_uri(signer.location).object == "only"
    assert signs_with(signer, key)
    assert not caplog.records


def test_key_uri_without_token_searches_tokens_in_slot_order(
    softhsm: SoftHsm, open_signer: OpenSigner, caplog: pytest.LogCaptureFixture
) -> None:
    first = softhsm.create_token()
    second = softhsm.create_token()
    unique = second.generate_key("ec-p256", label="only-on-second")
    signer = open_signer("pkcs11:object=only-on-second", second.pin)
    assert parse_uri(signer.location).token == second.label
    assert signs_with(signer, unique)
    signer.close()

    a = first.generate_key("ec-p256", label="on-both")
    b = second.generate_key("ec-p256", label="on-both")
    with caplog.at_level(logging.WARNING, logger="edgeagent.pkcs11"):
        signer = open_signer("pkcs11:object=on-both", first.pin)
    # SoftHSM2 derives slot ids from the token serial: ask for the order.
    order = [t.description.label for t in list_tokens(load_module(SOFTHSM_MODULE))]
    winner, loser = (a, b) if order.index(first.label) < order.index(second.label) else (b, a)
    later = second if winner is a else first
    assert signs_with(signer, winner) and not signs_with(signer, loser)
    # Tokens of other tests with other PINs may be skipped (and warned about).
    [record] = [r for r in caplog.records if "exist on 2 tokens" in r.getMessage()]
    assert f"token {later.label!r}" in record.getMessage()


def test_no_uri_takes_a_key_and_says_where(
    softhsm_token: SoftHsmToken, open_signer: OpenSigner
) -> None:
    softhsm_token.generate_key("ec-p256")
    signer = open_signer(None, softhsm_token.pin)
    assert parse_uri(signer.location).type == "private"


def _alone(token: SoftHsmToken, softhsm: SoftHsm, root: Path) -> dict[str, str]:
    """An environment whose SoftHSM shows a copy of ``token`` and nothing else.

    GnuTLS's p11tool lists no token at all once a module has more than ~48
    slots (seen here: 40 tokens listed, 60 none), and the session's SoftHSM
    gains a token per test: the tools must not depend on the test order.
    """
    label = token.label.ljust(32).encode()  # SoftHSM stores the padded label
    [source] = [
        d for d in softhsm.token_dir.iterdir() if label in (d / "token.object").read_bytes()
    ]
    tokens = root / "alone" / "tokens"
    shutil.copytree(source, tokens / source.name)
    conf = root / "alone" / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    return dict(os.environ, SOFTHSM2_CONF=str(conf))


def _tool_uris(command: list[str], pattern: str, env: dict[str, str]) -> list[str]:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60, env=env)
    assert done.returncode == 0, f"{command[0]} exited {done.returncode}:\n{done.stderr}"
    return re.findall(pattern, done.stdout, flags=re.M)


@pytest.mark.skipif(shutil.which("p11tool") is None, reason="p11tool (gnutls-bin) not installed")
def test_accepts_p11tool_urls(
    softhsm: SoftHsm, softhsm_token: SoftHsmToken, open_signer: OpenSigner, tmp_path: Path
) -> None:
    keys = [softhsm_token.generate_key("ec-p256"), softhsm_token.generate_key("rsa-2048")]
    urls = _tool_uris(
        [
            "p11tool",
            f"--provider={SOFTHSM_MODULE}",
            "--login",
            f"--set-pin={softhsm_token.pin}",
            "--list-privkeys",
            softhsm_token.uri,
        ],
        r"^\s*URL: (pkcs11:\S+)$",
        _alone(softhsm_token, softhsm, tmp_path),
    )
    assert len(urls) == 2, urls
    for url in urls:
        signer = open_signer(url, softhsm_token.pin)
        [key] = [k for k in keys if k.label == parse_uri(url).object]
        assert signer.public_key() == key.public_key
        assert parse_uri(signer.location) == parse_uri(url)


@pytest.mark.skipif(
    shutil.which("pkcs11-tool") is None, reason="pkcs11-tool (opensc) not installed"
)
def test_accepts_pkcs11_tool_uris(
    softhsm: SoftHsm, softhsm_token: SoftHsmToken, open_signer: OpenSigner, tmp_path: Path
) -> None:
    key = softhsm_token.generate_key("ec-p384", label="tool-key", key_id=b"\x0a\xff")
    env = _alone(softhsm_token, softhsm, tmp_path)
    list_private_keys = [
        "pkcs11-tool",
        f"--module={SOFTHSM_MODULE}",
        f"--token-label={softhsm_token.label}",
        "--login",
        f"--pin={softhsm_token.pin}",
        "--list-objects",
        "--type=privkey",
    ]
    uris = _tool_uris(list_private_keys, r"^\s*uri:\s*(pkcs11:\S+)$", env)
    if not uris:
        # OpenSC < 0.24 prints no URIs: a user writes one from the label and
        # ID it prints, often with lower-case %-escapes.
        listing = subprocess.run(
            list_private_keys,
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
        label = re.search(r"label:\s*(\S+)", listing)
        key_id = re.search(r"ID:\s*([0-9a-f]+)", listing)
        assert label and key_id, listing
        escaped = "".join(f"%{key_id[1][i : i + 2]}" for i in range(0, len(key_id[1]), 2))
        uris = [f"pkcs11:token={softhsm_token.label};object={label[1]};id={escaped}"]
    assert len(uris) == 1, uris
    signer = open_signer(uris[0], softhsm_token.pin)
    assert signer.public_key() == key.public_key
    assert parse_uri(signer.location).id == b"\x0a\xff"


def test_pin_value_in_the_uri(softhsm_token: SoftHsmToken, open_signer: OpenSigner) -> None:
    key = softhsm_token.generate_key("ec-p256")
    signer = open_signer(f"{key.uri}?pin-value={softhsm_token.pin}", None)
    assert signs_with(signer, key)
    assert "pin" not in signer.location
    with pytest.raises(KeyNotFound) as caught:
        open_signer(f"{softhsm_token.uri};object=nope?pin-value=s3cret", None)
    assert "s3cret" not in str(caught.value)
