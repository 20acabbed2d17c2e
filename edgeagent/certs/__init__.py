"""Certificates and CSRs signed by the device key, wherever it lives (a Signer), and EST.

    build.py      the DER structures (asn1crypto), signed through a Signer
    commands.py   `agent cert create|create-csr|show|renew` (self-signed, CSR) with the config
    est.py        the EST client (RFC 7030): a CSR in, PKCS#7 certs-only out, over verified HTTPS
    est_tls.py    the same with TLS client authentication by the device key (our TLS stack)
    enrol.py      `agent cert download`: simpleenroll until registered, atomic install
    c8y_token.py  Cumulocity's bearer token through the running bridge (c8y/s/uat -> 71,<JWT>)
    trial.py      a new certificate tried against the cloud: TLS + CONNECT/CONNACK only

Above ``signing`` and ``tls``: it takes any Signer (module, socket or file).
Making keys is ``edgeagent.hsm``'s, above this layer: for ``renew --new-key``
and ``download`` the key is made there first; the EST renewal that needs
both lives in ``edgeagent.clouds.cert_renewal``.
"""
