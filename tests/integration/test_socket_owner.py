"""The socket-mode client trusts a signing service only from root, its own user or
the packaging's service user: an impostor started by another local user
(`nobody`) at the configured socket path is refused before anything is sent.

The impostor speaks the protocol well (hello, public_key with a key of its
own), so that only the ownership check can tell it apart.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgeagent import errors
from edgeagent.signing.socket_signer import open_socket_signer
from tests.support.raw_client import NOBODY, SYSTEM_PYTHON

pytestmark = pytest.mark.integration

# Standard library only: it runs as nobody.
_IMPOSTOR = """
import json, os, socket, struct, sys, time
path, public_key_b64 = sys.argv[1], sys.argv[2]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
os.chmod(path, 0o666)
server.listen(4)
print("ready", flush=True)
server.settimeout(20)
conn, _ = server.accept()
conn.settimeout(10)
def read():
    head = b""
    while len(head) < 4:
        chunk = conn.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    (n,) = struct.unpack(">I", head)
    body = b""
    while len(body) < n:
        body += conn.recv(n - len(body))
    return json.loads(body)
while (request := read()) is not None:
    if request["op"] == "hello":
        reply = {"ok": True, "version": 1, "server": "impostor"}
    else:
        reply = {"ok": True, "uri": "pkcs11:token=impostor", "public_key": public_key_b64}
    body = json.dumps(reply).encode()
    conn.sendall(struct.pack(">I", len(body)) + body)
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user may create files in, as a careless set-up would leave it."""
    directory = Path(tempfile.mkdtemp(prefix="p11x-", dir="/tmp"))
    directory.chmod(0o1777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("file_owner", ["nobody", "root"])
def test_a_socket_another_user_bound_is_not_trusted(file_owner: str, shared_dir: Path) -> None:
    """``root``: the file was given to root afterwards; the process answering is
    still nobody's, and SO_PEERCRED tells."""
    path = shared_dir / "agent-p11-server.sock"
    forged = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = forged.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    impostor = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            SYSTEM_PYTHON,
            "-I",
            "-c",
            _IMPOSTOR,
            str(path),
            base64.b64encode(der).decode(),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert impostor.stdout is not None
        assert impostor.stdout.readline().strip() == "ready", impostor.stderr
        assert path.stat().st_uid == NOBODY
        if file_owner == "root":
            os.chown(path, 0, 0)
        started = time.monotonic()
        with pytest.raises(errors.SignerUnreachable) as caught:
            open_socket_signer(path, None).close()
        assert time.monotonic() - started < 10
        if file_owner == "root":
            assert f"runs as nobody (uid {NOBODY})" in caught.value.cause
        else:
            assert f"owned by nobody (uid {NOBODY})" in caught.value.cause
        assert "impersonating" in caught.value.fix
    finally:
        impostor.kill()
        impostor.wait(10)
