"""Token administration as the user sees it: `agent hsm ...`, in module or socket mode.

    backend.py       TokenAdmin: the operations, and open_token_admin(config) picking
                     the module in-process or the signing service's socket
    socket_admin.py  TokenAdmin over the signing socket (edgeagent.protocol.admin)
    commands.py      what each `agent hsm` command does, configuration updates included

The token work itself is :mod:`edgeagent.pkcs11.admin`; this layer adds the
configuration (which key URIs point where, writing ``device.key_uri``,
keeping ``device.cryptoki.pin`` in sync) and the choice of mode.
"""

DEFAULT_TOKEN_LABEL = "device"  # noqa: S105 (a label, not a secret)
"""The label of the token `create-key` initialises when there is none (module mode).

Here, not in commands.py, so that building the command line stays light."""
