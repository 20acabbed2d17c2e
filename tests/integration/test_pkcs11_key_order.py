"""Every path that lists or picks keys puts them in the same order (real SoftHSM2 token).

A URI naming several keys means "the first": the signer (select_key), the
logged-in listing (`agent hsm list-keys`) and the listing without login
(several tokens) run in different processes and must agree on which key
that is, whatever order C_FindObjects returns.
"""

from __future__ import annotations

import logging
import re

import pytest

from edgeagent.pkcs11.admin import TokenAdministration, list_keys_without_login
from edgeagent.pkcs11.module import load_module
from edgeagent.pkcs11.select import select_key
from edgeagent.pkcs11.tokens import find_tokens
from edgeagent.pkcs11.uri import Pkcs11Uri
from tests.support.softhsm import SOFTHSM_MODULE, SoftHsmToken

pytestmark = pytest.mark.integration

# Made in an order that is not the (CKA_ID, label) order; two share an id.
MADE = [(b"\x03", "b"), (b"\x01", "z"), (b"\x02", "a"), (b"\x01", "y")]
ORDERED = [(b"\x01", "y"), (b"\x01", "z"), (b"\x02", "a"), (b"\x03", "b")]


def test_selection_and_both_listings_order_keys_identically(
    softhsm_token: SoftHsmToken, caplog: pytest.LogCaptureFixture
) -> None:
    for key_id, label in MADE:
        softhsm_token.generate_key("ec-p256", label=label, key_id=key_id)
    module = load_module(SOFTHSM_MODULE)
    token = Pkcs11Uri(token=softhsm_token.label)

    with TokenAdministration(module, softhsm_token.pin) as admin:
        listed = [key.uri for key in admin.list_keys(token)]
    (found,) = find_tokens(module, token)
    unlogged = [key.uri for key in list_keys_without_login(module, found, token)]

    caplog.set_level(logging.WARNING, logger="edgeagent.pkcs11")
    selected = select_key(module, token, softhsm_token.pin)
    try:
        chosen = str(selected.uri)
    finally:
        selected.session.release()
    warning = next(r.getMessage() for r in caplog.records if "private keys match" in r.message)
    candidates = re.findall(r"^    (pkcs11:\S+)$", warning, flags=re.MULTILINE)

    named = [(Pkcs11Uri.parse(uri).id, Pkcs11Uri.parse(uri).object) for uri in listed]
    assert named == ORDERED
    assert candidates == listed
    assert unlogged == listed
    assert chosen == listed[0]
