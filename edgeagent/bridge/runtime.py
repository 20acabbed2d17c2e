"""The bridge's long-running process: open the key, build TLS, run the bridge.

exec_runtime(plan, pid_file)          # replaces this process (same pid): one cloud
exec_host(plan, run_dir, log_dir)     # the same, as (or through) the bridge host
prepared = prepare(plan)              # in a cloud's thread: the key, TLS, the Bridge
prepared.run(stop)                    # until ``stop`` is set
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from edgeagent.bridge.bridge import Bridge
from edgeagent.bridge.cert_check import DailyCertCheck
from edgeagent.bridge.holder import RUNTIME_MODULE
from edgeagent.bridge.plan import BridgePlan
from edgeagent.bridge.rules import TopicRules
from edgeagent.bridge.status_file import StatusFile
from edgeagent.lean_exec import exec_lean, read_payload
from edgeagent.mqtt.endpoint import Endpoint
from edgeagent.signing.certificate import read_device_certificate
from edgeagent.signing.match import check_matches_certificate
from edgeagent.signing.open import open_signer_from
from edgeagent.signing.signer import Signer
from edgeagent.tls.client import TlsClientContext
from edgeagent.tls.verify import load_trust_anchors

log = logging.getLogger("edgeagent.bridge")


def exec_runtime(plan: BridgePlan, pid_file: Path | None) -> NoReturn:
    """Replace this process by the lean bridge runtime, handing it ``plan``."""
    args = [] if pid_file is None else ["--pid-file", str(pid_file)]
    exec_lean(RUNTIME_MODULE, plan.to_json(), *args)


def exec_host(
    plan: BridgePlan, run_dir: Path, log_dir: Path, *, join: bool = False, restart: bool = False
) -> NoReturn:
    """Replace this process by the lean runtime that starts ``plan``'s cloud in the
    bridge host: it hands the plan to the running host, else becomes the host
    (``join``: never; under systemd the unit is the host). ``restart``: the host
    stops the cloud's running bridge first (`agent reconnect`)."""
    args = ["--host", str(run_dir), "--log-dir", str(log_dir)]
    args += ["--join"] if join else []
    exec_lean(RUNTIME_MODULE, plan.to_json(), *args, *(["--restart"] if restart else []))


def exec_host_foreground(plans: list[BridgePlan], run_dir: Path) -> NoReturn:
    """Replace this process by the lean runtime serving ``plans`` as the bridge host."""
    payload = b"[" + b",".join(plan.to_json() for plan in plans) + b"]"
    exec_lean(RUNTIME_MODULE, payload, "--serve", str(run_dir))


def read_plan(fd: int) -> BridgePlan:
    return BridgePlan.from_json(read_payload(fd))


def read_plans(fd: int) -> list[BridgePlan]:
    return [BridgePlan.from_json(json.dumps(raw).encode()) for raw in json.loads(read_payload(fd))]


@dataclass
class PreparedBridge:
    """A cloud's bridge with its key open, ready to run; ``close`` releases the key."""

    plan: BridgePlan
    bridge: Bridge
    signer: Signer
    cert_check_output: Path | None = None
    _closed: bool = field(default=False, repr=False)

    def run(self, stop: threading.Event) -> None:
        if self.plan.cert_check is not None:
            DailyCertCheck(self.plan.cert_check, output=self.cert_check_output).start(stop)
        self.bridge.run(stop)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.signer.close()


def prepare(plan: BridgePlan, cert_check_output: Path | None = None) -> PreparedBridge:
    """Everything that can fail before the first connect: the certificate, the
    trust anchors, the rules, the key (a wrong PIN fails here), the TLS context."""
    certificate = read_device_certificate(Path(plan.cert_path), plan.cert_path_key)
    anchors = load_trust_anchors(Path(plan.root_cert_path), f"{plan.cloud}.root_cert_path")
    rules = TopicRules.load(Path(plan.rules_path), device_id=certificate.device_id)
    signer = open_signer_from(plan.signer)
    try:
        check_matches_certificate(signer, certificate.leaf)
        tls = TlsClientContext(
            signer,
            certificate.pem,
            anchors,
            [a.encode() for a in plan.alpn] or None,
            min_version=plan.tls_min_version,
            cloud=plan.cloud,
        )
        local = Endpoint(
            "local", plan.local_host, plan.local_port, plan.local_client_id, connect_timeout=10.0
        )
        cloud = Endpoint(
            plan.cloud,
            plan.cloud_host,
            plan.cloud_port,
            plan.cloud_client_id,
            tls=tls,
            username=plan.cloud_username,
        )
        bridge = Bridge(
            local,
            cloud,
            rules,
            plan.health_topic,
            cloud_max_qos=plan.max_qos,
            cloud_retain=plan.forwards_retain,
            cloud_max_payload=plan.max_payload,
            status=_status_file(plan, certificate.device_id, signer.location, tls),
        )
    except BaseException:
        signer.close()
        raise
    log.info(
        "bridge for %s starting: device %s, key %s, cloud %s:%d",
        plan.title,
        certificate.device_id,
        signer.location,
        plan.cloud_host,
        plan.cloud_port,
    )
    return PreparedBridge(plan, bridge, signer, cert_check_output)


def _status_file(
    plan: BridgePlan, device_id: str, key_uri: str, tls: TlsClientContext
) -> StatusFile | None:
    """run.path/status-<cloud>.json, for `agent status` (none in a plan made without it)."""
    if plan.status_path is None:
        return None
    return StatusFile(
        Path(plan.status_path), plan.cloud, device_id, key_uri, lambda: tls.last_handshake.version
    )
