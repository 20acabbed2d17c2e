"""C_InitToken through ctypes: python-pkcs11 0.10 does not offer it.

    c_init_token(module, slot_id=0, so_pin="12345678", label="my-token")

It is called through the module's own function list. dlopen of the already
loaded library returns the same handle, so this is the instance
python-pkcs11 initialised.
"""

from __future__ import annotations

import ctypes
import os

from edgeagent.errors import PinIncorrect, PinLocked, TokenOperationFailed
from edgeagent.pkcs11.module import Module

TPM_HINT = (
    "tpm2-pkcs11 makes tokens with its own tool: "
    "tpm2_ptool addtoken --pid 1 --label <label> --sopin <SO PIN> --userpin <PIN> "
    "(after tpm2_ptool init), then run this again"
)


class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte))


_CK_RV = ctypes.c_ulong
_InitTokenFn = ctypes.CFUNCTYPE(
    _CK_RV, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p
)
_FUNCTIONS_BEFORE_INIT_TOKEN = (
    "C_Initialize",
    "C_Finalize",
    "C_GetInfo",
    "C_GetFunctionList",
    "C_GetSlotList",
    "C_GetSlotInfo",
    "C_GetTokenInfo",
    "C_GetMechanismList",
    "C_GetMechanismInfo",
)


class _FunctionList(ctypes.Structure):
    _fields_ = (
        ("version", _Version),
        *((name, ctypes.c_void_p) for name in _FUNCTIONS_BEFORE_INIT_TOKEN),
        ("C_InitToken", _InitTokenFn),
    )


_CKR_NAMES = {
    0x54: "CKR_FUNCTION_NOT_SUPPORTED",
    0xA0: "CKR_PIN_INCORRECT",
    0xA4: "CKR_PIN_LOCKED",
    0xA2: "CKR_PIN_LEN_RANGE",
    0xB6: "CKR_SESSION_EXISTS",
    0xE0: "CKR_TOKEN_NOT_PRESENT",
    0xE2: "CKR_TOKEN_WRITE_PROTECTED",
    0x05: "CKR_GENERAL_ERROR",
    0x06: "CKR_FUNCTION_FAILED",
    0x07: "CKR_ARGUMENTS_BAD",
}


def c_init_token(module: Module, slot_id: int, so_pin: str, label: str) -> None:
    """Initialise (erase) the token in ``slot_id`` with ``so_pin`` and ``label``."""
    with module.lock:
        library = ctypes.CDLL(os.path.realpath(module.path))
        get_list = library.C_GetFunctionList
        table = ctypes.POINTER(_FunctionList)()
        get_list.argtypes = (ctypes.POINTER(ctypes.POINTER(_FunctionList)),)
        get_list.restype = _CK_RV
        rv = get_list(ctypes.byref(table))
        if rv != 0:
            raise TokenOperationFailed(f"C_GetFunctionList of {module.path} failed (0x{rv:x})")
        pin = so_pin.encode()
        padded = label.encode().ljust(32, b" ")
        rv = table.contents.C_InitToken(slot_id, pin, len(pin), padded)
    if rv == 0:
        return
    name = _CKR_NAMES.get(rv, f"CKR 0x{rv:x}")
    if rv == 0xA0:
        raise PinIncorrect(
            f"the SO PIN is incorrect for the token in slot {slot_id} ({name}); it was not retried",
            "each wrong attempt counts towards the token's lock-out",
        )
    if rv == 0xA4:
        raise PinLocked(f"the SO PIN of the token in slot {slot_id} is locked ({name})")
    fix = "see the module's documentation for initialising tokens"
    if rv in (0x54, 0x05, 0x06) or "tpm2" in module.path.name.lower():
        fix = TPM_HINT if "tpm2" in module.path.name.lower() else fix
    raise TokenOperationFailed(f"initialising the token in slot {slot_id} failed ({name})", fix)
