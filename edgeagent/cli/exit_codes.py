"""One table: which exit code each of our errors gets.

Documented in the README ("Exit codes"). Most specific class first; the
first ``isinstance`` match wins.
"""

from __future__ import annotations

from edgeagent import errors

OK = 0
USAGE = 2  # argparse's own code for bad arguments; UsageError shares it

# Ranges by layer, each with room to grow and its catch-all at the end:
#  2 usage | 10-19 configuration | 20-39 token (PKCS#11) | 40-49 device certificate |
#  50-59 TLS | 60-69 brokers | 70-79 signing service | 80-89 bridge service | 90-99 files
EXIT_CODES: tuple[tuple[type[errors.AgentError], int], ...] = (
    (errors.UsageError, USAGE),
    (errors.ConfigSyntaxError, 10),
    (errors.UnknownConfigKey, 11),
    (errors.InvalidConfigValue, 12),
    (errors.MissingConfigValue, 13),
    (errors.ConfigWriteError, 14),
    (errors.UnknownCloud, 15),
    (errors.KeyPolicyRefused, 16),
    (errors.RootCertificatesUnreadable, 17),
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
    (errors.TokenAmbiguous, 30),
    (errors.TokenInUse, 31),
    (errors.KeyInUse, 32),
    (errors.TokenOperationFailed, 39),
    (errors.CertificateUnreadable, 40),
    (errors.CertificateKeyMismatch, 41),
    (errors.CertificateNotValidNow, 42),
    (errors.CertificateExists, 43),
    (errors.EnrolmentRefused, 44),
    (errors.EnrolmentTimedOut, 45),
    (errors.ServerCertificateUntrusted, 50),
    (errors.ServerHostnameMismatch, 51),
    (errors.ServerCertificateExpired, 52),
    (errors.TlsHandshakeFailed, 53),
    (errors.TlsVersionRefused, 54),
    (errors.TlsDowngradeDetected, 55),
    (errors.DeviceCertificateRefused, 56),
    (errors.ServerKeyTooWeak, 57),
    (errors.AlpnNotSelected, 58),
    (errors.BrokerUnreachable, 60),
    (errors.BrokerRefused, 61),
    (errors.CloudDidNotAnswer, 62),
    (errors.SignerUnreachable, 70),
    (errors.SignerProtocolError, 71),
    (errors.AdminNotAllowed, 72),
    (errors.BridgeAlreadyRunning, 81),
    (errors.BridgeNotRunning, 86),
    (errors.BridgeLinkDown, 87),
    (errors.ServiceError, 80),
    (errors.FileWriteError, 90),
    (errors.AgentError, 1),
)

# Grouping classes, never raised themselves: anything of theirs is one of the
# specific errors above (a new subclass without a row falls back to 1).
ABSTRACT = (
    errors.TokenError,
    errors.CertificateError,
    errors.TlsError,
    errors.BrokerError,
    errors.SigningServiceError,
)


def _code(cls: type[errors.AgentError]) -> int:
    return dict(EXIT_CODES)[cls]


NEVER_RETRY = frozenset(
    {
        USAGE,
        *(code for cls, code in EXIT_CODES if issubclass(cls, errors.ConfigError)),
        *map(
            _code,
            (
                errors.ModuleLoadError,
                errors.PinIncorrect,  # retried, it locks the token out
                errors.PinLocked,
                errors.UnsupportedKeyType,
                errors.InvalidKeyUri,
                errors.CertificateKeyMismatch,
                errors.BridgeAlreadyRunning,
            ),
        ),
    }
)
"""Exit codes a retry cannot fix (packaging/agent-bridge.service's
RestartPreventExitStatus=, which a test keeps equal): the bridge host never
retries a cloud whose start failed with one of them."""


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
    for cls, code in sorted(EXIT_CODES, key=lambda entry: entry[1]):
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        rows.append(f"| {code} | `{cls.__name__}` | {doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
