"""`agent hsm init|list-tokens|list-keys|create-key|delete-key|change-pin`.

Results (URIs, listings) go to stdout, guidance to stderr, so
``agent hsm create-key > uri.txt`` captures just the URI. What each command
does (which PIN, which mode, what the configuration gets) is
:mod:`edgeagent.hsm` (policy.py, keys.py, token_setup.py). That and the
configuration layer are imported inside the functions that run a command:
every `agent` invocation builds this parser, and `agent config get` must not
pay for pydantic or python-pkcs11.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgeagent.cli.args import (
    Subparsers,
    add_cloud,
    add_command,
    add_renamed,
    config_dir_from,
    note,
    require,
)
from edgeagent.cli.exit_codes import OK
from edgeagent.cli.pin_input import (
    CliPins,
    add_new_pin_file,
    add_pin_file,
    add_so_pin_file,
    naming_the_pin,
)

if TYPE_CHECKING:
    from edgeagent.config import AgentConfig
    from edgeagent.pkcs11.admin import KeyListing
    from edgeagent.pkcs11.uri import Pkcs11Uri


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


# -- commands ---------------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    from edgeagent.hsm.token_setup import init

    require(args, "token_label", "--token-label")
    config = _config(args)
    outcome = init(
        config_dir_from(args),
        args.token_label,
        CliPins(args, config),
        slot_id=args.slot,
        reinit=args.force,
    )
    token = outcome.result.token
    print(token.uri)
    if outcome.result.created:
        note(f"initialised token {token.label!r} in slot {token.slot_id}")
    else:
        note(f"token {token.label!r} (slot {token.slot_id}) is initialised already; unchanged")
    if outcome.pin_stored:
        note("stored its user PIN as device.cryptoki.pin")
    note(f'next: agent hsm create-key --token-uri "{token.uri}"')
    return OK


def _list_tokens(args: argparse.Namespace) -> int:
    from edgeagent.hsm.backend import open_token_admin

    with open_token_admin(_config(args), None) as admin:  # no login needed to list tokens
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
        note(f"no token in {admin.location}")
    return OK


def _print_key(key: KeyListing) -> None:
    print(f"token {key.token!r}: key {key.label!r}, id {key.id.hex() or '-'}, {key.kind}")
    print(f"    {key.uri}")


def _list_keys(args: argparse.Namespace) -> int:
    from edgeagent.hsm.keys import key_filter
    from edgeagent.hsm.policy import open_admin

    config = _config(args)
    with open_admin(config, CliPins(args, config)) as admin:
        keys = admin.list_keys(key_filter(_uri(args.token_uri), args.label, args.id))
    for key in keys:
        _print_key(key)
    if not keys:
        note("no private key matches")
    else:
        note('paste a URI into: agent config set device.key_uri "<URI>"')
    return OK


def _create_key(args: argparse.Namespace) -> int:
    from edgeagent.hsm.keys import KeyRequest, create_key
    from edgeagent.hsm.policy import open_admin

    config = _config(args)
    pins = CliPins(args, config)
    request = KeyRequest(
        spec=args.type,
        label=args.label,
        key_id=args.id,
        token_uri=_uri(args.token_uri),
        force_new=args.new_key,
        cloud=args.cloud,
        public_key_path=args.public_key,
        token_label=args.token_label,
    )
    with open_admin(config, pins) as admin:
        outcome = create_key(config_dir_from(args), admin, request, pins, note)
    key = outcome.created.entry
    print(key.uri)
    verb = "reusing the existing" if outcome.created.reused else "created"
    note(f"{verb} {key.kind} key {key.label!r} (id {key.id.hex()}) on token {key.token!r}")
    if outcome.note:
        note(outcome.note)
    if outcome.wrote:
        note(f"set {outcome.config_key}")
    elif outcome.suggestion:
        note(f"to use the new key: {outcome.suggestion}")
    if args.public_key:
        note(f"public key written to {args.public_key}")
    note("next: agent cert create-csr --device-id <id>  (or: agent cert create --device-id <id>)")
    return OK


def _delete_key(args: argparse.Namespace) -> int:
    from edgeagent.cli.pin_input import ask_yes
    from edgeagent.hsm.keys import delete_key
    from edgeagent.hsm.policy import open_admin

    config = _config(args)

    def confirm(keys: list[KeyListing]) -> bool:
        for key in keys:
            note(f"about to delete {key.kind} key {key.label!r}: {key.uri}")
        return ask_yes("Delete it? This cannot be undone.")

    ask = confirm if sys.stdin.isatty() and not args.yes else None
    with open_admin(config, CliPins(args, config)) as admin:
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
        note("nothing deleted")
        return 1
    for line in deleted:
        print(f"deleted {line}")
    return OK


def _change_pin(args: argparse.Namespace) -> int:
    from edgeagent.hsm.token_setup import change_user_pin

    config = _config(args)
    reset = args.reset or args.so_pin_file is not None  # an SO PIN given means a reset
    outcome = change_user_pin(
        config_dir_from(args), _uri(args.token_uri), CliPins(args, config), reset=reset
    )
    how = "reset with the SO PIN" if reset else "changed"
    print(f"user PIN of token {outcome.token!r} {how}")
    if outcome.config_updated:
        note("device.cryptoki.pin updated")
    if outcome.note:
        note(outcome.note)
    return OK


# -- parser -----------------------------------------------------------------------------------


def _token_uri(parser: argparse.ArgumentParser, text: str = "") -> None:
    parser.add_argument(
        "--token-uri",
        metavar="URI",
        help=text or "the token, as `agent hsm list-tokens` prints it (default: the only token)",
    )


def _key_names(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label", metavar="LABEL", help="the key's label (CKA_LABEL)")
    parser.add_argument("--id", type=_hex_id, metavar="HEX", help="the key's id (CKA_ID), in hex")


def _force(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--force", action="store_true", help=text)


def register(sub: Subparsers) -> None:
    hsm = add_command(
        sub,
        "hsm",
        "manage the token: initialise it, create and delete keys, change the PIN",
        example="agent hsm list-keys",
        description="Manage the PKCS#11 token the device key lives on. In socket mode "
        "(device.cryptoki.mode socket) list-tokens, list-keys, create-key and delete-key "
        "go through the signing service; init and change-pin need module mode.",
    )
    actions = hsm.add_subparsers(dest="hsm_command", metavar="ACTION", required=True)
    _register_init(actions)

    tokens = add_command(
        actions,
        "list-tokens",
        "list slots and tokens, with their URIs",
        example="agent hsm list-tokens",
    )
    tokens.set_defaults(run=_list_tokens)

    keys = add_command(
        actions,
        "list-keys",
        "list private keys, with the URI to paste into device.key_uri",
        example='agent hsm list-keys --token-uri "pkcs11:token=my-token"',
    )
    _token_uri(keys, "only keys on this token (or that this URI names)")
    add_renamed(keys, "--uri", "--token-uri")
    _key_names(keys)
    add_pin_file(keys)
    keys.set_defaults(run=naming_the_pin(_list_keys))

    _register_create_key(actions)

    delete = add_command(
        actions,
        "delete-key",
        "delete a key pair (and its certificate objects)",
        example="agent hsm delete-key --label spare",
    )
    _key_names(delete)
    _token_uri(delete)
    _force(delete, "delete it even if a key URI names it")
    delete.add_argument("--yes", action="store_true", help="do not ask on a terminal")
    add_pin_file(delete)
    delete.set_defaults(run=naming_the_pin(_delete_key))

    change = add_command(
        actions,
        "change-pin",
        "change the user PIN (or reset it with the SO PIN); updates device.cryptoki.pin",
        example="agent hsm change-pin --new-pin-file new.pin\n"
        "agent hsm change-pin --reset --so-pin-file so.pin --new-pin-file new.pin",
    )
    _token_uri(change)
    add_pin_file(change)
    add_so_pin_file(change)
    change.add_argument(
        "--reset", action="store_true", help="reset with the SO PIN instead of the current PIN"
    )
    add_new_pin_file(change)
    change.set_defaults(run=naming_the_pin(_change_pin))


def _register_init(actions: Subparsers) -> None:
    init = add_command(
        actions,
        "init",
        "initialise a token in a free slot (idempotent)",
        example="agent hsm init --token-label my-token --so-pin-file so.pin --pin-file user.pin",
        description="Initialise a token (C_InitToken + C_InitPIN) in the first free slot. "
        "Nothing is done when a usable token with the label exists; a token that holds "
        "keys or that a key URI names is never re-initialised. TPM (tpm2-pkcs11): use "
        "`tpm2_ptool addtoken` instead.",
    )
    init.add_argument(
        "--token-label", metavar="LABEL", help="the token's label (1-32 bytes); required"
    )
    add_renamed(init, "--label", "--token-label")
    init.add_argument("--slot", type=int, metavar="SLOT", help="initialise the token in this slot")
    _force(
        init,
        "re-initialise (erase) an existing token with this label or in --slot; "
        "refused while it is in use",
    )
    add_renamed(init, "--reinit", "--force", flag=True)
    add_pin_file(init)
    add_so_pin_file(init)
    init.set_defaults(run=_init)


def _register_create_key(actions: Subparsers) -> None:
    from edgeagent.hsm import DEFAULT_TOKEN_LABEL
    from edgeagent.pkcs11.keyspecs import DEFAULT_KEY_LABEL, DEFAULT_KEY_SPEC, KEY_SPECS

    create = add_command(
        actions,
        "create-key",
        "generate a key pair inside the token and point device.key_uri at it",
        example="agent hsm create-key --type ec-p256 --public-key device-key.pub.pem",
        description="Generate a key pair inside the token (private key sensitive, never "
        "extractable). A key with the same label is reused unless --new-key. The URI "
        "is written to device.key_uri (or <cloud>.device.key_uri) unless that names "
        "another existing key. With no token at all (module mode) one is initialised.",
    )
    add_cloud(create, optional="write <cloud>.device.key_uri; default: device.key_uri")
    create.add_argument("--type", choices=KEY_SPECS, default=DEFAULT_KEY_SPEC)
    create.add_argument(
        "--label", metavar="LABEL", default=DEFAULT_KEY_LABEL, help="default: %(default)s"
    )
    create.add_argument("--id", type=_hex_id, metavar="HEX", help="default: 8 random bytes")
    create.add_argument("--new-key", action="store_true", help="never reuse an existing key")
    add_renamed(create, "--force-new", "--new-key", flag=True)
    create.add_argument("--public-key", type=Path, metavar="FILE", help="write it here (PEM)")
    create.add_argument(
        "--token-label",
        metavar="LABEL",
        default=DEFAULT_TOKEN_LABEL,
        help="label of the token initialised when there is none (default: %(default)s)",
    )
    _token_uri(create)
    add_pin_file(create)
    add_so_pin_file(create)
    create.set_defaults(run=naming_the_pin(_create_key))
