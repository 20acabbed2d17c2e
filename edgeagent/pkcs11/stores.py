"""Where well-known modules keep their tokens, and whether this user may reach them.

Modules answer an unreadable token store with CKR_GENERAL_ERROR, or simply
list no tokens; users then chase a wrong PIN or a missing token. We look at
the store ourselves and name the path and the group to join.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from edgeagent.errors import TokenAccessDenied

SOFTHSM_DEFAULT_CONF = Path("/etc/softhsm/softhsm2.conf")
TPM_DEVICE = Path("/dev/tpmrm0")


def store_access_problem(module_path: Path) -> TokenAccessDenied | None:
    """A permission problem on ``module_path``'s token store, if we can see one."""
    name = module_path.name.lower()
    if "softhsm" in name:
        return _softhsm_problem()
    if "tpm2" in name:
        return _tpm_problem()
    return None


def _denied(what: str, path: Path, group_hint: str) -> TokenAccessDenied:
    return TokenAccessDenied(
        f"permission denied on {what} {path} for user id {os.getuid()}",
        f"run the agent as a user that may use it ({group_hint}), or fix its permissions",
    )


def _softhsm_problem() -> TokenAccessDenied | None:
    conf = Path(os.environ.get("SOFTHSM2_CONF") or SOFTHSM_DEFAULT_CONF)
    try:
        text = conf.read_text()
    except PermissionError:
        return _denied("the SoftHSM2 configuration", conf, "e.g. in group 'softhsm'")
    except OSError:
        return None  # missing: the module reports that itself
    match = re.search(r"^\s*directories\.tokendir\s*=\s*(\S+)", text, re.MULTILINE)
    if match is None:
        return None
    token_dir = Path(match.group(1))
    if token_dir.exists() and not os.access(token_dir, os.R_OK | os.W_OK | os.X_OK):
        return _denied("the SoftHSM2 token directory", token_dir, "e.g. in group 'softhsm'")
    return None


def _tpm_problem() -> TokenAccessDenied | None:
    tcti = os.environ.get("TPM2_PKCS11_TCTI", "")
    uses_device = not tcti or tcti.startswith("device")
    if uses_device and TPM_DEVICE.exists() and not os.access(TPM_DEVICE, os.R_OK | os.W_OK):
        return _denied("the TPM device", TPM_DEVICE, "in group 'tss'")
    store = os.environ.get("TPM2_PKCS11_STORE")
    if store and Path(store).exists() and not os.access(store, os.R_OK | os.W_OK | os.X_OK):
        return _denied("the tpm2-pkcs11 store", Path(store), "the store's owner or group")
    return None
