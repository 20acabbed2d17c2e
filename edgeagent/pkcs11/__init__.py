"""PKCS#11 (cryptoki) tokens: URIs, module loading, token and key lookup.

    uri.py         RFC 7512 URIs (parse_uri, format_uri, Pkcs11Uri), names_key / names_token
    module.py      load_module (one per library per process), error translation
    modules.py     which module file a URI or the configuration means
    stores.py      why a module sees no token (permissions on its store)
    pins.py        which PIN to log in with, and where it came from
    tokens.py      find_tokens, the one shared logged-in session per token
    objects.py     key objects: search templates, the one stable order, their URIs
    select.py      select_key: which private key a URI means (warns when ambiguous)
    keys.py        key kinds and public keys read from the token
    public_key.py  the PublicKey type (no python-pkcs11)
    keyspecs.py    the key types `agent hsm create-key` makes (no python-pkcs11)
    listings.py    what administration reports: SlotListing, KeyListing (no python-pkcs11)
    admin/         token administration: init, create/delete key pairs, PINs

``edgeagent.signing.module_signer`` puts these together into a Signer.
"""
