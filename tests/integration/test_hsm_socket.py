"""`agent hsm` and `agent cert` in socket mode: the signing service does the token work.

The agent's config names only the socket: no module, no PIN. Listing is
open to every served peer, creating and deleting keys only to the service's
own user and root; init and change-pin are refused in socket mode with
the command to run instead.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from edgeagent import errors
from edgeagent.signing.socket_signer import SocketSigner
from tests.support.agent_cli import exit_code
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.raw_client import HELLO, NOBODY, connect_raw, raw_ask, replies_as
from tests.support.signing_service import P11Server, P11ServerFactory
from tests.support.softhsm import SoftHsmKey, SoftHsmToken

pytestmark = pytest.mark.integration


@pytest.fixture
def service(
    p11_server_factory: P11ServerFactory, softhsm_token: SoftHsmToken
) -> tuple[P11Server, SoftHsmKey]:
    """A service whose default key is 'served-key', open to `nobody` too."""
    default = softhsm_token.generate_key("ec-p256", label="served-key")
    server = p11_server_factory(softhsm_token, default, socket_name="p11.sock")
    server.set("p11_server.allowed_users", str(NOBODY))
    return server.start(), default


@pytest.fixture
def gateway(service: tuple[P11Server, SoftHsmKey], gateway_factory: GatewayFactory) -> Gateway:
    gw = gateway_factory("socket", socket_path=service[0].socket_path)
    gw.set("device.cert_path", str(gw.root / "certs" / "device.pem"))
    return gw


def test_create_key_csr_and_connect_through_the_service(
    gateway: Gateway, softhsm_token: SoftHsmToken
) -> None:
    listed = gateway.agent("hsm", "list-tokens")
    assert listed.returncode == 0, listed.stderr
    assert f"token '{softhsm_token.label}'" in listed.stdout

    created = gateway.agent(
        "hsm", "create-key", "--token-uri", softhsm_token.uri, "--type", "ec-p384"
    )
    assert created.returncode == 0, created.stderr
    uri = created.stdout.strip()
    assert "object=device-key" in uri and "set device.key_uri" in created.stderr
    keys = gateway.agent("hsm", "list-keys", "--uri", softhsm_token.uri)
    assert uri in keys.stdout and "EC secp384r1" in keys.stdout and "served-key" in keys.stdout

    csr = gateway.agent("cert", "create-csr", "--device-id", "sock-042")
    assert csr.returncode == 0, csr.stderr
    assert "ecdsa-with-SHA384" in csr.stderr and "via the signing service" in csr.stderr
    verified = subprocess.run(
        ["openssl", "req", "-in", csr.stdout.strip(), "-verify", "-noout"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0
    gateway.pki.ca.sign_csr(
        Path(csr.stdout.strip()).read_bytes(), path=gateway.config_dir.parent / "certs/device.pem"
    )
    agent_toml = (gateway.config_dir / "agent.toml").read_text()
    # Keys, not substrings: a temp path may well contain "pin".
    assert not re.search(r"^\s*(module_path|pin|key_pin)\s*=", agent_toml, re.M), agent_toml

    done = gateway.agent("connect", "c8y")
    assert done.returncode == 0, done.stdout + done.stderr
    up, down = gateway.exchange(b"200,c8y_Temperature,T,19", b"510,sock-042")
    assert up.payload == b"200,c8y_Temperature,T,19"
    assert down.payload == b"510,sock-042"

    # The key in use cannot be deleted from the agent without --force.
    refused = gateway.agent("hsm", "delete-key", "--label", "device-key")
    assert refused.returncode == exit_code(errors.KeyInUse)


def test_delete_key_through_the_service_and_its_own_refusal(
    gateway: Gateway, service: tuple[P11Server, SoftHsmKey], softhsm_token: SoftHsmToken
) -> None:
    made = gateway.agent(
        "hsm", "create-key", "--token-uri", softhsm_token.uri, "--label", "spare", "--cloud", "c8y"
    )
    assert made.returncode == 0, made.stderr
    gateway.set("c8y.device.key_uri", "pkcs11:token=elsewhere;object=x")
    # A client that signed with the key: the service keeps its handle until the delete.
    signer = SocketSigner(service[0].socket_path, f"{softhsm_token.uri};object=spare")
    assert len(signer.sign_digest(bytes(32), "sha256", "ecdsa")) > 64
    deleted = gateway.agent(
        "hsm", "delete-key", "--token-uri", softhsm_token.uri, "--label", "spare"
    )
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted private key" in deleted.stdout and "deleted public key" in deleted.stdout
    assert "spare" not in gateway.agent("hsm", "list-keys", "--uri", softhsm_token.uri).stdout
    with pytest.raises(errors.KeyNotFound):  # looked up afresh, not a stale handle
        signer.sign_digest(bytes(32), "sha256", "ecdsa")
    signer.close()

    # The service's default key: refused by the service itself.
    served = gateway.agent(
        "hsm", "delete-key", "--token-uri", softhsm_token.uri, "--label", "served-key", "--force"
    )
    assert served.returncode == exit_code(errors.KeyInUse)
    assert "serves" in served.stderr and "default key" in served.stderr
    listed = gateway.agent("hsm", "list-keys", "--uri", softhsm_token.uri)
    assert "served-key" in listed.stdout


def test_other_peers_may_list_but_not_create_or_delete(
    service: tuple[P11Server, SoftHsmKey], softhsm_token: SoftHsmToken
) -> None:
    server, _ = service
    # The file mode is the first gate; open it so the peer check is what decides.
    server.socket_path.chmod(0o666)
    hello, tokens, keys, create, delete, unknown = replies_as(
        server.socket_path,
        NOBODY,
        NOBODY,
        {"op": "list_tokens"},
        {"op": "list_keys", "uri": softhsm_token.uri},
        {"op": "create_key", "uri": softhsm_token.uri, "key_type": "ec-p256", "label": "evil"},
        {"op": "delete_key", "uri": softhsm_token.uri, "label": "served-key"},
        {"op": "init_token", "label": "x"},
    )
    assert hello["ok"] is True
    assert tokens["ok"] is True
    assert any(t["label"] == softhsm_token.label for t in tokens["tokens"])
    assert keys["ok"] is True and [k["label"] for k in keys["keys"]] == ["served-key"]
    assert keys["keys"][0]["uri"].endswith(";type=private")
    for refused in (create, delete):
        assert refused["ok"] is False
        assert refused["error"]["code"] == "admin_not_allowed"
        assert f"not uid {NOBODY}" in refused["error"]["message"]
    assert unknown["error"]["code"] == "bad_request"  # not offered remotely


def test_malformed_admin_requests_are_bad_requests(service: tuple[P11Server, SoftHsmKey]) -> None:
    server, _ = service
    with connect_raw(server.socket_path, timeout=10) as conn:
        raw_ask(conn, HELLO)
        for request in (
            {"op": "create_key", "key_type": "dsa", "label": "k"},
            {"op": "create_key", "key_type": "ec-p256"},
            {"op": "create_key", "key_type": "ec-p256", "label": "k", "id": "zz"},
            {"op": "delete_key", "uri": None},
            {"op": "list_keys", "uri": 5},
        ):
            reply = raw_ask(conn, request)
            assert reply["error"]["code"] == "bad_request", (request, reply)
        assert raw_ask(conn, {"op": "ping"}) == {"ok": True}


def test_init_and_change_pin_say_where_to_run_them(gateway: Gateway, tmp_path: Path) -> None:
    pin = tmp_path / "pin"
    pin.write_text("123456\n")
    for args in (
        ("hsm", "init", "--label", "x", "--so-pin-file", str(pin), "--pin-file", str(pin)),
        ("hsm", "change-pin", "--pin-file", str(pin), "--new-pin-file", str(pin)),
    ):
        done = gateway.agent(*args)
        assert done.returncode == exit_code(errors.ConfigError), done.stderr
        assert "device.cryptoki.mode is 'socket'" in done.stderr
        assert "agent --config-dir /etc/agent-p11-server hsm" in done.stderr
