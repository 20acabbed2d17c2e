"""`agent cert create|create-csr|show|renew`: certificates signed by the device key."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgeagent.cli.exit_codes import OK
from edgeagent.cli.main import config_dir_from

if TYPE_CHECKING:
    from edgeagent.certs.commands import Written
    from edgeagent.pkcs11.admin import KeySpec


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def _print_written(what: str, written: Written) -> None:
    print(written.path)
    _note(
        f"{what} for CN={written.common_name}, signed ({written.signature}) by "
        f"{written.key_location}"
    )


def _create(args: argparse.Namespace) -> int:
    from edgeagent.certs.commands import create_certificate

    written = create_certificate(
        config_dir_from(args),
        args.device_id,
        cloud=args.cloud,
        days=args.days,
        rsa_pss=args.rsa_pss,
    )
    _print_written("self-signed certificate", written)
    _note("next: register it with the cloud, then: agent connect c8y")
    return OK


def _create_csr(args: argparse.Namespace) -> int:
    from edgeagent.certs.commands import create_csr

    written = create_csr(
        config_dir_from(args),
        args.device_id,
        cloud=args.cloud,
        output=args.output,
        rsa_pss=args.rsa_pss,
    )
    _print_written("certificate signing request", written)
    _note(
        "next: have your CA sign it, install the certificate at device.cert_path, "
        "then: agent connect c8y"
    )
    return OK


def _show(args: argparse.Namespace) -> int:
    from edgeagent.certs.commands import show
    from edgeagent.cli.exit_codes import exit_code_for
    from edgeagent.errors import CertificateKeyMismatch, CertificateNotValidNow

    report = show(config_dir_from(args), cloud=args.cloud)
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
    matches = {True: "yes", False: "NO", None: "unknown (key not opened)"}[report.key_matches]
    print(f"key matches: {matches}")
    if report.key_matches is False:
        return exit_code_for(CertificateKeyMismatch("x"))
    if not report.valid_now:
        return exit_code_for(CertificateNotValidNow("x"))
    return OK


def _renew(args: argparse.Namespace) -> int:
    from edgeagent.certs.commands import renew

    config_dir = config_dir_from(args)
    new_key_uri = _new_key(args) if args.new_key else None
    outcome = renew(
        config_dir,
        cloud=args.cloud,
        new_key_uri=new_key_uri,
        output=args.output,
        days=args.days,
        rsa_pss=args.rsa_pss,
    )
    what = (
        "renewed self-signed certificate"
        if outcome.kind == "certificate"
        else ("certificate signing request")
    )
    _print_written(what, outcome.written)
    if outcome.config_updated:
        _note("device key URI switched to the new key")
    if outcome.suggestion:
        _note(f"once the CA's certificate for the new key is installed: {outcome.suggestion}")
    return OK


def _new_key(args: argparse.Namespace) -> str:
    """create-key --force-new with a fresh label, of the current key's type unless --type."""
    from edgeagent.cli.hsm_cmd import _admin
    from edgeagent.config import load_config
    from edgeagent.hsm.commands import KeyRequest, create_key

    config = load_config(config_dir_from(args))
    spec: KeySpec = args.type or _current_spec(config_dir_from(args), args.cloud)
    label = args.label or f"device-key-{datetime.datetime.now(datetime.UTC):%Y%m%d%H%M%S}"
    with _admin(args, config) as admin:
        from edgeagent.pkcs11.uri import Pkcs11Uri

        identity = config.identity(args.cloud)
        token_uri = None
        if identity.key_uri:
            token_uri = Pkcs11Uri.parse(identity.key_uri).token_part()
        outcome = create_key(
            config_dir_from(args),
            admin,
            KeyRequest(
                spec=spec, label=label, token_uri=token_uri, force_new=True, write_config=False
            ),
        )
    _note(f"created {outcome.created.entry.kind} key {label!r}: {outcome.created.entry.uri}")
    return outcome.created.entry.uri


def _current_spec(config_dir: Path, cloud: str) -> KeySpec:
    from cryptography.hazmat.primitives.asymmetric import ec

    from edgeagent.certs.commands import _cert_key, _cert_path
    from edgeagent.config import load_config
    from edgeagent.signing.certificate import read_device_certificate

    config = load_config(config_dir)
    public = read_device_certificate(_cert_path(config, cloud), _cert_key(config, cloud)).leaf
    key = public.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec-p384" if key.curve.name == "secp384r1" else "ec-p256"
    size = getattr(key, "key_size", 2048)
    return "rsa-4096" if size >= 4096 else "rsa-3072" if size >= 3072 else "rsa-2048"


def _common(parser: argparse.ArgumentParser, *, rsa: bool = True) -> None:
    parser.add_argument(
        "--cloud", choices=("c8y",), default="c8y", help="whose device.* settings (default c8y)"
    )
    if rsa:
        parser.add_argument(
            "--rsa-pss",
            action="store_true",
            help="RSA keys: sign with RSASSA-PSS (default PKCS#1 v1.5, sha256WithRSAEncryption)",
        )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from edgeagent.pkcs11.keyspecs import KEY_SPECS

    cert = sub.add_parser(
        "cert",
        help="device certificates and CSRs signed by the device key",
        description="Certificates and CSRs signed by the device key where it lives (token, "
        "signing service or file). The signatureAlgorithm always matches the signature.",
    )
    actions = cert.add_subparsers(dest="cert_command", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create", help="a self-signed certificate at device.cert_path (first registration)"
    )
    create.add_argument("--device-id", required=True, help="the device id: becomes the CN")
    create.add_argument("--days", type=int, default=365, help="validity (default %(default)s)")
    _common(create)
    create.set_defaults(run=_create)

    csr = actions.add_parser("create-csr", help="a CSR for a CA to sign (CN = device id)")
    csr.add_argument("--device-id", help="default: the current certificate's CN")
    csr.add_argument("--output", type=Path, help="default: device.cert_path with .csr")
    _common(csr)
    csr.set_defaults(run=_create_csr)

    show = actions.add_parser("show", help="the certificate, its key, and whether they match")
    _common(show, rsa=False)
    show.set_defaults(run=_show)

    renew = actions.add_parser(
        "renew",
        help="re-issue a self-signed certificate, or make a CSR for a CA-issued one",
    )
    renew.add_argument("--new-key", action="store_true", help="with a new key (create-key)")
    renew.add_argument("--type", choices=KEY_SPECS, help="new key's type (default: as now)")
    renew.add_argument("--label", help="new key's label (default: device-key-<timestamp>)")
    renew.add_argument("--output", type=Path, help="where to write (default: as create/csr)")
    renew.add_argument("--days", type=int, default=365, help="self-signed validity")
    renew.add_argument("--pin-file", type=Path, metavar="FILE", help="user PIN (--new-key)")
    _common(renew)
    renew.set_defaults(run=_renew)
