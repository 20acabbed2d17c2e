"""`agent cert create|create-csr|show|download|renew`: certificates signed by the device key.

`download` and `renew` (enrolment, EST) are parsed here and run in
:mod:`edgeagent.cli.cert_enrol_cmd`.

What each command does is :mod:`edgeagent.certs.commands` (and, for a renewal
with a new key, :mod:`edgeagent.hsm.keys`); they are imported inside the
functions that run a command, so building the parser stays light.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from edgeagent.cli import cert_enrol_cmd
from edgeagent.cli.args import (
    Subparsers,
    add_cloud,
    add_command,
    config_dir_from,
    note,
)
from edgeagent.cli.cert_enrol_cmd import cloud_of, print_written
from edgeagent.cli.exit_codes import OK


def _create(args: argparse.Namespace) -> int:
    from edgeagent.certs.commands import create_certificate

    written = create_certificate(
        config_dir_from(args),
        args.device_id,
        cloud=cloud_of(args),
        days=args.days,
        rsa_pss=args.rsa_pss,
    )
    print_written("self-signed certificate", written)
    note(f"next: register it with the cloud, then: agent connect {cloud_of(args)}")
    return OK


def _create_csr(args: argparse.Namespace) -> int:
    from edgeagent.certs.commands import create_csr

    written = create_csr(
        config_dir_from(args),
        args.device_id,
        cloud=cloud_of(args),
        output=args.output,
        rsa_pss=args.rsa_pss,
        force=args.force,
    )
    print_written("certificate signing request", written)
    note(
        "next: have your CA sign it, install the certificate at device.cert_path, "
        f"then: agent connect {cloud_of(args)}"
    )
    return OK


def _show(args: argparse.Namespace) -> int:
    from edgeagent.certs.commands import show
    from edgeagent.cli.exit_codes import exit_code_for
    from edgeagent.errors import CertificateKeyMismatch, CertificateNotValidNow

    report = show(config_dir_from(args), cloud=cloud_of(args))
    now = datetime.datetime.now(datetime.UTC)
    left = (report.not_after - now).days
    validity = f"{report.not_before:%Y-%m-%d %H:%M:%S} to {report.not_after:%Y-%m-%d %H:%M:%S} UTC"
    state = f"valid, {left} days left" if report.valid_now else "NOT valid now"
    print(f"certificate: {report.path}")
    print(f"subject:     {report.subject}")
    print(f"issuer:      {report.issuer}{' (self-signed)' if report.self_signed else ''}")
    print(f"serial:      {report.serial}")
    print(f"validity:    {validity} ({state})")
    print(f"signature:   {report.signature}")
    print(f"key:         {report.key_location or report.key_problem}")
    print(f"key origin:  {report.key_origin}")
    matches = {True: "yes", False: "NO", None: "unknown (key not opened)"}[report.key_matches]
    print(f"key matches: {matches}")
    if report.key_matches is False:
        return exit_code_for(CertificateKeyMismatch("x"))
    if not report.valid_now:
        return exit_code_for(CertificateNotValidNow("x"))
    return OK


def _common(parser: argparse.ArgumentParser, *, rsa: bool = True) -> None:
    add_cloud(parser, optional="whose device.* settings; default: the first of them")
    if rsa:
        parser.add_argument(
            "--rsa-pss",
            action="store_true",
            help="RSA keys: sign with RSASSA-PSS (default PKCS#1 v1.5, sha256WithRSAEncryption)",
        )


def register(sub: Subparsers) -> None:
    from edgeagent.cli.pin_input import add_pin_file
    from edgeagent.pkcs11.keyspecs import KEY_SPECS

    cert = add_command(
        sub,
        "cert",
        "device certificates and CSRs signed by the device key",
        example="agent cert show",
        description="Certificates and CSRs signed by the device key where it lives (token, "
        "signing service or file). The signatureAlgorithm always matches the signature.",
    )
    actions = cert.add_subparsers(dest="cert_command", metavar="ACTION", required=True)

    create = add_command(
        actions,
        "create",
        "make a self-signed certificate at device.cert_path (first registration)",
        example="agent cert create --device-id device-042",
    )
    create.add_argument(
        "--device-id", metavar="ID", required=True, help="the device id: becomes the CN"
    )
    create.add_argument(
        "--days", type=int, metavar="DAYS", default=365, help="validity (default %(default)s)"
    )
    _common(create)
    create.set_defaults(run=_create)

    csr = add_command(
        actions,
        "create-csr",
        "make a CSR for a CA to sign (CN = device id)",
        example="agent cert create-csr --device-id device-042 --output device.csr",
    )
    csr.add_argument("--device-id", metavar="ID", help="default: the current certificate's CN")
    csr.add_argument(
        "--output", type=Path, metavar="FILE", help="default: device.cert_path with .csr"
    )
    csr.add_argument(
        "--force", action="store_true", help="replace an existing CSR file (refused without it)"
    )
    _common(csr)
    csr.set_defaults(run=_create_csr)

    show = add_command(
        actions,
        "show",
        "show the certificate, its key, and whether they match",
        example="agent cert show c8y",
    )
    _common(show, rsa=False)
    show.set_defaults(run=_show)

    download = add_command(
        actions,
        "download",
        "enrol: get the device certificate from the cloud's EST service (key made if none)",
        example="agent cert download c8y --device-id device-042\n"
        "agent cert download c8y --device-id device-042 --one-time-password-file otp.txt",
        description="Enrol the device: make sure the device key exists on the token (made as "
        "`agent hsm create-key` does when there is none), send a CSR signed by it (CN = the "
        "device id) to the EST service (RFC 7030 simpleenroll; Cumulocity: c8y.http) with "
        "HTTP Basic device id : one-time password, and install the certificate at "
        "device.cert_path. Without a password, one is generated and printed with the "
        "registration step; the command then asks again, backing off, until the device is "
        "registered or --max-wait passes. The password may come from "
        f"${cert_enrol_cmd.ONE_TIME_PASSWORD_ENV}; "
        "it is never logged. A working certificate is replaced only with --force.",
    )
    download.add_argument(
        "--device-id", metavar="ID", required=True, help="the device id: becomes the CN"
    )
    download.add_argument(
        "--one-time-password-file",
        type=Path,
        metavar="FILE",
        help="file holding the one-time password ('-': ask, or read stdin); "
        "default: $"
        + cert_enrol_cmd.ONE_TIME_PASSWORD_ENV
        + ", else a new one is generated and printed",
    )
    download.add_argument(
        "--est-url",
        metavar="URL",
        help="another RFC 7030 EST server, https://host[:port][/.well-known/est]",
    )
    download.add_argument(
        "--force", action="store_true", help="replace a working certificate at device.cert_path"
    )
    download.add_argument(
        "--retry-every",
        type=cert_enrol_cmd.seconds,
        metavar="SECONDS",
        default=5.0,
        help="first wait while not registered, doubled up to 60 (default %(default)s)",
    )
    download.add_argument(
        "--max-wait",
        type=cert_enrol_cmd.seconds,
        metavar="SECONDS",
        default=600.0,
        help="give up when not registered after this long (default %(default)s)",
    )
    add_pin_file(download, "file holding the user PIN (creating the key)")
    _common(download, rsa=False)
    download.set_defaults(run=cert_enrol_cmd.download)

    renew = add_command(
        actions,
        "renew",
        "renew the certificate: by EST (tried with the cloud first), self-signed, or a CSR",
        example="agent cert renew c8y\n"
        "agent cert renew c8y --new-key --if-expiring-within 30d\n"
        "agent cert renew c8y --est-url https://est.example.com/.well-known/est",
        description="A CA-issued certificate is renewed by EST (RFC 7030 simplereenroll): "
        "Cumulocity's, authenticated by a token fetched through the running bridge, or any "
        "EST server (--est-url), authenticated by the current certificate (TLS client "
        "authentication, the token signs). The new certificate (and key, --new-key) is tried "
        "with the cloud (TLS + CONNACK) before device.cert_path and the key URI are switched "
        "and the bridge reconnected; on any failure the old ones stay. A self-signed "
        "certificate is re-issued in place, as before; --csr writes a CSR for a CA instead.",
    )
    renew.add_argument("--new-key", action="store_true", help="with a new key (create-key)")
    renew.add_argument("--type", choices=KEY_SPECS, help="new key's type (default: as now)")
    renew.add_argument(
        "--label", metavar="LABEL", help="new key's label (default: device-key-<timestamp>)"
    )
    renew.add_argument(
        "--output", type=Path, metavar="FILE", help="where to write (default: as create/csr)"
    )
    renew.add_argument("--days", type=int, metavar="DAYS", default=365, help="self-signed validity")
    renew.add_argument(
        "--csr", action="store_true", help="write a CSR for a CA to sign (no EST, nothing switched)"
    )
    renew.add_argument(
        "--est-url",
        metavar="URL",
        help="an RFC 7030 EST server, https://host[:port][/.well-known/est]; "
        "authenticated by the current certificate",
    )
    renew.add_argument(
        "--keep-old-key",
        action="store_true",
        help="with --new-key: keep the old key on the token (default: deleted once the new one "
        "connected)",
    )
    renew.add_argument(
        "--if-expiring-within",
        type=cert_enrol_cmd.duration,
        metavar="DURATION",
        help="renew only when the certificate ends within DURATION (30d, 12h); else say when",
    )
    add_pin_file(renew, "file holding the user PIN (--new-key)")
    _common(renew)
    renew.set_defaults(run=cert_enrol_cmd.renew)
