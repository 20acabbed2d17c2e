"""A PIN goes only to a token the configuration identifies: two real SoftHSM
tokens with different PINs, and the failed-login counters they keep.

SoftHSM sets CKF_USER_PIN_COUNT_LOW in a token's flags after a failed user
login, so a token that shows it was tried with a wrong PIN. The flags are
read in a child process, with a module loaded fresh.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgeagent import errors
from tests.support.raw_client import HELLO, connect_raw, raw_ask
from tests.support.signing_service import P11Server, P11ServerFactory
from tests.support.softhsm import SOFTHSM_MODULE, OpenSigner, SoftHsm, SoftHsmToken

pytestmark = pytest.mark.integration

_LIST_TOKENS = """
import json, sys
import pkcs11
from pkcs11 import TokenFlag
lib = pkcs11.lib(sys.argv[1])
print(json.dumps([
    {"slot": int(slot.slot_id), "label": token.label, "serial": token.serial.decode(),
     "count_low": bool(token.flags & TokenFlag.USER_PIN_COUNT_LOW)}
    for slot in lib.get_slots(token_present=True)
    for token in [slot.get_token()]
    if token.flags & TokenFlag.TOKEN_INITIALIZED
]))
"""


def _tokens() -> list[dict[str, object]]:
    """Every initialised SoftHSM token in slot order: slot, label, serial, count_low."""
    done = subprocess.run(
        [sys.executable, "-c", _LIST_TOKENS, str(SOFTHSM_MODULE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    found: list[dict[str, object]] = json.loads(done.stdout)
    return found


def _in_slot_order(*tokens: SoftHsmToken) -> list[SoftHsmToken]:
    order = [t["label"] for t in _tokens()]
    return sorted(tokens, key=lambda t: order.index(t.label))


def _count_low(label: str) -> list[bool]:
    return [bool(t["count_low"]) for t in _tokens() if t["label"] == label]


def test_a_uri_naming_no_token_logs_in_only_where_the_key_is(
    softhsm: SoftHsm, open_signer: OpenSigner
) -> None:
    earlier, later = _in_slot_order(
        softhsm.create_token(pin="11111111"), softhsm.create_token(pin="22222222")
    )
    label = f"device-key-of-{later.label}"
    key = later.generate_key("ec-p256", label=label)
    assert _count_low(earlier.label) == [False]

    signer = open_signer(f"pkcs11:object={label}", later.pin)

    assert signer.public_key() == key.public_key
    # The earlier token (and its other PIN) was never tried.
    assert _count_low(earlier.label) == [False]
    assert _count_low(later.label) == [False]


def test_a_key_no_token_shows_is_not_searched_for_with_the_pin(
    softhsm: SoftHsm, open_signer: OpenSigner
) -> None:
    one = softhsm.create_token(pin="33333333")
    other = softhsm.create_token(pin="44444444")
    with pytest.raises(errors.KeyNotFound) as caught:
        open_signer(f"pkcs11:object=nowhere-{one.label}", one.pin)
    assert "the PIN was tried on none of them" in caught.value.cause
    assert "serial=" in caught.value.fix
    assert _count_low(one.label) == [False]
    assert _count_low(other.label) == [False]


def test_the_service_never_logs_in_to_a_second_token_with_its_label(
    softhsm: SoftHsm, p11_server_factory: P11ServerFactory
) -> None:
    """Two tokens labelled alike; the service serves the first by its URI's key.

    A client names the other one (same label, its serial): no login there, and
    the service still opens further keys on its own token afterwards.
    """
    served = softhsm.create_token(pin="55555555")
    label = served.label
    default = served.generate_key("ec-p256", label=f"served-{label}")
    later_key = served.generate_key("ec-p256", label=f"later-{label}")
    softhsm.create_token(label=label, pin="66666666")  # the stranger: same label, other PIN
    serials = {str(t["serial"]) for t in _tokens() if t["label"] == label}
    assert len(serials) == 2
    server = p11_server_factory(served, default)
    server.start()
    served_serial = _serial_of_key_token(server)
    [stranger_serial] = serials - {served_serial}

    with connect_raw(server.socket_path, timeout=30) as conn:
        assert raw_ask(conn, HELLO)["ok"] is True
        refused = raw_ask(
            conn,
            {
                "op": "public_key",
                "uri": f"pkcs11:token={label};serial={stranger_serial};object=anything",
            },
        )
        assert refused["ok"] is False, refused
        assert "names another token" in json.dumps(refused), refused
        assert _count_low(label) == [False, False]

        opened = raw_ask(conn, {"op": "public_key", "uri": later_key.uri})
        assert opened["ok"] is True, opened
    assert "PinIncorrect" not in server.log_text()


def _serial_of_key_token(server: P11Server) -> str:
    """The serial of the token whose key the service logged it serves."""
    text = server.log_text()
    [line] = [line for line in text.splitlines() if "serving key" in line]
    return line.split("serial=")[1].split(";")[0]
