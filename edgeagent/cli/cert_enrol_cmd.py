"""`agent cert download` and `agent cert renew`: the certificate from a CA, by EST.

Parsed in :mod:`edgeagent.cli.cert_cmd`; what they do is
:mod:`edgeagent.certs.enrol` and :mod:`edgeagent.clouds.cert_renewal`,
imported inside the functions that run a command so building the parser
stays light.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edgeagent.cli.args import config_dir_from, default_cloud, note
from edgeagent.cli.exit_codes import OK

if TYPE_CHECKING:
    from edgeagent.certs.commands import Written


def cloud_of(args: argparse.Namespace) -> str:
    """The cloud a cert command is for: the one named, else the first configured."""
    return str(args.cloud) if args.cloud else default_cloud()


def print_written(what: str, written: Written) -> None:
    print(written.path)
    note(
        f"{what} for CN={written.common_name}, signed ({written.signature}) "
        f"by {written.key_location}"
    )


def duration(text: str) -> datetime.timedelta:
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


def renew(args: argparse.Namespace) -> int:
    config_dir = config_dir_from(args)
    cloud = cloud_of(args)
    if args.if_expiring_within is not None:
        from edgeagent.clouds.cert_renewal import not_due

        later = not_due(config_dir, cloud, args.if_expiring_within)
        if later is not None:
            print(
                f"not renewed: the certificate is valid until {later.not_after:%Y-%m-%d %H:%M} "
                f"UTC; it will be renewed from {later.renew_from:%Y-%m-%d %H:%M} UTC"
            )
            return OK
    from edgeagent.clouds.cert_renewal import renews_by_est

    if renews_by_est(config_dir, cloud, est_url=args.est_url, csr=args.csr):
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
    print_written(what, outcome.written)
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
    from edgeagent.certs.enrol import new_one_time_password

    return new_one_time_password(), True


def download(args: argparse.Namespace) -> int:
    from edgeagent.certs.enrol import download as enrol
    from edgeagent.certs.enrol import registration_steps
    from edgeagent.cli.pin_input import CliPins
    from edgeagent.config import load_config
    from edgeagent.hsm.device_key import ensure_device_key

    config_dir = config_dir_from(args)
    cloud = cloud_of(args)
    pins = CliPins(args, load_config(config_dir))
    made = ensure_device_key(config_dir, cloud, pins, notify=note)
    if made is not None:
        note(f"no device key yet: created {made.entry.kind} key {made.entry.label!r}")
        note(f"  {made.entry.uri}")
    password, generated = _one_time_password(args)
    if generated:
        # The one place the password is shown: the person registering the device needs it.
        print(f"register the device in {cloud} before {args.max_wait:.0f} s have passed:")
        for line in registration_steps(cloud):
            print(f"  {line}")
        print(f"  device id:          {args.device_id}")
        print(f"  one-time password:  {password}", flush=True)
    done = enrol(
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


def seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value
