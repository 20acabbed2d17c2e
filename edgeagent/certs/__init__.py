"""Certificates and CSRs signed by the device key, wherever it lives (a Signer).

    build.py     the DER structures (asn1crypto), signed through a Signer
    commands.py  `agent cert create|create-csr|show|renew`, configuration included

Above ``signing``: it takes any Signer (module, socket or file). For
``renew --new-key`` the CLI makes the key with ``edgeagent.hsm`` first and
hands its URI in.
"""
