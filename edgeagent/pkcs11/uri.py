"""RFC 7512 PKCS#11 URIs: parse what users paste, format what we print.

    uri = Pkcs11Uri.parse("pkcs11:token=my-token;object=my-key;id=%01?pin-source=/etc/pin")
    uri.token, uri.object, uri.id        # 'my-token', 'my-key', b'\\x01'
    format_uri(uri)                      # canonical text: parse_uri(format_uri(u)) == u
    str(uri)                             # the same, with any pin-value masked (for messages)
    uri.token_part()                     # pkcs11:token=my-token: the token it points at
    names_key(uri, key.uri)              # does the configured uri name this key?

What ``p11tool --list-privkeys`` and ``pkcs11-tool`` print is accepted as is.
Unknown attributes (vendor ``x-...`` ones included) are ignored, as RFC 7512
section 2.5 tells a consumer to do, so a URI from a newer tool still works.
Every fault raises :class:`~edgeagent.errors.InvalidKeyUri` naming the
character position, because users paste these into a config value by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from edgeagent.errors import InvalidKeyUri

ObjectType = Literal["private", "public", "cert", "secret-key", "data"]
OBJECT_TYPES: tuple[ObjectType, ...] = ("private", "public", "cert", "secret-key", "data")

SCHEME = "pkcs11:"

# Characters RFC 7512 lets stand unescaped in a path value (pk11-pchar) and a
# query value (pk11-qchar). Everything else is %-escaped when we format.
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_PATH_SAFE = frozenset(_UNRESERVED + ":[]@!$'()*+,=&")
_QUERY_SAFE = frozenset(_UNRESERVED + ":[]@!$'()*+,=/?|")

_VERSION = re.compile(r"[0-9]+(\.[0-9]+)?\Z")
_DIGITS = re.compile(r"[0-9]+\Z")

# URI attribute name -> dataclass field name, in the order we format them
# (library, slot, token, object, as RFC 7512's examples do).
_PATH_ATTRS: dict[str, str] = {
    "library-manufacturer": "library_manufacturer",
    "library-description": "library_description",
    "library-version": "library_version",
    "slot-manufacturer": "slot_manufacturer",
    "slot-description": "slot_description",
    "slot-id": "slot_id",
    "manufacturer": "manufacturer",
    "model": "model",
    "serial": "serial",
    "token": "token",
    "object": "object",
    "id": "id",
    "type": "type",
}
_QUERY_ATTRS: dict[str, str] = {
    "pin-source": "pin_source",
    "pin-value": "pin_value",
    "module-name": "module_name",
    "module-path": "module_path",
}


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed RFC 7512 URI. ``None`` means "attribute absent" (matches anything)."""

    library_manufacturer: str | None = None
    library_description: str | None = None
    library_version: str | None = None
    slot_manufacturer: str | None = None
    slot_description: str | None = None
    slot_id: int | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    token: str | None = None
    object: str | None = None
    id: bytes | None = None
    type: ObjectType | None = None
    pin_source: str | None = None
    pin_value: str | None = None
    module_name: str | None = None
    module_path: str | None = None

    TOKEN_FIELDS: ClassVar[tuple[str, ...]] = (
        "slot_manufacturer",
        "slot_description",
        "slot_id",
        "manufacturer",
        "model",
        "serial",
        "token",
    )
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("object", "id", "type")

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """Parse ``text``; raise InvalidKeyUri naming the position of the first fault."""
        return parse_uri(text)

    def __str__(self) -> str:
        # For humans (messages, logs): a pin-value is masked so that no
        # f-string can leak it. format_uri() gives the exact text.
        shown = self if self.pin_value is None else replace(self, pin_value="***")
        return format_uri(shown)

    def __repr__(self) -> str:
        return f"Pkcs11Uri({str(self)!r})"

    @property
    def names_token(self) -> bool:
        """True when any slot or token attribute is given."""
        return any(getattr(self, name) is not None for name in self.TOKEN_FIELDS)

    @property
    def names_key(self) -> bool:
        """True when any object attribute (object, id, type) is given."""
        return any(getattr(self, name) is not None for name in self.KEY_FIELDS)

    def token_part(self) -> Pkcs11Uri:
        """Only the slot and token attributes: the URI of the token(s) this one points at."""
        return Pkcs11Uri(**{name: getattr(self, name) for name in self.TOKEN_FIELDS})


def names_token(uri: Pkcs11Uri, token: Pkcs11Uri) -> bool:
    """Does ``uri`` point at the token whose slot and token attributes ``token`` holds?

    RFC 7512 matching: every slot or token attribute ``uri`` gives equals the
    token's; a URI naming no token points at every one.
    """
    return _agrees(uri, token, Pkcs11Uri.TOKEN_FIELDS)


def names_key(uri: Pkcs11Uri, key: Pkcs11Uri) -> bool:
    """Does the configured ``uri`` name the key whose full URI is ``key``?

    Only a URI naming an object or id names a key. An attribute the key's
    URI lacks cannot be compared and counts as a match: when in doubt, a
    key is treated as referenced.
    """
    if not uri.names_key or uri.type not in (None, "private"):
        return False
    return _agrees(uri, key, (*Pkcs11Uri.TOKEN_FIELDS, "object", "id"))


def _agrees(wanted: Pkcs11Uri, actual: Pkcs11Uri, fields: tuple[str, ...]) -> bool:
    """Every field ``wanted`` gives equals ``actual``'s (absent on either side: no objection)."""
    for field in fields:
        value, theirs = getattr(wanted, field), getattr(actual, field)
        if value is not None and theirs is not None and _padless(value) != theirs:
            return False
    return True


def _padless(wanted: object) -> object:
    # CK_TOKEN_INFO text fields are fixed-width. tpm2-pkcs11 pads its model
    # with NULs ("SW   TPM\0\0..."), which p11tool keeps in the URIs it prints
    # (model=SW%20%20%20TPM%00%00...) while python-pkcs11 strips them, and
    # trailing blanks, from what it reads: strip the URI's value the same way.
    return wanted.rstrip("\0").rstrip() if isinstance(wanted, str) else wanted


def _fail(text: str, position: int, problem: str) -> InvalidKeyUri:
    # The message quotes the URI; a pin-value in it must not reach a log.
    shown = re.sub(r"(?i)(pin-value=)[^&]*", r"\1***", text)
    return InvalidKeyUri(
        f"not a PKCS#11 URI (RFC 7512): {problem} at position {position}: {shown!r}",
        "paste the key URL that `p11tool --list-privkeys` prints, "
        'e.g. "pkcs11:token=my-token;object=my-key"',
    )


def _percent_decode(text: str, start: int, end: int) -> bytes:
    """Decode text[start:end]; raw non-ASCII characters are taken as UTF-8."""
    out = bytearray()
    i = start
    while i < end:
        ch = text[i]
        if ch == "%":
            pair = text[i + 1 : i + 3]
            if i + 3 > end or not re.fullmatch(r"[0-9A-Fa-f]{2}", pair):
                raise _fail(text, i, f"bad percent-escape {text[i : min(i + 3, end)]!r}")
            out.append(int(pair, 16))
            i += 3
            continue
        if ch.isspace() or ord(ch) < 0x20:
            raise _fail(text, i, f"unescaped {ch!r} (write it as %{ord(ch):02X})")
        out += ch.encode("utf-8")
        i += 1
    return bytes(out)


def _text_value(text: str, start: int, end: int, name: str) -> str:
    raw = _percent_decode(text, start, end)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(text, start, f"{name} is not UTF-8 text") from exc


def _split(text: str, start: int, end: int, sep: str) -> list[tuple[int, int]]:
    """Spans of the sep-separated pieces of text[start:end]."""
    spans = []
    piece = start
    for i in range(start, end):
        if text[i] == sep:
            spans.append((piece, i))
            piece = i + 1
    spans.append((piece, end))
    return spans


def _openziti_form(text: str) -> InvalidKeyUri:
    # OpenZiti writes "pkcs11://<module path>" (seed 000): a module, not a key.
    module = text[len(SCHEME) + 2 :] or "<module path>"
    return InvalidKeyUri(
        f"{text!r} names a PKCS#11 module the way OpenZiti does, not a key (RFC 7512)",
        f"agent config set device.cryptoki.module_path {module.rstrip('/')}/<the module .so> "
        "and set device.key_uri to the key's RFC 7512 URI, e.g. "
        '"pkcs11:token=<token label>;object=<key label>" '
        "(p11tool --list-privkeys prints it)",
    )


def parse_uri(text: str) -> Pkcs11Uri:
    """Parse an RFC 7512 URI. See the module docstring."""
    if not text[: len(SCHEME)].lower() == SCHEME:
        raise _fail(text, 0, "does not start with 'pkcs11:'")
    if text[len(SCHEME) : len(SCHEME) + 2] == "//":
        raise _openziti_form(text)
    query_at = text.find("?", len(SCHEME))
    path_end = len(text) if query_at < 0 else query_at
    values: dict[str, object] = {}

    sections: list[tuple[int, int, str, dict[str, str]]] = [
        (len(SCHEME), path_end, ";", _PATH_ATTRS)
    ]
    if query_at >= 0:
        sections.append((query_at + 1, len(text), "&", _QUERY_ATTRS))

    for start, end, sep, known in sections:
        if start == end:
            continue  # "pkcs11:" alone is the URI that matches everything
        for a_start, a_end in _split(text, start, end, sep):
            if a_start == a_end:
                raise _fail(text, a_start, f"empty attribute (doubled {sep!r}?)")
            eq = text.find("=", a_start, a_end)
            if eq < 0:
                raise _fail(text, a_start, f"attribute without '=': {text[a_start:a_end]!r}")
            name = text[a_start:eq]
            if not re.fullmatch(r"[A-Za-z0-9-]+", name):
                raise _fail(text, a_start, f"bad attribute name {name!r}")
            field = known.get(name)
            if field is None:
                if name in _PATH_ATTRS or name in _QUERY_ATTRS:
                    where = "query (after '?')" if sep == ";" else "path (before '?')"
                    raise _fail(text, a_start, f"{name!r} belongs in the {where}")
                _percent_decode(text, eq + 1, a_end)  # still reject bad escapes
                continue  # unknown attributes are ignored (RFC 7512 section 2.5)
            if field in values:
                raise _fail(text, a_start, f"duplicate attribute {name!r}")
            values[field] = _attribute_value(text, eq + 1, a_end, name)

    if "pin_source" in values and "pin_value" in values:
        raise _fail(text, query_at, "pin-source and pin-value must not both be given")
    return Pkcs11Uri(**values)  # type: ignore[arg-type]


def _attribute_value(text: str, start: int, end: int, name: str) -> object:
    if name == "id":
        return _percent_decode(text, start, end)
    value = _text_value(text, start, end, name)
    if name == "type":
        if value not in OBJECT_TYPES:
            allowed = ", ".join(OBJECT_TYPES)
            raise _fail(text, start, f"type={value!r} is not one of {allowed}")
        return value
    if name == "slot-id":
        if not _DIGITS.match(value):
            raise _fail(text, start, f"slot-id={value!r} is not a decimal number")
        return int(value)
    if name == "library-version" and not _VERSION.match(value):
        raise _fail(text, start, f"library-version={value!r} is not M or M.N")
    return value


def _percent_encode(value: bytes, safe: frozenset[str]) -> str:
    return "".join(chr(b) if chr(b) in safe else f"%{b:02X}" for b in value)


def format_uri(uri: Pkcs11Uri) -> str:
    """The canonical text of ``uri``: known attributes in a fixed order, minimal escaping."""
    path = []
    for name, field in _PATH_ATTRS.items():
        value = getattr(uri, field)
        if value is None:
            continue
        if isinstance(value, bytes):
            # An id is binary: escape every byte, as p11tool and pkcs11-tool do.
            encoded = "".join(f"%{b:02X}" for b in value)
        else:
            encoded = _percent_encode(str(value).encode("utf-8"), _PATH_SAFE - {";", "?"})
        path.append(f"{name}={encoded}")
    query = []
    for name, field in _QUERY_ATTRS.items():
        value = getattr(uri, field)
        if value is not None:
            query.append(f"{name}={_percent_encode(value.encode('utf-8'), _QUERY_SAFE - {'&'})}")
    text = SCHEME + ";".join(path)
    if query:
        text += "?" + "&".join(query)
    return text
