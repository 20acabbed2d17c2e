"""One table: which exit code each of our errors gets.

Documented in the README ("Exit codes"). Most specific class first; the
first ``isinstance`` match wins.
"""

from __future__ import annotations

from edgeagent import errors

OK = 0
USAGE = 2  # argparse's own code for bad arguments

EXIT_CODES: tuple[tuple[type[errors.AgentError], int], ...] = (
    (errors.ConfigSyntaxError, 10),
    (errors.UnknownConfigKey, 11),
    (errors.InvalidConfigValue, 12),
    (errors.MissingConfigValue, 13),
    (errors.ConfigWriteError, 14),
    (errors.ConfigError, 19),
    (errors.ModuleLoadError, 20),
    (errors.TokenAccessDenied, 21),
    (errors.TokenNotFound, 22),
    (errors.TokenNotInitialized, 23),
    (errors.PinIncorrect, 24),
    (errors.PinLocked, 25),
    (errors.KeyNotFound, 26),
    (errors.UnsupportedKeyType, 27),
    (errors.InvalidKeyUri, 28),
    (errors.TokenOperationFailed, 29),
    (errors.SignerUnreachable, 30),
    (errors.SignerProtocolError, 31),
    (errors.AdminNotAllowed, 32),
    (errors.TokenAmbiguous, 33),
    (errors.TokenInUse, 34),
    (errors.KeyInUse, 35),
    (errors.CertificateUnreadable, 40),
    (errors.CertificateKeyMismatch, 41),
    (errors.CertificateNotValidNow, 42),
    (errors.CertificateExists, 43),
    (errors.ServerCertificateUntrusted, 50),
    (errors.ServerHostnameMismatch, 51),
    (errors.ServerCertificateExpired, 52),
    (errors.TlsHandshakeFailed, 53),
    (errors.TlsVersionRefused, 54),
    (errors.TlsDowngradeDetected, 55),
    (errors.BrokerUnreachable, 60),
    (errors.BrokerRefused, 61),
    (errors.ServiceError, 70),
    (errors.AgentError, 1),
)

# Grouping classes, never raised themselves: anything of theirs is one of the
# specific errors above (a new subclass without a row falls back to 1).
ABSTRACT = (errors.TokenError, errors.CertificateError, errors.TlsError, errors.BrokerError)


def exit_code_for(error: errors.AgentError) -> int:
    """The exit code for an error: its most specific entry in the table."""
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return 1


def markdown_table() -> str:
    """The exit-code table as the README shows it (a test keeps them equal)."""
    rows = ["| exit code | error | meaning |", "|---|---|---|"]
    rows.append("| 0 | | success |")
    rows.append("| 2 | | bad command-line arguments |")
    for cls, code in sorted(EXIT_CODES, key=lambda entry: entry[1]):
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        rows.append(f"| {code} | `{cls.__name__}` | {doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
