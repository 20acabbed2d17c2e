"""Everything the benchmarks run against, started once per run on loopback.

    with Testbed.create() as bed:
        bed.token_key.uri        # an ECDSA P-256 key generated on a SoftHSM2 token
        bed.file_device          # a P-256 key file + certificate from the same CA
        cloud = bed.cloud_broker("cloud-1")          # TLS 1.3, client certs
        service = bed.p11_server()                   # `agent p11-server`, started once

Nothing listens on a fixed port; every process started here is stopped on
exit. ``SOFTHSM2_CONF`` is set in ``os.environ`` so that child processes
(`agent p11-server`, `agent bridge run`) see the same token.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from edgeagent.config import set_value
from tests.support.mosquitto import Mosquitto, TlsListener
from tests.support.pki import ClientCredentials, TestPki
from tests.support.softhsm import SOFTHSM_MODULE, SoftHsm, SoftHsmKey, SoftHsmToken

AGENT = Path(sys.executable).with_name("agent")
DEVICE_CN = "bench-device"


class BenchError(RuntimeError):
    """A benchmark could not run (a process did not start, a run timed out)."""


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.02
) -> None:
    """Poll ``condition()`` until true; BenchError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise BenchError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it hangs. Only ever the process we started."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


@dataclass
class P11Server:
    """`agent p11-server` with its own config dir, serving the token key."""

    config_dir: Path
    socket_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> P11Server:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(AGENT), "--config-dir", str(self.config_dir), "p11-server"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise BenchError(
                    f"agent p11-server exited {self.process.returncode}:\n"
                    + self.log_path.read_text(errors="replace")
                )
            return self.socket_path.exists()

        wait_until(ready, timeout, "agent p11-server listening")
        return self

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


@dataclass
class Testbed:
    """A PKI, a SoftHSM2 token with a P-256 key, and factories for brokers."""

    root: Path
    pki: TestPki
    hsm: SoftHsm
    token: SoftHsmToken
    token_key: SoftHsmKey
    token_cert: Path
    file_device: ClientCredentials
    cloud_app: ClientCredentials
    _brokers: list[Mosquitto] = field(default_factory=list)
    _services: list[P11Server] = field(default_factory=list)
    _service: P11Server | None = None

    @classmethod
    def create(cls) -> Testbed:
        # Short path: a Unix socket path must fit in 108 bytes.
        root = Path(tempfile.mkdtemp(prefix="ea-bench-", dir="/tmp"))
        try:
            pki = TestPki(root / "pki")
            hsm = _softhsm(root / "softhsm")
            token = hsm.create_token("bench-token")
            key = token.generate_key("ec-p256", label="bench-key")
            token_cert = pki.ca.issue_client(key.public_key, DEVICE_CN)
            file_device = pki.ca.issue_client_with_key(DEVICE_CN, "ec-p256")
            cloud_app = pki.client("bench-cloud-app")
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(root, pki, hsm, token, key, token_cert, file_device, cloud_app)

    def __enter__(self) -> Testbed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for service in self._services:
            service.stop()
        for broker in self._brokers:
            broker.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)

    # -- brokers ---------------------------------------------------------------------

    def cloud_broker(self, name: str, extra_config: list[str] | None = None) -> Mosquitto:
        """A stand-in cloud: TLS 1.3 only, client certificates from the test CA."""
        tls = TlsListener.for_server(self.pki.localhost_server, client_ca=self.pki.ca.cert_path)
        return self.started(
            Mosquitto(self.root / name, plain=False, tls=tls, extra_config=extra_config or ())
        )

    def local_broker(self, name: str, extra_config: list[str] | None = None) -> Mosquitto:
        """A plain, anonymous local broker (``extra_config``: e.g. a bridge section)."""
        return self.started(
            Mosquitto(self.root / name, plain=True, extra_config=extra_config or ())
        )

    def started(self, broker: Mosquitto) -> Mosquitto:
        self._brokers.append(broker)
        return broker.start()

    def stop_broker(self, broker: Mosquitto) -> None:
        broker.stop()
        with contextlib.suppress(ValueError):
            self._brokers.remove(broker)

    # -- the signing service ------------------------------------------------------------

    def p11_server(self) -> P11Server:
        """`agent p11-server` for the token key, started on first use and kept."""
        if self._service is None:
            config_dir = self.root / "etc-p11"
            for key, value in (
                ("device.cryptoki.mode", "module"),
                ("device.cryptoki.module_path", str(SOFTHSM_MODULE)),
                ("device.cryptoki.pin", self.token.pin),
                ("device.cryptoki.uri", self.token_key.uri),
                ("device.cryptoki.socket_path", str(self.root / "p11.sock")),
            ):
                set_value(config_dir, key, value)
            self._service = P11Server(config_dir, self.root / "p11.sock", self.root / "p11.log")
            self._services.append(self._service)
            self._service.start()
        return self._service

    # -- agent config dirs ---------------------------------------------------------------

    def agent_config(self, name: str, local: Mosquitto, cloud: Mosquitto, mode: str) -> Path:
        """A config dir for `agent bridge run c8y`: ``mode`` 'off' (key file), 'module' or
        'socket' (through `p11_server`)."""
        config_dir = self.root / name
        values = [
            ("c8y.url", cloud.url),
            ("c8y.root_cert_path", str(self.pki.ca.cert_path)),
            ("mqtt.client.host", local.host),
            ("mqtt.client.port", str(local.port)),
            ("run.path", str(self.root / name / "run")),
            ("logs.path", str(self.root / name / "log")),
            ("device.cryptoki.mode", mode),
        ]
        if mode == "off":
            values += [
                ("device.cert_path", str(self.file_device.cert_path)),
                ("device.key_path", str(self.file_device.key_path)),
            ]
        elif mode == "module":
            values += [
                ("device.cert_path", str(self.token_cert)),
                ("device.cryptoki.module_path", str(SOFTHSM_MODULE)),
                ("device.cryptoki.pin", self.token.pin),
                ("device.key_uri", self.token_key.uri),
            ]
        elif mode == "socket":
            values += [
                ("device.cert_path", str(self.token_cert)),
                ("device.cryptoki.socket_path", str(self.p11_server().socket_path)),
                ("device.key_uri", self.token_key.uri),
            ]
        else:
            raise ValueError(f"mode {mode!r}")
        for key, value in values:
            set_value(config_dir, key, value)
        return config_dir


def _softhsm(root: Path) -> SoftHsm:
    token_dir = root / "tokens"
    token_dir.mkdir(parents=True)
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {token_dir}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    hsm = SoftHsm(root, conf, token_dir)
    hsm.make_visible()
    return hsm
