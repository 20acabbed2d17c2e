"""`agent hsm init|list-tokens|list-keys|create-key|delete-key|change-pin`.

Results (URIs, listings) go to stdout, guidance to stderr, so
``agent hsm create-key > uri.txt`` captures just the URI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgeagent.cli.exit_codes import OK
from edgeagent.cli.main import config_dir_from

if TYPE_CHECKING:
    from edgeagent.config import AgentConfig
    from edgeagent.hsm.backend import TokenAdmin
    from edgeagent.pkcs11.admin import KeyListing
    from edgeagent.pkcs11.uri import Pkcs11Uri

SO_PIN_ENV = "AGENT_HSM_SO_PIN"
NEW_PIN_ENV = "AGENT_HSM_NEW_PIN"
DEFAULT_TOKEN_LABEL = "device"  # noqa: S105 (a label, not a secret)


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def _hex_id(text: str) -> bytes:
    try:
        return bytes.fromhex(text.replace(":", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hexadecimal, e.g. 01ab") from None


def _uri(text: str | None) -> Pkcs11Uri | None:
    from edgeagent.pkcs11.uri import Pkcs11Uri

    return Pkcs11Uri.parse(text) if text else None


def _config(args: argparse.Namespace) -> AgentConfig:
    from edgeagent.config import load_config

    return load_config(config_dir_from(args))


def _user_pin(args: argparse.Namespace, config: AgentConfig, *, confirm: bool = False) -> str:
    from edgeagent.cli.pin_input import read_pin

    pin = config.device.cryptoki.pin
    return read_pin(
        "user PIN",
        file=args.pin_file,
        file_option="--pin-file",
        configured=pin.get_secret_value() if pin is not None else None,
        confirm=confirm,
    )


def _so_pin(args: argparse.Namespace) -> str:
    from edgeagent.cli.pin_input import read_pin

    return read_pin(
        "SO PIN", file=args.so_pin_file, file_option="--so-pin-file", env_var=SO_PIN_ENV
    )


def _admin(args: argparse.Namespace, config: AgentConfig) -> TokenAdmin:
    from edgeagent.hsm.backend import open_token_admin

    if config.device.cryptoki.mode == "socket":
        return open_token_admin(config, None)  # the service logs in with its own PIN
    return open_token_admin(config, _user_pin(args, config))


# -- commands ---------------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    from edgeagent.hsm.commands import init_token

    config = _config(args)
    from edgeagent.hsm.commands import require_module_mode

    require_module_mode(config, "init")
    so_pin = _so_pin(args)
    user_pin = _user_pin(args, config, confirm=True)
    outcome = init_token(
        config_dir_from(args),
        args.label,
        so_pin,
        user_pin,
        slot_id=args.slot,
        reinit=args.reinit,
    )
    token = outcome.result.token
    print(token.uri)
    if outcome.result.created:
        _note(f"initialised token {token.label!r} in slot {token.slot_id}")
    else:
        _note(f"token {token.label!r} (slot {token.slot_id}) is initialised already; unchanged")
    if outcome.pin_stored:
        _note("stored its user PIN as device.cryptoki.pin")
    _note(f'next: agent hsm create-key --token-uri "{token.uri}"')
    return OK


def _list_tokens(args: argparse.Namespace) -> int:
    config = _config(args)
    from edgeagent.hsm.backend import open_token_admin

    with open_token_admin(config, None) as admin:  # no login needed to list tokens
        slots = admin.list_tokens()
    for slot in slots:
        made = f"{slot.manufacturer} {slot.model}".strip()
        if not slot.initialized:
            print(f"slot {slot.slot_id}: not initialised ({made})")
            continue
        login = ", login required" if slot.login_required else ""
        print(f"slot {slot.slot_id}: token {slot.label!r} ({made}, serial {slot.serial}){login}")
        print(f"    {slot.uri}")
    if not slots:
        _note(f"no token in {admin.location}")
    return OK


def _print_key(key: KeyListing) -> None:
    print(f"token {key.token!r}: key {key.label!r}, id {key.id.hex() or '-'}, {key.kind}")
    print(f"    {key.uri}")


def _list_keys(args: argparse.Namespace) -> int:
    from edgeagent.hsm.commands import key_filter

    config = _config(args)
    with _admin(args, config) as admin:
        keys = admin.list_keys(key_filter(_uri(args.uri), args.label, args.id))
    for key in keys:
        _print_key(key)
    if not keys:
        _note("no private key matches")
    else:
        _note('paste a URI into: agent config set device.key_uri "<URI>"')
    return OK


def _create_key(args: argparse.Namespace) -> int:
    from edgeagent.hsm.commands import InitOutcome, KeyRequest, create_key, init_token

    config = _config(args)
    config_dir = config_dir_from(args)
    admin = _admin(args, config)
    auto_init = None
    if config.device.cryptoki.mode != "socket":

        def auto_init() -> InitOutcome:
            _note(f"no token yet: initialising one labelled {args.token_label!r}")
            return init_token(config_dir, args.token_label, _so_pin(args), _user_pin(args, config))

    request = KeyRequest(
        spec=args.type,
        label=args.label,
        key_id=args.id,
        token_uri=_uri(args.token_uri),
        force_new=args.force_new,
        cloud=args.cloud,
        public_key_path=args.public_key,
    )
    with admin:
        outcome = create_key(config_dir, admin, request, auto_init)
    key = outcome.created.entry
    print(key.uri)
    verb = "reusing the existing" if outcome.created.reused else "created"
    _note(f"{verb} {key.kind} key {key.label!r} (id {key.id.hex()}) on token {key.token!r}")
    if outcome.note:
        _note(outcome.note)
    if outcome.wrote:
        _note(f"set {outcome.config_key}")
    elif outcome.suggestion:
        _note(f"to use the new key: {outcome.suggestion}")
    if args.public_key:
        _note(f"public key written to {args.public_key}")
    _note("next: agent cert create-csr --device-id <id>  (or: agent cert create --device-id <id>)")
    return OK


def _delete_key(args: argparse.Namespace) -> int:
    from edgeagent.cli.pin_input import ask_yes
    from edgeagent.hsm.commands import delete_key

    config = _config(args)
    admin = _admin(args, config)

    def confirm(keys: list[KeyListing]) -> bool:
        for key in keys:
            _note(f"about to delete {key.kind} key {key.label!r}: {key.uri}")
        return ask_yes("Delete it? This cannot be undone.")

    ask = confirm if sys.stdin.isatty() and not args.yes else None
    with admin:
        deleted = delete_key(
            config_dir_from(args),
            admin,
            _uri(args.token_uri),
            args.label,
            args.id,
            force=args.force,
            confirm=ask,
        )
    if deleted is None:
        _note("nothing deleted")
        return 1
    for line in deleted:
        print(f"deleted {line}")
    return OK


def _change_pin(args: argparse.Namespace) -> int:
    from edgeagent.cli.pin_input import read_pin
    from edgeagent.hsm.commands import change_pin, require_module_mode

    config = _config(args)
    require_module_mode(config, "change-pin")
    so_pin = _so_pin(args) if args.so_pin_file or args.reset else None
    old_pin = None if so_pin is not None else _user_pin(args, config)
    new_pin = read_pin(
        "new user PIN",
        file=args.new_pin_file,
        file_option="--new-pin-file",
        env_var=NEW_PIN_ENV,
        confirm=True,
    )
    outcome = change_pin(
        config_dir_from(args), _uri(args.token_uri), new_pin, old_pin=old_pin, so_pin=so_pin
    )
    how = "reset with the SO PIN" if so_pin is not None else "changed"
    print(f"user PIN of token {outcome.token!r} {how}")
    if outcome.config_updated:
        _note("device.cryptoki.pin updated")
    if outcome.note:
        _note(outcome.note)
    return OK


# -- parser -----------------------------------------------------------------------------------


def _pin_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pin-file",
        type=Path,
        metavar="FILE",
        help="file holding the user PIN (default: device.cryptoki.pin, "
        "AGENT_DEVICE_CRYPTOKI_PIN, else a prompt on a terminal)",
    )


def _so_pin_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--so-pin-file",
        type=Path,
        metavar="FILE",
        help=f"file holding the security officer PIN (or {SO_PIN_ENV}; else a prompt)",
    )


def _token_uri(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token-uri",
        metavar="URI",
        help="the token, as `agent hsm list-tokens` prints it (default: the only token)",
    )


def _key_names(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label", help="the key's label (CKA_LABEL)")
    parser.add_argument("--id", type=_hex_id, metavar="HEX", help="the key's id (CKA_ID), in hex")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from edgeagent.pkcs11.keyspecs import DEFAULT_KEY_LABEL, DEFAULT_KEY_SPEC, KEY_SPECS

    hsm = sub.add_parser(
        "hsm",
        help="manage the token: initialise it, create and delete keys, change the PIN",
        description="Manage the PKCS#11 token the device key lives on. In socket mode "
        "(device.cryptoki.mode socket) list-tokens, list-keys, create-key and delete-key "
        "go through the signing service; init and change-pin need module mode.",
    )
    actions = hsm.add_subparsers(dest="hsm_command", metavar="ACTION", required=True)

    init = actions.add_parser(
        "init",
        help="initialise a token in a free slot (idempotent)",
        description="Initialise a token (C_InitToken + C_InitPIN) in the first free slot. "
        "Nothing is done when a usable token with the label exists; a token that holds "
        "keys or that a key URI names is never re-initialised. TPM (tpm2-pkcs11): use "
        "`tpm2_ptool addtoken` instead.",
    )
    init.add_argument("--label", required=True, help="the token's label (1-32 bytes)")
    init.add_argument("--slot", type=int, help="initialise the token in this slot")
    init.add_argument(
        "--reinit",
        action="store_true",
        help="re-initialise (erase) an existing token with this label or in --slot; "
        "refused while it is in use",
    )
    _pin_file(init)
    _so_pin_file(init)
    init.set_defaults(run=_init)

    tokens = actions.add_parser("list-tokens", help="slots and tokens, with their URIs")
    tokens.set_defaults(run=_list_tokens)

    keys = actions.add_parser(
        "list-keys", help="private keys, with the URI to paste into device.key_uri"
    )
    keys.add_argument("--uri", metavar="URI", help="only keys (or the token) this URI names")
    _key_names(keys)
    _pin_file(keys)
    keys.set_defaults(run=_list_keys)

    create = actions.add_parser(
        "create-key",
        help="generate a key pair inside the token and point device.key_uri at it",
        description="Generate a key pair inside the token (private key sensitive, never "
        "extractable). A key with the same label is reused unless --force-new. The URI "
        "is written to device.key_uri (or <cloud>.device.key_uri) unless that names "
        "another existing key. With no token at all (module mode) one is initialised.",
    )
    create.add_argument("--type", choices=KEY_SPECS, default=DEFAULT_KEY_SPEC)
    create.add_argument("--label", default=DEFAULT_KEY_LABEL, help="default: %(default)s")
    create.add_argument("--id", type=_hex_id, metavar="HEX", help="default: 8 random bytes")
    create.add_argument("--force-new", action="store_true", help="never reuse an existing key")
    create.add_argument("--cloud", choices=("c8y",), help="write <cloud>.device.key_uri")
    create.add_argument("--public-key", type=Path, metavar="FILE", help="write it here (PEM)")
    create.add_argument(
        "--token-label",
        default=DEFAULT_TOKEN_LABEL,
        help="label of the token initialised when there is none (default: %(default)s)",
    )
    _token_uri(create)
    _pin_file(create)
    _so_pin_file(create)
    create.set_defaults(run=_create_key)

    delete = actions.add_parser(
        "delete-key", help="delete a key pair (and its certificate objects)"
    )
    _key_names(delete)
    _token_uri(delete)
    delete.add_argument("--force", action="store_true", help="even if a key URI names it")
    delete.add_argument("--yes", action="store_true", help="do not ask on a terminal")
    _pin_file(delete)
    delete.set_defaults(run=_delete_key)

    change = actions.add_parser(
        "change-pin",
        help="change the user PIN (or reset it with the SO PIN); updates device.cryptoki.pin",
    )
    _token_uri(change)
    _pin_file(change)
    _so_pin_file(change)
    change.add_argument(
        "--reset", action="store_true", help="reset with the SO PIN instead of the current PIN"
    )
    change.add_argument(
        "--new-pin-file",
        type=Path,
        metavar="FILE",
        help=f"file holding the new PIN (or {NEW_PIN_ENV}; else a prompt)",
    )
    change.set_defaults(run=_change_pin)
