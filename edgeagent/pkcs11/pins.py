"""Which PIN to log in with, and where it came from.

Most specific first: a PIN configured for this key (``<cloud>.device.key_pin``,
then ``device.key_pin``), the key URI's ``pin-source`` (a file holding the
PIN), the key URI's ``pin-value``, then the token-wide ``device.cryptoki.pin``.
An empty value anywhere counts as not set. The source is named in errors, so
a wrong PIN says which setting to fix; the PIN itself is never shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeagent.errors import ConfigError, MissingConfigValue
from edgeagent.pkcs11.uri import Pkcs11Uri


@dataclass(frozen=True)
class PinChoice:
    pin: str | None
    source: str
    """For humans: 'device.cryptoki.pin', "the key URI's pin-source /run/pin"..."""

    def __repr__(self) -> str:
        return f"PinChoice(pin=<hidden>, source={self.source!r})"


def choose_pin(
    uri: Pkcs11Uri | None,
    token_pin: str | None,
    key_pin: str | None = None,
    key_pin_key: str = "device.key_pin",
    shared_pin_from: str = "device.cryptoki.pin",
) -> PinChoice:
    if key_pin:
        return PinChoice(key_pin, key_pin_key)
    if uri is not None and uri.pin_source:
        path = _pin_source_path(uri.pin_source)
        return PinChoice(_read_pin_file(path), f"the key URI's pin-source {path}")
    if uri is not None and uri.pin_value:
        return PinChoice(uri.pin_value, "the key URI's pin-value")
    if token_pin:
        return PinChoice(token_pin, shared_pin_from)
    return PinChoice(None, "no PIN configured")


def _pin_source_path(source: str) -> Path:
    # RFC 7512 leaves pin-source's form to the application; p11-kit and
    # GnuTLS accept a path or a file: URI.
    if source.startswith("file:"):
        source = source[len("file:") :]
        if source.startswith("//"):
            source = source[2:]
    return Path(source)


def _read_pin_file(path: Path) -> str:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MissingConfigValue(
            f"the key URI's pin-source {path} does not exist",
            "create it with the PIN (mode 0600), or remove pin-source from the key URI",
        ) from None
    except PermissionError as error:
        raise ConfigError(
            f"cannot read the key URI's pin-source {path}: permission denied",
            "make it readable by the agent's user only (chmod 600, chown to that user)",
        ) from error
    except OSError as error:
        raise ConfigError(
            f"cannot read the key URI's pin-source {path}: {error.strerror}",
            "point pin-source at a file holding the PIN",
        ) from error
    pin = text.rstrip("\r\n")
    if not pin:
        raise MissingConfigValue(
            f"the key URI's pin-source {path} is empty", f"write the token's PIN into {path}"
        )
    return pin
