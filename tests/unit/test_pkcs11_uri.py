"""RFC 7512 URI parsing and formatting (pure logic)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeagent.errors import InvalidKeyUri
from edgeagent.pkcs11.uri import OBJECT_TYPES, Pkcs11Uri, format_uri, parse_uri

P11TOOL_URI = (
    "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=83f9cf49039c051a;"
    "token=my-token;id=%01;object=my-key;type=private"
)


def test_accepts_what_p11tool_prints() -> None:
    uri = parse_uri(P11TOOL_URI)
    assert uri.model == "SoftHSM v2"
    assert uri.manufacturer == "SoftHSM project"
    assert uri.serial == "83f9cf49039c051a"
    assert uri.token == "my-token"
    assert uri.id == b"\x01"
    assert uri.object == "my-key"
    assert uri.type == "private"
    assert uri.names_token and uri.names_key


def test_accepts_what_pkcs11_tool_prints() -> None:
    # OpenSC >= 0.24: `pkcs11-tool -O` prints "uri: pkcs11:...", hex in lower case.
    uri = parse_uri(
        "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=5a9d1f1b8e3c2d47;"
        "token=t;id=%0a%ff;object=k;type=private"
    )
    assert uri.id == b"\x0a\xff"


def test_empty_uri_matches_everything() -> None:
    uri = parse_uri("pkcs11:")
    assert uri == Pkcs11Uri()
    assert not uri.names_token and not uri.names_key


def test_all_attributes() -> None:
    uri = parse_uri(
        "pkcs11:library-manufacturer=SoftHSM;library-description=Implementation%20of%20PKCS11;"
        "library-version=2.6;slot-manufacturer=SoftHSM%20project;slot-description=SoftHSM%20slot;"
        "slot-id=1702409984;token=a;object=b;id=%FF%00;type=cert"
        "?pin-source=file:/etc/pin&module-name=softhsm2&module-path=/usr/lib/softhsm/libsofthsm2.so"
    )
    assert uri.library_version == "2.6"
    assert uri.slot_id == 1702409984
    assert uri.slot_description == "SoftHSM slot"
    assert uri.id == b"\xff\x00"
    assert uri.type == "cert"
    assert uri.pin_source == "file:/etc/pin"
    assert uri.module_path == "/usr/lib/softhsm/libsofthsm2.so"
    assert parse_uri(str(uri)) == uri


def test_unknown_attributes_are_ignored() -> None:
    assert parse_uri("pkcs11:x-vendor=1;token=a?x-foo=bar") == Pkcs11Uri(token="a")


def test_scheme_is_case_insensitive() -> None:
    assert parse_uri("PKCS11:token=a").token == "a"


def test_utf8_and_reserved_characters_round_trip() -> None:
    uri = Pkcs11Uri(token="Schlüssel; a?b", object="100%", pin_value="p&w=x")
    text = format_uri(uri)
    assert ";" not in text.split(";", 1)[0][len("pkcs11:") :]
    assert parse_uri(text) == uri


def test_formats_id_as_percent_bytes_like_p11tool() -> None:
    assert str(Pkcs11Uri(token="t", id=b"\x01")) == "pkcs11:token=t;id=%01"


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("pkcs:token=a", 0, "does not start with 'pkcs11:'"),
        ("token=a", 0, "does not start with 'pkcs11:'"),
        ("pkcs11:token=a%2", 14, "bad percent-escape"),
        ("pkcs11:token=a%zzb", 14, "bad percent-escape"),
        ("pkcs11:token=a;token=b", 15, "duplicate attribute 'token'"),
        ("pkcs11:token=a;type=key", 20, "type='key' is not one of"),
        ("pkcs11:token", 7, "attribute without '='"),
        ("pkcs11:token=a;;object=b", 15, "empty attribute"),
        ("pkcs11:slot-id=abc", 15, "slot-id='abc' is not a decimal number"),
        ("pkcs11:library-version=a.b", 23, "library-version"),
        ("pkcs11:token=my token", 15, "unescaped ' '"),
        ("pkcs11:token=a?pin-value=1&pin-value=2", 27, "duplicate attribute 'pin-value'"),
        ("pkcs11:pin-value=1", 7, "belongs in the query"),
        ("pkcs11:?token=a", 8, "belongs in the path"),
        ("pkcs11:token=%FF", 13, "token is not UTF-8"),
    ],
)
def test_malformed_uris_name_the_position(text: str, position: int, problem: str) -> None:
    with pytest.raises(InvalidKeyUri) as caught:
        parse_uri(text)
    message = caught.value.cause
    assert problem in message
    assert f"at position {position}:" in message
    assert "p11tool" in caught.value.fix


def test_pin_value_never_shown() -> None:
    uri = parse_uri("pkcs11:token=a?pin-value=s3cret")
    assert uri.pin_value == "s3cret"
    assert "s3cret" not in repr(uri)
    assert "s3cret" not in str(uri) and "pin-value=***" in str(uri)
    assert "pin-value=s3cret" in format_uri(uri)
    with pytest.raises(InvalidKeyUri) as caught:
        parse_uri("pkcs11:token=a;token=b?pin-value=s3cret")
    assert "s3cret" not in str(caught.value)


_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=0, max_size=20)
_optional_text = st.none() | _text

uris = st.builds(
    Pkcs11Uri,
    library_manufacturer=_optional_text,
    library_description=_optional_text,
    library_version=st.none()
    | st.from_regex(re.compile(r"[0-9]{1,3}(\.[0-9]{1,3})?"), fullmatch=True),
    slot_manufacturer=_optional_text,
    slot_description=_optional_text,
    slot_id=st.none() | st.integers(min_value=0, max_value=2**64 - 1),
    manufacturer=_optional_text,
    model=_optional_text,
    serial=_optional_text,
    token=_optional_text,
    object=_optional_text,
    id=st.none() | st.binary(max_size=20),
    type=st.none() | st.sampled_from(OBJECT_TYPES),
    pin_value=_optional_text,
    module_name=_optional_text,
    module_path=_optional_text,
)


@given(uris)
def test_round_trip(uri: Pkcs11Uri) -> None:
    assert parse_uri(format_uri(uri)) == uri
