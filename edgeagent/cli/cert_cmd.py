"""`agent cert create|create-csr|show|renew`: certificates signed by the device key.

What each command does is :mod:`edgeagent.certs.commands` (and, for a renewal
with a new key, :mod:`edgeagent.hsm.keys`); they are imported inside the
functions that run a command, so building the parser stays light.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edgeagent.cli.args import (
    Subparsers,
    add_cloud,
    add_command,
    config_dir_from,
    default_cloud,
    note,
)
from edgeagent.cli.exit_codes import OK

if TYPE_CHECKING:
    from edgeagent.certs.commands import Written


def _cloud(args: argparse.Namespace) -> str:
    return str(args.cloud) if args.cloud else default_cloud()


def _print_written(what: str, written: Written) -> None:
    print(written.path)
    note(
        f"{what} for CN={written.common_name}, signed ({written.signature}) by "
        f"{written.key_location}"
    )


def _create(args: argparse.Namespace) -> int:
    from edgeagent.certs.commands import create_certificate

    written = create_certificate(
        config_dir_from(args),
        args.device_id,
        cloud=_cloud(args),
        days=args.days,
        rsa_pss=args.rsa_pss,
    )
    _print_written("self-signed certificate", written)
    note(f"next: register it with the cloud, then: agent connect {_cloud(args)}")
    return OK


def _create_csr(args: argparse.Namespace) -> int:
    from edgeagent.certs.commands import create_csr

    written = create_csr(
        config_dir_from(args),
        args.device_id,
        cloud=_cloud(args),
        output=args.output,
        rsa_pss=args.rsa_pss,
    )
    _print_written("certificate signing request", written)
    note(
        "next: have your CA sign it, install the certificate at device.cert_path, "
        f"then: agent connect {_cloud(args)}"
    )
    return OK


def _show(args: argparse.Namespace) -> int:
    from edgeagent.certs.commands import show
    from edgeagent.cli.exit_codes import exit_code_for
    from edgeagent.errors import CertificateKeyMismatch, CertificateNotValidNow

    report = show(config_dir_from(args), cloud=_cloud(args))
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


def _duration(text: str) -> datetime.timedelta:
    """``30d``, ``12h``, ``90m``, ``3600s`` (a bare number is days)."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    unit = text[-1:] if text[-1:] in units else "d"
    number = text[:-1] if text[-1:] in units else text
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number and d, h, m or s") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return datetime.timedelta(**{units[unit]: value})


def _by_est(args: argparse.Namespace, config_dir: Path, cloud: str) -> bool:
    """EST unless --csr, or a self-signed certificate without --est-url (today's renewal)."""
    if args.csr:
        return False
    if args.est_url:
        return True
    from edgeagent.config import load_config
    from edgeagent.signing.certificate import read_device_certificate

    identity = load_config(config_dir).identity(cloud)
    leaf = read_device_certificate(identity.cert_path, identity.cert_path_key).leaf
    return leaf.issuer != leaf.subject


def _renew(args: argparse.Namespace) -> int:
    config_dir = config_dir_from(args)
    cloud = _cloud(args)
    if args.if_expiring_within is not None:
        from edgeagent.clouds.cert_renewal import not_due

        later = not_due(config_dir, cloud, args.if_expiring_within)
        if later is not None:
            print(
                f"not renewed: the certificate is valid until {later.not_after:%Y-%m-%d %H:%M} "
                f"UTC; it will be renewed from {later.renew_from:%Y-%m-%d %H:%M} UTC"
            )
            return OK
    if _by_est(args, config_dir, cloud):
        return _renew_by_est(args, config_dir, cloud)
    return _renew_locally(args, config_dir, cloud)


def _renew_by_est(args: argparse.Namespace, config_dir: Path, cloud: str) -> int:
    from edgeagent.cli.pin_input import CliPins
    from edgeagent.clouds.cert_renewal import renew_by_est
    from edgeagent.config import load_config

    if args.output is not None:
        from edgeagent.errors import UsageError

        raise UsageError("--output is for --csr", "leave it out: EST renews device.cert_path")
    renewed = renew_by_est(
        config_dir,
        cloud,
        pins=CliPins(args, load_config(config_dir)),
        est_url=args.est_url,
        new_key=args.new_key,
        key_spec=args.type,
        key_label=args.label,
        keep_old_key=args.keep_old_key,
        notify=note,
    )
    print(renewed.path)
    note(
        f"renewed certificate for {renewed.subject}, valid until "
        f"{renewed.not_after:%Y-%m-%d %H:%M} UTC ({renewed.server}, {renewed.auth}); "
        f"tried with the cloud first ({renewed.trial_seconds * 1000:.0f} ms to CONNACK)"
    )
    if renewed.new_key_uri:
        note(f"{renewed.key_setting} switched to the new key: {renewed.new_key_uri}")
    if renewed.reconnected:
        note(f"the {cloud} bridge was reconnected with it")
    return OK


def _renew_locally(args: argparse.Namespace, config_dir: Path, cloud: str) -> int:
    from edgeagent.certs.commands import renew

    new_key_uri = None
    if args.new_key:
        from edgeagent.cli.pin_input import CliPins
        from edgeagent.config import load_config
        from edgeagent.hsm.keys import create_renewal_key

        pins = CliPins(args, load_config(config_dir))
        key = create_renewal_key(config_dir, cloud, pins, spec=args.type, label=args.label)
        note(f"created {key.entry.kind} key {key.entry.label!r}: {key.entry.uri}")
        new_key_uri = key.entry.uri
    outcome = renew(
        config_dir,
        cloud=cloud,
        new_key_uri=new_key_uri,
        output=args.output,
        days=args.days,
        rsa_pss=args.rsa_pss,
        csr=args.csr,
    )
    what = (
        "renewed self-signed certificate"
        if outcome.kind == "certificate"
        else "certificate signing request"
    )
    _print_written(what, outcome.written)
    if outcome.config_updated:
        note("device key URI switched to the new key")
    if outcome.suggestion:
        note(f"once the CA's certificate for the new key is installed: {outcome.suggestion}")
    return OK


ONE_TIME_PASSWORD_ENV = "EDGEAGENT_ONE_TIME_PASSWORD"  # noqa: S105 (a variable name)


def _one_time_password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated?): from --one-time-password-file (``-``: ask), the environment,
    else a new one."""
    import getpass
    import os
    import secrets
    import string
    import sys

    from edgeagent.cli.pin_input import read_pin

    file: Path | None = args.one_time_password_file
    if file is not None and str(file) == "-":
        if sys.stdin.isatty():
            password = getpass.getpass("one-time password: ")
        else:
            password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            from edgeagent.errors import MissingConfigValue

            raise MissingConfigValue("empty one-time password", "give the password on stdin")
        return password, False
    if file is not None or os.environ.get(ONE_TIME_PASSWORD_ENV):
        password = read_pin(
            "one-time password",
            file=file,
            file_option="--one-time-password-file",
            env_var=ONE_TIME_PASSWORD_ENV,
        )
        return password, False
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(24)), True


def _download(args: argparse.Namespace) -> int:
    from edgeagent.certs.enrol import download
    from edgeagent.cli.pin_input import CliPins
    from edgeagent.config import load_config
    from edgeagent.hsm.device_key import ensure_device_key

    config_dir = config_dir_from(args)
    cloud = _cloud(args)
    pins = CliPins(args, load_config(config_dir))
    made = ensure_device_key(config_dir, cloud, pins, notify=note)
    if made is not None:
        note(f"no device key yet: created {made.entry.kind} key {made.entry.label!r}")
        note(f"  {made.entry.uri}")
    password, generated = _one_time_password(args)
    if generated:
        # The one place the password is shown: the person registering the device needs it.
        print(f"register the device in {cloud} before {args.max_wait:.0f} s have passed:")
        if cloud == "c8y":
            print("  Cumulocity: Devices > Registration > Register device > General")
            print("  (certificate authority / one-time password)")
        print(f"  device id:          {args.device_id}")
        print(f"  one-time password:  {password}", flush=True)
    done = download(
        config_dir,
        cloud,
        args.device_id,
        password,
        est_url=args.est_url,
        force=args.force,
        retry_every=args.retry_every,
        max_wait=args.max_wait,
        notify=note,
    )
    if done.replaced:
        note(f"replaced the previous certificate: {done.replaced}")
    print(done.path)
    note(
        f"certificate for {done.subject} from {done.issuer}, valid until "
        f"{done.not_after:%Y-%m-%d %H:%M} UTC, for {done.key_location} "
        f"({done.server}, {done.attempts} request(s))"
    )
    note(f"next: agent connect {cloud}")
    return OK


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


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
        f"registered or --max-wait passes. The password may come from ${ONE_TIME_PASSWORD_ENV}; "
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
        "default: $" + ONE_TIME_PASSWORD_ENV + ", else a new one is generated and printed",
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
        type=_seconds,
        metavar="SECONDS",
        default=5.0,
        help="first wait while not registered, doubled up to 60 (default %(default)s)",
    )
    download.add_argument(
        "--max-wait",
        type=_seconds,
        metavar="SECONDS",
        default=600.0,
        help="give up when not registered after this long (default %(default)s)",
    )
    add_pin_file(download, "file holding the user PIN (creating the key)")
    _common(download, rsa=False)
    download.set_defaults(run=_download)

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
        type=_duration,
        metavar="DURATION",
        help="renew only when the certificate ends within DURATION (30d, 12h); else say when",
    )
    add_pin_file(renew, "file holding the user PIN (--new-key)")
    _common(renew)
    renew.set_defaults(run=_renew)
