"""Token administration as the user sees it: `agent hsm ...`, in module or socket mode.

    backend.py       TokenAdmin: the operations, and open_token_admin(config) picking
                     the module in-process or the signing service's socket
    socket_admin.py  TokenAdmin over the signing socket (edgeagent.protocol.admin)
    policy.py        what every command shares: mode and PIN policy (open_admin), the
                     configured key URIs that protect keys and tokens, the rules in prose
    keys.py          create-key, list-keys, delete-key, the key of `cert renew --new-key`
    token_setup.py   init and change-pin (module mode only)

The token work itself is :mod:`edgeagent.pkcs11.admin`; this layer adds the
configuration (which key URIs point where, writing ``device.key_uri``,
keeping ``device.cryptoki.pin`` in sync) and the choice of mode.
"""

DEFAULT_TOKEN_LABEL = "device"  # noqa: S105 (a label, not a secret)
"""The label of the token `create-key` initialises when there is none (module mode).

Here, not in keys.py, so that building the command line stays light."""
