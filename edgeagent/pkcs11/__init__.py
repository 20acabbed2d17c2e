"""PKCS#11 (cryptoki) tokens: URIs, module loading, token and key lookup.

    uri.py      RFC 7512 URIs (parse_uri, format_uri, Pkcs11Uri)
    module.py   load_module (one per library per process), error translation
    tokens.py   find_tokens, the one shared logged-in session per token
    select.py   select_key: which private key a URI means (warns when ambiguous)
    keys.py     key kinds and public keys read from the token
    admin.py    token administration: init, create/delete key pairs, PINs

``edgeagent.signing.module_signer`` puts these together into a Signer.
"""
