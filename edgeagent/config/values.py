"""Value rules that need no schema library: shared by the schema and the quick `get` path."""

from __future__ import annotations

import ipaddress


def parse_host_port(value: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (``[v6addr][:port]`` too); raise ValueError if malformed."""
    if "://" in value:
        raise ValueError("give host[:port] without a scheme (no 'mqtts://' or 'https://')")
    if not value or any(c.isspace() for c in value) or "/" in value:
        raise ValueError("must be host[:port] with no spaces and no path")
    host, port_text = value, ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError("unclosed '[' in an IPv6 address")
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("expected ':port' after ']'")
        port_text = rest[1:]
        if rest and not port_text:
            raise ValueError("empty port after ':'")
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
        if ":" in host:
            raise ValueError("write an IPv6 address as [addr]:port")
        if not port_text:
            raise ValueError("empty port after ':'")
    if not host:
        raise ValueError("missing host name")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("the port must be a number, 1-65535")
    return host, int(port_text)


def parse_host(value: str) -> str:
    """A host name or IP address alone (no scheme, port or path); ValueError if not."""
    try:
        ipaddress.ip_address(value)
        return value  # a bare IPv6 address has colons, and no port
    except ValueError:
        pass
    _, port = parse_host_port(value)
    if port is not None:
        raise ValueError("give the host alone here; the port is a key of its own")
    return value


def name_list(value: str) -> str:
    items = [item.strip() for item in value.split(",") if item.strip()]
    for item in items:
        if not (item.isdigit() or item.replace("-", "").replace("_", "").isalnum()):
            raise ValueError(f"{item!r} is not a user/group name or a numeric id")
    return ",".join(items)
