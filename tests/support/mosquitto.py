"""Real mosquitto brokers for tests: the local broker and a stand-in cloud.

A `Mosquitto` writes its config into its own directory and runs
`mosquitto -c mosquitto.conf` as a child process on free loopback ports.

    with Mosquitto(tmp_path / "local") as local:              # plain listener
        probe = MqttProbe(local.host, local.port)

    tls = TlsListener.for_server(pki.localhost_server, client_ca=pki.ca.cert_path)
    with Mosquitto(tmp_path / "cloud", plain=False, tls=tls) as cloud:
        ...  # TLS 1.3 only, a client certificate from pki.ca required,
             # the certificate's CN becomes the MQTT username

Fixtures (function scope, stopped afterwards; on failure pytest shows the
broker log under "Captured stdout teardown"):

- `local_broker`: plain listener, anonymous clients allowed.
- `cloud_broker`: TLS 1.3 listener only, server certificate from `pki.ca`
  for `localhost` + 127.0.0.1, client certificates must come from `pki.ca`.
- `mosquitto_factory`: `mosquitto_factory(plain=..., tls=..., ...)` starts
  more brokers (e.g. a cloud with an expired or wrong-CA server certificate).

Every broker sets `max_queued_messages 0` (mosquitto's default of 1000
silently drops QoS 1 messages for a slow client) and `persistence false`.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import pytest

from tests.support.pki import ServerCredentials, TestPki
from tests.support.ports import LOOPBACK, free_port, port_accepts

MOSQUITTO = "mosquitto"
TlsVersion = Literal["tlsv1.3", "tlsv1.2", "tlsv1.1"]

_RUNNING = re.compile(r"mosquitto version \S+ running")
_ADDRESS_IN_USE = "Address already in use"


class MosquittoError(RuntimeError):
    """mosquitto did not start (or stop) as asked; the message carries its log."""


@dataclass(frozen=True)
class TlsListener:
    """A TLS listener's settings.

    `cafile` is what client certificates are checked against; `certfile` /
    `keyfile` are the server's own certificate and key. The defaults make
    the stand-in cloud: TLS 1.3 only, a client certificate required, its
    CN used as the MQTT username.
    """

    cafile: Path
    certfile: Path
    keyfile: Path
    tls_version: TlsVersion = "tlsv1.3"
    require_certificate: bool = True
    use_identity_as_username: bool = True
    # Caps on the broker's OpenSSL, set through OPENSSL_CONF (mosquitto's
    # `tls_version tlsv1.2` means "1.2 or newer" and still negotiates 1.3):
    # max_protocol "TLSv1.2" makes a TLS-1.2-only stand-in cloud; the
    # signature algorithm lists (OpenSSL syntax, e.g. "rsa_pss_rsae_sha256")
    # make servers that sign with, or accept client signatures in, those
    # only; groups narrows the server's key exchange groups (in TLS 1.2 they
    # also bound the curves of EC certificates). cipher_string is mosquitto's
    # own `ciphers` (TLS 1.2 suites; it overrides OpenSSL's CipherString).
    max_protocol: str | None = None
    signature_algorithms: str | None = None
    client_signature_algorithms: str | None = None
    cipher_string: str | None = None
    groups: str | None = None

    @classmethod
    def for_server(
        cls, server: ServerCredentials, *, client_ca: Path, tls_version: TlsVersion = "tlsv1.3"
    ) -> TlsListener:
        return cls(
            cafile=client_ca,
            certfile=server.cert_path,
            keyfile=server.key_path,
            tls_version=tls_version,
        )

    @classmethod
    def tls12_only(
        cls,
        server: ServerCredentials,
        *,
        client_ca: Path,
        signature_algorithms: str | None = None,
        client_signature_algorithms: str | None = None,
        cipher_string: str | None = None,
        groups: str | None = None,
    ) -> TlsListener:
        """A listener that speaks TLS 1.2 and nothing newer (see `max_protocol`)."""
        return cls(
            cafile=client_ca,
            certfile=server.cert_path,
            keyfile=server.key_path,
            tls_version="tlsv1.2",
            max_protocol="TLSv1.2",
            signature_algorithms=signature_algorithms,
            client_signature_algorithms=client_signature_algorithms,
            cipher_string=cipher_string,
            groups=groups,
        )

    def openssl_conf(self) -> str | None:
        """An OPENSSL_CONF file's text for the caps above, or None without caps."""
        settings = {
            "MaxProtocol": self.max_protocol,
            "SignatureAlgorithms": self.signature_algorithms,
            "ClientSignatureAlgorithms": self.client_signature_algorithms,
            "Groups": self.groups,
        }
        lines = [f"{name} = {value}" for name, value in settings.items() if value]
        if not lines:
            return None
        return "\n".join(
            [
                "openssl_conf = default_conf",
                "[default_conf]",
                "ssl_conf = ssl_sect",
                "[ssl_sect]",
                "system_default = system_default_sect",
                "[system_default_sect]",
                *lines,
                "",
            ]
        )

    def config_lines(self) -> list[str]:
        return [
            f"cafile {self.cafile}",
            f"certfile {self.certfile}",
            f"keyfile {self.keyfile}",
            f"tls_version {self.tls_version}",
            f"require_certificate {str(self.require_certificate).lower()}",
            f"use_identity_as_username {str(self.use_identity_as_username).lower()}",
            *([f"ciphers {self.cipher_string}"] if self.cipher_string else []),
        ]


class Mosquitto:
    """One mosquitto process with an optional plain and an optional TLS listener.

    Ports are chosen on the first `start()` and kept across `stop()` /
    `start()`, so a client can reconnect to a restarted broker. `port` is
    the plain listener's, `tls_port` the TLS listener's.
    """

    host = LOOPBACK
    #: The DNS name the `cloud_broker`'s server certificate is issued for.
    hostname = "localhost"

    def __init__(
        self,
        directory: Path,
        *,
        plain: bool = True,
        tls: TlsListener | None = None,
        max_inflight_messages: int = 100,
        extra_config: Sequence[str] = (),
    ) -> None:
        if not plain and tls is None:
            raise ValueError("a broker needs a plain listener, a TLS listener or both")
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.plain = plain
        self.tls = tls
        self.max_inflight_messages = max_inflight_messages
        self.extra_config = list(extra_config)
        self.conf_path = directory / "mosquitto.conf"
        self.log_path = directory / "mosquitto.log"
        # mosquitto prints config errors to stderr before the log file is open.
        self.output_path = directory / "mosquitto.out"
        self._port: int | None = None
        self._tls_port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._ports_fixed = False

    def __repr__(self) -> str:
        listeners = []
        if self.plain:
            listeners.append(f"plain:{self._port}")
        if self.tls:
            listeners.append(f"tls:{self._tls_port}")
        return f"Mosquitto({', '.join(listeners)}, running={self.is_running})"

    @property
    def port(self) -> int:
        """The plain listener's port."""
        if not self.plain or self._port is None:
            raise RuntimeError(f"{self!r} has no plain listener (or was never started)")
        return self._port

    @property
    def tls_port(self) -> int:
        """The TLS listener's port."""
        if self.tls is None or self._tls_port is None:
            raise RuntimeError(f"{self!r} has no TLS listener (or was never started)")
        return self._tls_port

    @property
    def url(self) -> str:
        """`localhost:<tls_port>`: what `c8y.url` is set to for the stand-in cloud."""
        return f"{self.hostname}:{self.tls_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        """Everything mosquitto wrote so far: its log file, then stdout/stderr."""
        parts = []
        for path in (self.log_path, self.output_path):
            if path.exists():
                text = path.read_text(errors="replace")
                if text:
                    parts.append(f"--- {path.name} ---\n{text}")
        return "\n".join(parts)

    def _config(self) -> str:
        lines = [
            "# written by tests/support/mosquitto.py",
            "per_listener_settings false",
            "persistence false",
            f"log_dest file {self.log_path}",
            # Not "all": debug logs every PUBLISH and slows throughput tests.
            *(
                f"log_type {t}"
                for t in ("error", "warning", "notice", "information", "subscribe", "unsubscribe")
            ),
            "connection_messages true",
            "log_timestamp true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "max_queued_messages 0",
            "max_queued_bytes 0",
            f"max_inflight_messages {self.max_inflight_messages}",
            # allow_anonymous is global unless per_listener_settings: the TLS
            # listener still refuses clients without a certificate in the
            # handshake, and with use_identity_as_username its clients are
            # not anonymous, so "true" only matters for the plain listener.
            f"allow_anonymous {str(self.plain).lower()}",
        ]
        if os.geteuid() == 0:
            # As root mosquitto drops to the "mosquitto" user, which cannot
            # read our private temp files.
            lines.append("user root")
        lines += self.extra_config
        if self.plain:
            lines += ["", f"listener {self._port} {self.host}"]
        if self.tls is not None:
            lines += ["", f"listener {self._tls_port} {self.host}", *self.tls.config_lines()]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        """Start mosquitto and wait until its listeners accept connections."""
        if self.is_running:
            return self
        attempts = 1 if self._ports_fixed else 5
        for attempt in range(attempts):
            if not self._ports_fixed:
                self._port = free_port() if self.plain else None
                self._tls_port = free_port() if self.tls is not None else None
            try:
                self._spawn(timeout)
            except MosquittoError as e:
                # Another process took a port between free_port() and bind().
                if _ADDRESS_IN_USE in str(e) and attempt + 1 < attempts:
                    continue
                raise
            self._ports_fixed = True
            return self
        raise AssertionError("unreachable")

    def _spawn(self, timeout: float) -> None:
        self.conf_path.write_text(self._config())
        for path in (self.log_path, self.output_path):
            path.unlink(missing_ok=True)
        env = None
        openssl_conf = self.tls.openssl_conf() if self.tls is not None else None
        if openssl_conf is not None:
            conf = self.directory / "openssl.cnf"
            conf.write_text(openssl_conf)
            env = dict(os.environ, OPENSSL_CONF=str(conf))
        with self.output_path.open("wb") as out:
            self._process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf_path)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal is the test runner's
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise MosquittoError(f"mosquitto exited with {code} at start\n{self.log_text()}")
            if self._ready():
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise MosquittoError(f"mosquitto not ready after {timeout} s\n{self.log_text()}")
            time.sleep(0.02)

    def _ready(self) -> bool:
        # mosquitto opens its listeners before it logs "running"; checking the
        # log avoids poking the TLS port with a connection that is not TLS.
        if not self.log_path.exists() or not _RUNNING.search(
            self.log_path.read_text(errors="replace")
        ):
            return False
        return not self.plain or port_accepts(self.host, self.port)

    def stop(self, timeout: float = 5.0, *, graceful: bool = True) -> None:
        """Stop mosquitto: SIGTERM (SIGKILL if `graceful` is False or it hangs)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def restart(self, timeout: float = 10.0) -> Mosquitto:
        """Stop and start again on the same ports."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class MosquittoFactory(Protocol):
    """What the `mosquitto_factory` fixture yields: starts a broker, returns it running."""

    def __call__(
        self,
        *,
        plain: bool = True,
        tls: TlsListener | None = None,
        name: str = "broker",
        max_inflight_messages: int = 100,
        extra_config: Sequence[str] = (),
    ) -> Mosquitto: ...


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[MosquittoFactory]:
    """Start brokers on demand; see `MosquittoFactory` for the arguments.

    Returns the started `Mosquitto`; all are stopped after the test and
    their logs printed (pytest shows them only when the test failed).
    """
    started: list[Mosquitto] = []
    counter = itertools.count(1)

    def start(
        *,
        plain: bool = True,
        tls: TlsListener | None = None,
        name: str = "broker",
        max_inflight_messages: int = 100,
        extra_config: Sequence[str] = (),
    ) -> Mosquitto:
        broker = Mosquitto(
            tmp_path / f"mosquitto-{name}-{next(counter)}",
            plain=plain,
            tls=tls,
            max_inflight_messages=max_inflight_messages,
            extra_config=extra_config,
        )
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.stop()
    for broker in started:
        print(f"===== {broker!r} in {broker.directory}\n{broker.log_text()}")


@pytest.fixture
def local_broker(mosquitto_factory: MosquittoFactory) -> Mosquitto:
    """A plain, anonymous mosquitto on a free loopback port (`.host`, `.port`)."""
    return mosquitto_factory(plain=True, name="local")


@pytest.fixture
def cloud_broker(mosquitto_factory: MosquittoFactory, pki: TestPki) -> Mosquitto:
    """A stand-in cloud: TLS 1.3 only, client certificate from `pki.ca` required.

    Connect to `.hostname` ("localhost") or `.host` (127.0.0.1) on
    `.tls_port`, trusting `pki.ca.cert_path`; the client certificate's CN
    becomes the MQTT username.
    """
    tls = TlsListener.for_server(pki.localhost_server, client_ca=pki.ca.cert_path)
    return mosquitto_factory(plain=False, tls=tls, name="cloud")
