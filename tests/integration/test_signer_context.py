"""Signers and token administrations are context managers: leaving ``with`` closes them."""

from __future__ import annotations

import pytest

from edgeagent.hsm.backend import TokenAdmin
from edgeagent.pkcs11.admin import TokenAdministration
from edgeagent.pkcs11.module import load_module
from edgeagent.pkcs11.uri import Pkcs11Uri
from edgeagent.signing.module_signer import open_module_signer
from edgeagent.signing.signer import Signer, sign_data
from tests.support.softhsm import SOFTHSM_MODULE, SoftHsmToken

pytestmark = pytest.mark.integration


def test_leaving_with_releases_the_token_session_even_on_an_error(
    softhsm_token: SoftHsmToken,
) -> None:
    key = softhsm_token.generate_key("ec-p256")
    module = load_module(SOFTHSM_MODULE)

    def open_slots() -> list[str]:
        return [s.description.label for s in module.sessions.values()]

    with open_module_signer(SOFTHSM_MODULE, key.uri, softhsm_token.pin) as signer:
        assert isinstance(signer, Signer)
        assert sign_data(signer, b"x", "sha256", "ecdsa")
        assert softhsm_token.label in open_slots()
    assert softhsm_token.label not in open_slots()

    with (
        pytest.raises(RuntimeError),
        open_module_signer(SOFTHSM_MODULE, key.uri, softhsm_token.pin) as signer,
    ):
        assert softhsm_token.label in open_slots()
        raise RuntimeError("inside the block")
    assert softhsm_token.label not in open_slots()


def test_token_administration_is_a_token_admin_context(softhsm_token: SoftHsmToken) -> None:
    module = load_module(SOFTHSM_MODULE)
    admin: TokenAdmin = TokenAdministration(module, softhsm_token.pin)
    with admin as entered:
        assert entered is admin
        keys = entered.list_keys(Pkcs11Uri(token=softhsm_token.label))
    assert keys == []
