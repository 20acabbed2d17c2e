"""Which token and which key a configured URI names (uri.names_token, names_key, token_part)."""

from __future__ import annotations

import pytest

from edgeagent.pkcs11.uri import Pkcs11Uri, names_key, names_token

TOKEN = Pkcs11Uri(
    slot_id=3,
    slot_description="SoftHSM slot ID 0x3",
    manufacturer="SoftHSM project",
    model="SoftHSM v2",
    serial="6abec70129cafec2",
    token="my-token",
)
KEY = Pkcs11Uri(
    manufacturer="SoftHSM project",
    model="SoftHSM v2",
    serial="6abec70129cafec2",
    token="my-token",
    object="device-key",
    id=b"\x01",
    type="private",
)


@pytest.mark.parametrize(
    ("uri", "named"),
    [
        ("pkcs11:", True),
        ("pkcs11:token=my-token", True),
        ("pkcs11:token=my-token;serial=6abec70129cafec2;slot-id=3", True),
        ("pkcs11:token=other", False),
        ("pkcs11:token=my-token;serial=ffff", False),
        ("pkcs11:slot-id=4", False),
        # tpm2-pkcs11 pads with NULs, p11tool keeps them; python-pkcs11 strips them.
        ("pkcs11:model=SoftHSM%20v2%00%00%00", True),
        ("pkcs11:model=SoftHSM%20v2%20%20", True),  # and blank-padded fields
        ("pkcs11:model=SoftHSM%20v", False),
        ("pkcs11:token=my-token;object=anything", True),
    ],
)
def test_names_token(uri: str, named: bool) -> None:
    assert names_token(Pkcs11Uri.parse(uri), TOKEN) is named


@pytest.mark.parametrize(
    ("uri", "named"),
    [
        ("pkcs11:token=my-token", False),  # a token, not a key
        ("pkcs11:", False),
        ("pkcs11:object=device-key", True),
        ("pkcs11:id=%01", True),
        ("pkcs11:token=my-token;object=device-key;type=private", True),
        ("pkcs11:object=device-key;type=public", False),
        ("pkcs11:object=other", False),
        ("pkcs11:token=other;object=device-key", False),
        # slot-id is not in a key's URI: it cannot be compared, so it does not refuse
        ("pkcs11:slot-id=9;object=device-key", True),
    ],
)
def test_names_key(uri: str, named: bool) -> None:
    assert names_key(Pkcs11Uri.parse(uri), KEY) is named


def test_token_part_keeps_only_slot_and_token_attributes() -> None:
    uri = Pkcs11Uri.parse(
        "pkcs11:library-manufacturer=L;slot-id=3;serial=6abe;token=t;object=k;id=%01;type=private"
        "?pin-value=1234&module-path=/usr/lib/x.so"
    )
    assert str(uri.token_part()) == "pkcs11:slot-id=3;serial=6abe;token=t"
    assert Pkcs11Uri.parse("pkcs11:object=k").token_part() == Pkcs11Uri()
