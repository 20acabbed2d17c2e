"""How a configuration key is declared: ``key()``, ``Format``, ``Section`` and the value types.

    class RunConfig(Section):
        path: AbsPath = key("Runtime directory ...", "/run/agent", default=Path("/run/agent"))

Each field is declared with :func:`key`, which records the doc and the
example; a ``Format`` marker inside an ``Annotated`` type gives the
human-readable description of what the value may be, used in error messages.
The sections themselves are in ``schema.py`` and ``cloud_sections.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from edgeagent.config.values import name_list, parse_host, parse_host_port


@dataclass(frozen=True)
class Format:
    """What a value must look like, in the user's words (for error messages)."""

    text: str


def key(doc: str, example: str, default: Any = None) -> Any:
    """A configuration key: its default, its doc string and one example value."""
    return Field(default=default, description=doc, examples=[example])


# -- value types -----------------------------------------------------------------


def _absolute(path: Path) -> Path:
    # A relative path in agent.toml would silently depend on the agent's
    # working directory (/ under systemd). `set` and the environment resolve
    # relative paths against the caller's cwd before they get here.
    if not path.is_absolute():
        raise ValueError(f"must be an absolute path, got {str(path)!r}")
    return path


def _pkcs11_uri(uri: str) -> str:
    # Only the scheme is checked here; RFC 7512 parsing belongs to
    # edgeagent.pkcs11, which the config layer must not import.
    if not uri.startswith("pkcs11:"):
        raise ValueError("must be a PKCS#11 URI starting with 'pkcs11:'")
    if re.search(r"(?i)[?&]pin-value=", uri):
        # A PIN inside a URI escapes everything that keeps PINs secret
        # (masked output, mode 0600): it has a key of its own.
        raise ValueError(
            "must not hold a pin-value: put the PIN in device.key_pin (or "
            "<cloud>.device.key_pin), or point pin-source at a file"
        )
    return uri


def _pin_text(value: Any) -> Any:
    # A hand-written `pin = 123456` is a TOML integer; a PIN is text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _host_port(value: str) -> str:
    parse_host_port(value)
    return value


def _host(value: str) -> str:
    return parse_host(value)


AbsPath = Annotated[Path, AfterValidator(_absolute), Format("an absolute path")]
KeyUri = Annotated[
    str,
    AfterValidator(_pkcs11_uri),
    Format("a PKCS#11 URI (RFC 7512) starting with 'pkcs11:'"),
]
HostPort = Annotated[
    str,
    AfterValidator(_host_port),
    Format("host[:port] without a scheme, port 1-65535"),
]
Host = Annotated[
    str, AfterValidator(_host), Format("a host name or IP address, no scheme, port or path")
]
Pin = Annotated[SecretStr, BeforeValidator(_pin_text), Format("the token's user PIN")]
Port = Annotated[int, Field(ge=1, le=65535), Format("a port number, 1-65535")]
CryptokiMode = Literal["off", "module", "socket"]
KeyPolicy = Literal["any", "hardware"]


class Section(BaseModel):
    # forbid: a misspelt key in agent.toml (`modul_path`) must be an error,
    # not a silently ignored line that leaves the key on disk.
    # frozen: a loaded configuration is a value; edits go through the file.
    model_config = ConfigDict(extra="forbid", frozen=True)


NameList = Annotated[str, AfterValidator(name_list), Format("comma-separated names or numeric ids")]
