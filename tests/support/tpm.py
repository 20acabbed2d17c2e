"""A real software TPM 2.0 behind tpm2-pkcs11, private to the test session.

    def test_sign(software_tpm):
        key = software_tpm.generate_key("ec-p256", label="device")
        signer = open_module_signer(TPM2_PKCS11_MODULE, key.uri, software_tpm.pin)
        ...  # key.public_key is a cryptography key: issue a certificate for it

Fixture ``software_tpm`` (session): a :class:`SoftwareTpm` with one token
(``token_label``, user PIN ``pin``) in a fresh TPM. In a temp dir it starts,
on free loopback ports:

- ``swtpm socket --tpm2`` (state in the temp dir, already started up);
- a private D-Bus session bus (``dbus-daemon --nofork``, our child);
- ``tpm2-abrmd --session``, the resource manager: without it tpm2-pkcs11
  runs out of TPM object slots ("out of memory for object contexts").

and sets, for the whole session, ``DBUS_SESSION_BUS_ADDRESS``,
``TPM2_PKCS11_TCTI``, ``TPM2TOOLS_TCTI`` and ``TPM2_PKCS11_STORE`` in
``os.environ``, so subprocesses (tpm2_ptool, tpm2_getcap, p11tool, the
``agent`` command and the bridge it detaches) reach the same TPM and token
store. All restored and stopped at session end.

Keys are generated INSIDE the TPM by ``tpm2_ptool addkey``; only their
public halves are read back (through ``open_module_signer``).

tpm2-pkcs11 reads its store at C_Initialize: a key added after the module
was loaded in this process is invisible until the module is re-initialised.
``generate_key`` does that (``Module.rescan``), which needs every session on
the module closed: close your signers at the end of a test.

Dictionary-attack protection is real: each wrong PIN is a failed TPM
authorisation (TPM2_PT_LOCKOUT_COUNTER + 1). swtpm allows only 3 before it
locks out, so the fixture raises that to ``MAX_AUTH_FAIL`` for the session;
``lockout_counter()`` reads the counter.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edgeagent.signing.module_signer import open_module_signer
from tests.support.ports import LOOPBACK, free_port, port_accepts
from tests.support.tokens import TokenKey, make_visible, private_key_uri

TPM2_PKCS11_MODULE = Path("/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so")
"""Debian's path (libtpm2-pkcs11-1), a symlink to ../libtpm2_pkcs11.so.1."""

USER_PIN = "123456"
SO_PIN = "12345678"
TOKEN_LABEL = "edge-tpm"
MAX_AUTH_FAIL = 16
"""Failed authorisations before the TPM locks out (swtpm's default is 3)."""
LIBRARY_LOG = re.compile(r"^(ERROR|WARNING|WARN)(:|\b)|FAPI", re.MULTILINE)
"""What tpm2-tss / tpm2-pkcs11 print on stderr when they log (``ERROR:esys:...``,
``WARNING: Listing FAPI token objects failed ...``): never in a good run's output."""

TpmKeySpec = Literal["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"]
_PTOOL_ALGORITHM: dict[TpmKeySpec, str] = {
    "ec-p256": "ecc256",
    "ec-p384": "ecc384",
    "rsa-2048": "rsa2048",
    "rsa-3072": "rsa3072",
}

_TABRMD_TCTI = "tabrmd:bus_type=session"
_TABRMD_CLIENT = "libtss2-tcti-tabrmd.so.0"
_REQUIRED = (
    "swtpm",
    "dbus-daemon",
    "tpm2-abrmd",
    "tpm2_ptool",
    "tpm2_getcap",
    "tpm2_dictionarylockout",
)
_ENV = ("DBUS_SESSION_BUS_ADDRESS", "TPM2_PKCS11_TCTI", "TPM2TOOLS_TCTI", "TPM2_PKCS11_STORE")
_ADDRESS_IN_USE = re.compile(r"[Aa]ddress already in use")
_counter = itertools.count(1)


class SoftwareTpmError(RuntimeError):
    """The software TPM did not start or answer; the message carries the daemons' logs."""


TpmKey = TokenKey  # its name before tests/support/tokens.py


@dataclass
class _Daemon:
    """One child process whose stdout and stderr go to a log file."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class SoftwareTpm:
    """swtpm + a private D-Bus + tpm2-abrmd, and a tpm2-pkcs11 store with one token."""

    root: Path
    store: Path
    port: int
    """swtpm's TPM command port (the control channel is ``port + 1``)."""
    env: dict[str, str]
    """What this TPM adds to ``os.environ`` (already set there for the session)."""
    token_label: str = TOKEN_LABEL
    pin: str = USER_PIN
    so_pin: str = SO_PIN
    module: Path = TPM2_PKCS11_MODULE
    daemons: list[_Daemon] = field(default_factory=list)
    scratch: list[Path] = field(default_factory=list)
    """Directories outside ``root`` to remove at stop (a short D-Bus socket dir)."""

    @property
    def token_uri(self) -> str:
        return f"pkcs11:token={self.token_label}"

    def logs(self) -> str:
        """Every daemon's log, for failure messages."""
        parts = []
        for daemon in self.daemons:
            state = "running" if daemon.alive() else f"exited ({_exit_code(daemon)})"
            text = daemon.log_text().strip() or "(empty)"
            parts.append(f"--- {daemon.name} [{state}] {daemon.log_path}\n{text}")
        return "\n".join(parts)

    def run_tool(self, *argv: str, timeout: float = 60.0) -> str:
        """Run a TPM tool against this TPM; SoftwareTpmError with its output and the logs."""
        try:
            done = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                env=dict(os.environ, **self.env),
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SoftwareTpmError(
                f"{' '.join(argv)} did not finish within {timeout:.0f} s\n{self.logs()}"
            ) from exc
        if done.returncode != 0:
            raise SoftwareTpmError(
                f"{' '.join(argv)} failed (exit {done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n{self.logs()}"
            )
        return done.stdout

    def generate_key(self, spec: TpmKeySpec, label: str | None = None) -> TokenKey:
        """Generate a key pair inside the TPM; read its public half through the module."""
        n = next(_counter)
        label = label if label is not None else f"key-{n}"
        key_id = f"tpm-key-{n}"  # tpm2_ptool stores --id's text as CKA_ID's bytes
        self.run_tool(
            "tpm2_ptool",
            "addkey",
            "--label",
            self.token_label,
            "--key-label",
            label,
            "--id",
            key_id,
            "--userpin",
            self.pin,
            "--algorithm",
            _PTOOL_ALGORITHM[spec],
        )
        self.make_visible()
        uri = private_key_uri(self.token_label, label, key_id.encode())
        with open_module_signer(self.module, uri, self.pin) as signer:
            public = signer.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey), public
        return TokenKey(uri=uri, public_key=public, label=label, id=key_id.encode(), spec=spec)

    def make_visible(self) -> None:
        """Re-initialise the module if this process loaded it, so new keys show."""
        make_visible(self.module, "new TPM key")

    def lockout_counter(self) -> int:
        """TPM2_PT_LOCKOUT_COUNTER: failed authorisations the TPM is counting now."""
        out = self.run_tool("tpm2_getcap", "properties-variable")
        found = re.search(r"TPM2_PT_LOCKOUT_COUNTER:\s*(0x[0-9A-Fa-f]+)", out)
        if found is None:
            raise SoftwareTpmError(f"no TPM2_PT_LOCKOUT_COUNTER in tpm2_getcap's output:\n{out}")
        return int(found.group(1), 16)

    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()
        for directory in self.scratch:
            shutil.rmtree(directory, ignore_errors=True)


def _exit_code(daemon: _Daemon) -> int | None:
    return None if daemon.process is None else daemon.process.returncode


def _require_binaries() -> None:
    # CI installs these (scripts/setup.sh): a missing one is a broken set-up, not a skip.
    missing = [name for name in _REQUIRED if shutil.which(name) is None]
    if not TPM2_PKCS11_MODULE.exists():
        missing.append(f"{TPM2_PKCS11_MODULE} (libtpm2-pkcs11-1)")
    if not _library_present(_TABRMD_CLIENT):
        missing.append(f"{_TABRMD_CLIENT} (libtss2-tcti-tabrmd0)")
    if missing:
        pytest.fail(f"software TPM parts missing: {', '.join(missing)}: run scripts/setup.sh")


def _library_present(soname: str) -> bool:
    return any(
        (Path(d) / soname).exists()
        for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib", "/usr/lib64")
    )


def _wait(
    what: str, ready: Callable[[], bool], tpm: SoftwareTpm, watch: Sequence[_Daemon], timeout: float
) -> None:
    """Poll ``ready`` until true; fail early if a watched daemon exits, late after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not ready():
        dead = [d.name for d in watch if not d.alive()]
        if dead:
            raise SoftwareTpmError(f"{', '.join(dead)} exited while {what}\n{tpm.logs()}")
        if time.monotonic() >= deadline:
            raise SoftwareTpmError(f"timed out after {timeout:.0f} s {what}\n{tpm.logs()}")
        time.sleep(0.05)


def _free_port_pair() -> int:
    """A port P with P + 1 free too (the swtpm TCTI finds the control channel at P + 1)."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and not port_accepts(LOOPBACK, port + 1, timeout=0.1):
            return port
    raise SoftwareTpmError("found no two consecutive free loopback ports")


def _start_swtpm(tpm: SoftwareTpm, env: dict[str, str], attempts: int = 5) -> None:
    state = tpm.root / "swtpm-state"
    state.mkdir()
    for attempt in range(attempts):
        port = _free_port_pair() if attempt else tpm.port
        daemon = _Daemon(
            "swtpm",
            [
                "swtpm",
                "socket",
                "--tpm2",
                "--tpmstate",
                f"dir={state}",
                "--server",
                f"type=tcp,port={port},bindaddr={LOOPBACK}",
                "--ctrl",
                f"type=tcp,port={port + 1},bindaddr={LOOPBACK}",
                "--flags",
                "not-need-init,startup-clear",
            ],
            tpm.root / "swtpm.log",
        )
        daemon.start(env)
        tpm.daemons.append(daemon)
        # Probe the control port only: the command port serves one client at a time.
        control = port + 1
        try:
            _wait(
                "waiting for swtpm to listen",
                lambda: port_accepts(LOOPBACK, control),  # noqa: B023 (called in this iteration)
                tpm,
                [daemon],
                timeout=10,
            )
        except SoftwareTpmError:
            if daemon.alive() or not _ADDRESS_IN_USE.search(daemon.log_text()):
                raise
            tpm.daemons.remove(daemon)  # lost a port race: try other ports
            daemon.stop()
            continue
        tpm.port = port
        return
    raise SoftwareTpmError(f"swtpm found no free port in {attempts} attempts\n{tpm.logs()}")


def _start_dbus(tpm: SoftwareTpm, env: dict[str, str]) -> str:
    # A socket path must fit in sun_path (108 bytes); pytest's temp dirs can be deep.
    socket_dir = tpm.root
    if len(str(socket_dir / "bus")) > 100:
        socket_dir = Path(tempfile.mkdtemp(prefix="tpm-bus-"))
        tpm.scratch.append(socket_dir)
    bus = socket_dir / "bus"
    address = f"unix:path={bus}"
    daemon = _Daemon(
        "dbus-daemon",
        ["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address={address}"],
        tpm.root / "dbus.log",
    )
    daemon.start(env)
    tpm.daemons.append(daemon)
    _wait("waiting for the D-Bus socket", bus.exists, tpm, [daemon], timeout=10)
    return address


def _tpm_answers(tpm: SoftwareTpm) -> Callable[[], bool]:
    def ready() -> bool:
        done = subprocess.run(
            ["tpm2_getcap", "properties-fixed"],
            capture_output=True,
            env=dict(os.environ, **tpm.env),
            timeout=10,
            check=False,
        )
        return done.returncode == 0

    return ready


def _start_abrmd(tpm: SoftwareTpm, env: dict[str, str]) -> None:
    argv = [
        "tpm2-abrmd",
        "--session",
        "--flush-all",
        f"--tcti=swtpm:host={LOOPBACK},port={tpm.port}",
    ]
    if os.geteuid() == 0:
        argv.append("--allow-root")  # CI containers run as root; abrmd refuses without it
    daemon = _Daemon("tpm2-abrmd", argv, tpm.root / "tpm2-abrmd.log")
    daemon.start(env)
    tpm.daemons.append(daemon)
    _wait(
        "waiting for tpm2-abrmd to answer (tpm2_getcap over the tabrmd TCTI)",
        _tpm_answers(tpm),
        tpm,
        tpm.daemons,
        timeout=20,
    )


def start_software_tpm(root: Path) -> SoftwareTpm:
    """Start the daemons and create the token store; the caller sets ``tpm.env`` in os.environ."""
    _require_binaries()
    store = root / "store"
    store.mkdir()
    tpm = SoftwareTpm(root=root, store=store, port=_free_port_pair(), env={})
    try:
        base = dict(os.environ)
        _start_swtpm(tpm, base)
        address = _start_dbus(tpm, base)
        tpm.env = {
            "DBUS_SESSION_BUS_ADDRESS": address,
            "TPM2_PKCS11_TCTI": _TABRMD_TCTI,
            "TPM2TOOLS_TCTI": _TABRMD_TCTI,
            "TPM2_PKCS11_STORE": str(store),
        }
        _start_abrmd(tpm, dict(base, **tpm.env))
        tpm.run_tool(
            "tpm2_dictionarylockout",
            "--setup-parameters",
            f"--max-tries={MAX_AUTH_FAIL}",
            "--recovery-time=1000",
            "--lockout-recovery-time=1000",
        )
        tpm.run_tool("tpm2_ptool", "init")  # primary object id 1
        tpm.run_tool(
            "tpm2_ptool",
            "addtoken",
            "--pid",
            "1",
            "--sopin",
            tpm.so_pin,
            "--userpin",
            tpm.pin,
            "--label",
            tpm.token_label,
        )
    except BaseException:
        tpm.stop()
        raise
    return tpm


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    previous = {name: os.environ.get(name) for name in _ENV}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def software_tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftwareTpm]:
    """A fresh software TPM 2.0 with token ``TOKEN_LABEL``; its env set for the session."""
    tpm = start_software_tpm(tmp_path_factory.mktemp("tpm"))
    try:
        with _environment(tpm.env):
            # Loaded earlier in this process against another TPM? Re-read ours.
            tpm.make_visible()
            yield tpm
    finally:
        tpm.stop()
