"""Initialising a token (`agent hsm init`): idempotent, and never one in use.

    result = init_token(module, "my-token", so_pin="12345678", user_pin="123456")
    result.created, result.token.uri

A token is *in use* when any object is visible on it without a login
(every key pair made by this agent, pkcs11-tool or tpm2_ptool stores its
public half as a public object) or when a configured key URI names it.
Counting only public objects spends no PIN attempt. Such a token is never
re-initialised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgeagent.errors import TokenInUse, TokenOperationFailed
from edgeagent.pkcs11.admin.c_init_token import TPM_HINT, c_init_token
from edgeagent.pkcs11.admin.listing import list_slots
from edgeagent.pkcs11.admin.pin_change import reset_pin
from edgeagent.pkcs11.listings import SlotListing
from edgeagent.pkcs11.module import Module, pkcs11_errors
from edgeagent.pkcs11.tokens import FoundToken, TokenDescription, describe, slots_with_tokens


@dataclass(frozen=True)
class InitResult:
    token: SlotListing
    created: bool
    """False when a usable token with the label was there already (nothing done)."""
    note: str = ""


def init_token(
    module: Module,
    label: str,
    so_pin: str,
    user_pin: str,
    *,
    slot_id: int | None = None,
    reinit: bool = False,
    referenced_by: Callable[[TokenDescription], list[str]] = lambda _desc: [],
) -> InitResult:
    """Initialise a token labelled ``label`` and set its user PIN (see the module docstring).

    - a usable token with that label exists: nothing is done (``created`` False);
    - one exists whose user PIN was never set: C_InitPIN with the SO PIN;
    - otherwise the first blank slot (or ``slot_id``) is initialised. An
      initialised token is only re-initialised with ``reinit`` and when it
      is not in use; ``referenced_by`` names the configured key URIs that
      point at a token.
    """
    if not label or len(label.encode()) > 32:
        raise TokenOperationFailed(
            f"token label {label!r} must be 1 to 32 bytes", "choose a shorter --label"
        )
    slots = list_slots(module)
    same = [s for s in slots if s.initialized and s.label == label]
    if same and slot_id is None and not reinit:
        slot = same[0]
        if slot.user_pin_initialized:
            return InitResult(slot, created=False)
        reset_pin(module, _found(module, slot.slot_id), so_pin, user_pin)
        return InitResult(_slot(module, slot.slot_id), created=True, note="user PIN set")
    target = _choose_slot(slots, label, slot_id, reinit)
    if target.initialized:
        _refuse_if_in_use(_found(module, target.slot_id), referenced_by)
    c_init_token(module, target.slot_id, so_pin, label)
    found = _found(module, target.slot_id)
    reset_pin(module, found, so_pin, user_pin)
    return InitResult(_renumbered(module, found.description), created=True)


def _renumbered(module: Module, made: TokenDescription) -> SlotListing:
    """The new token as every later process sees it: its slot id may have changed.

    SoftHSM2 numbers an initialised token's slot after its serial (slot 0
    becomes slot 1694031823) but only from the next C_Initialize: without a
    rescan `hsm init` would name a slot that `hsm list-tokens` never shows.
    Found again by serial and label (tpm2-pkcs11 gives every token serial 0).
    """
    module.rescan(min_interval=0)
    same = [
        slot
        for slot in list_slots(module)
        if slot.initialized and (slot.serial, slot.label) == (made.serial, made.label)
    ]
    if not same:
        raise TokenOperationFailed(
            f"token {made.label!r} (serial {made.serial}) was initialised but is no longer listed",
            "`agent hsm list-tokens` shows what the module offers now",
        )
    return next((slot for slot in same if slot.slot_id == made.slot_id), same[0])


def _choose_slot(
    slots: list[SlotListing], label: str, slot_id: int | None, reinit: bool
) -> SlotListing:
    if slot_id is not None:
        chosen = [s for s in slots if s.slot_id == slot_id]
        if not chosen:
            raise TokenOperationFailed(
                f"no token present in slot {slot_id}", "`agent hsm list-tokens` lists the slots"
            )
        slot = chosen[0]
        if slot.initialized and not reinit:
            raise TokenInUse(
                f"slot {slot_id} already holds token {slot.label!r}",
                "pass --force to erase and re-initialise it (refused while it is in use)",
            )
        return slot
    if reinit:
        same = [s for s in slots if s.initialized and s.label == label]
        if same:
            return same[0]
    blank = [s for s in slots if not s.initialized]
    if not blank:
        raise TokenOperationFailed(
            "no free slot: every token of the module is initialised",
            "for a TPM: " + TPM_HINT + "; for SoftHSM2 check its token directory "
            "(it always offers one free slot); for a smart card insert a blank one",
        )
    return blank[0]


def _public_objects(found: FoundToken) -> int:
    session = found.token.open()  # a public session: no login, no PIN attempt
    try:
        return sum(1 for _ in session.get_objects({}))
    finally:
        session.close()


def _refuse_if_in_use(
    found: FoundToken, referenced_by: Callable[[TokenDescription], list[str]]
) -> None:
    desc = found.description
    with pkcs11_errors("looking at the token's objects", desc.label):
        objects = _public_objects(found)
    references = referenced_by(desc)
    reasons = []
    if objects:
        reasons.append(f"it holds {objects} object(s) visible without login (keys, certificates)")
    if references:
        reasons.append("it is named by " + ", ".join(references))
    if reasons:
        raise TokenInUse(
            f"token {desc.label!r} is in use and was not re-initialised: {'; '.join(reasons)}",
            "delete its keys (`agent hsm delete-key`) and unset the key URIs first, "
            "or initialise another slot",
        )


def _found(module: Module, slot_id: int) -> FoundToken:
    for slot, token in slots_with_tokens(module):
        if int(slot.slot_id) == slot_id:
            return FoundToken(describe(slot, token), token)
    raise TokenOperationFailed(f"slot {slot_id} went away")


def _slot(module: Module, slot_id: int) -> SlotListing:
    return next(s for s in list_slots(module) if s.slot_id == slot_id)
