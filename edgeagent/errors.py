"""Every failure edgeagent can report, in one tree.

Each error is a value with a *cause* (what is wrong, in the user's words) and
a *fix* (what to do about it). Lower libraries' exceptions (python-pkcs11,
tlslite-ng, paho-mqtt, tomlkit, OSError) are translated into these once, at
the boundary where they enter our code, with the original kept as
``__cause__``. The CLI turns each class into a message and an exit code in a
single table (``edgeagent.cli.exit_codes``).

Exit codes group by layer, with room to grow (``edgeagent.cli.exit_codes``):
2 usage, 10-19 configuration, 20-39 token, 40-49 device certificate, 50-59
TLS, 60-69 brokers, 70-79 signing service, 80-89 bridge service, 90-99 files.

    AgentError
    ├── UsageError                   the command line asks for something it cannot have
    ├── ConfigError
    │   ├── ConfigSyntaxError        agent.toml is not valid TOML (line, column)
    │   ├── UnknownConfigKey         `agent config set nosuch.key ...`
    │   ├── InvalidConfigValue       a value the schema refuses
    │   ├── MissingConfigValue       a key this action needs is not set
    │   ├── ConfigWriteError         agent.toml could not be written (file unchanged)
    │   ├── UnknownCloud             a cloud name the agent does not know
    │   ├── RootCertificatesUnreadable  <cloud>.root_cert_path: missing, unreadable, no CA in it
    │   └── KeyPolicyRefused         device.key_policy = hardware, and the key is not such a key
    ├── TokenError                   anything on the PKCS#11 side
    │   ├── ModuleLoadError          module missing, unreadable, not PKCS#11
    │   ├── TokenAccessDenied        no permission on the token's store or device
    │   ├── TokenNotFound            no token matches the URI (lists what exists)
    │   ├── TokenNotInitialized      the slot's token was never initialised
    │   ├── PinIncorrect             C_Login said CKR_PIN_INCORRECT
    │   ├── PinLocked                C_Login said CKR_PIN_LOCKED
    │   ├── KeyNotFound              no private key matches the URI
    │   ├── UnsupportedKeyType       a key that cannot make the signature asked for
    │   ├── InvalidKeyUri            the URI is not RFC 7512
    │   ├── TokenAmbiguous           several tokens could be meant and none was named
    │   ├── TokenInUse               refused: re-initialising a token that holds keys
    │   ├── KeyInUse                 refused: deleting a key a *.key_uri names
    │   └── TokenOperationFailed     any other CKR_* (named)
    ├── SigningServiceError          anything between us and `agent p11-server`
    │   ├── SignerUnreachable        the signing service's socket does not answer
    │   ├── SignerProtocolError      the signing service answered nonsense
    │   └── AdminNotAllowed          the signing service refuses token administration to us
    ├── CertificateError
    │   ├── CertificateUnreadable    missing / unreadable / not PEM
    │   ├── CertificateExists        refused: would overwrite a certificate or CSR file
    │   ├── CertificateKeyMismatch   the device certificate is not the key's
    │   ├── CertificateNotValidNow   the device certificate is expired or not yet valid
    │   ├── EnrolmentRefused         the EST server refused the request or answered nonsense
    │   └── EnrolmentTimedOut        the EST server still said "not registered yet" at the deadline
    ├── TlsError
    │   ├── ServerCertificateUntrusted   chain does not lead to a trusted root
    │   ├── ServerHostnameMismatch       certificate is not for the host we dialled
    │   ├── ServerCertificateExpired     certificate outside its validity
    │   ├── ServerKeyTooWeak             RSA under 2048 bits or a curve under P-256 in the chain
    │   ├── TlsVersionRefused            the server wants a version below <cloud>.tls.min_version
    │   ├── TlsDowngradeDetected         a TLS 1.2 answer carries RFC 8446's downgrade sentinel
    │   ├── DeviceCertificateRefused     the cloud closed on us over the device certificate
    │   ├── AlpnNotSelected              the server did not select ALPN x-amzn-mqtt-ca (AWS on 443)
    │   └── TlsHandshakeFailed           anything else during the handshake
    ├── BrokerError
    │   ├── BrokerUnreachable        TCP connect failed / timed out
    │   ├── BrokerRefused            CONNACK with a failure reason
    │   └── CloudDidNotAnswer        the session is up but the cloud did not answer connect's check
    ├── ServiceError                 starting / stopping the bridge process
    │   ├── BridgeNotRunning         status, doctor: a configured cloud's bridge does not run
    │   ├── BridgeLinkDown           `agent status`: the bridge runs, a link of it is down
    │   └── BridgeAlreadyRunning     a second bridge for a cloud whose bridge runs
    └── FileWriteError               a file we were asked to write (certificate, CSR, public key)
"""

from __future__ import annotations


class AgentError(Exception):
    """Any other failure (the base of all of them): a cause and a fix, for a human."""

    def __init__(self, cause: str, fix: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.cause}\n  fix: {self.fix}"
        return self.cause


class UsageError(AgentError):
    """Bad command-line arguments: a missing or conflicting option (argparse's own exit 2 too)."""


# -- configuration -----------------------------------------------------------


class ConfigError(AgentError):
    """The configuration is wrong or cannot be read or written."""


class ConfigSyntaxError(ConfigError):
    """agent.toml is not valid TOML."""

    def __init__(self, path: str, line: int, column: int, detail: str) -> None:
        super().__init__(
            f"{path}:{line}:{column}: not valid TOML: {detail}",
            f"edit {path} at line {line}, column {column}; nothing was overwritten",
        )
        self.path = path
        self.line = line
        self.column = column


class UnknownConfigKey(ConfigError):
    """A dotted key that is not in the schema."""


class InvalidConfigValue(ConfigError):
    """A value the schema refuses for a key."""


class MissingConfigValue(ConfigError):
    """A key this action needs has no value."""


class ConfigWriteError(ConfigError):
    """agent.toml could not be written; the old file is untouched."""


class UnknownCloud(ConfigError):
    """An unknown cloud name from a caller (a CLOUD on the command line is usage error 2)."""


class RootCertificatesUnreadable(ConfigError):
    """A cloud's root_cert_path is missing, unreadable or holds no CA certificate."""


class KeyPolicyRefused(ConfigError):
    """device.key_policy is 'hardware' and the key was imported, is extractable, or is not known."""


# -- PKCS#11 tokens ------------------------------------------------------------


class TokenError(AgentError):
    """A failure on the PKCS#11 side."""


class ModuleLoadError(TokenError):
    """The PKCS#11 module could not be loaded."""


class TokenAccessDenied(TokenError):
    """No permission on the token's store or device (never a PIN problem)."""


class TokenNotFound(TokenError):
    """No token matches the key URI."""


class TokenNotInitialized(TokenError):
    """The token in the slot has never been initialised."""


class PinIncorrect(TokenError):
    """The token refused the PIN."""


class PinLocked(TokenError):
    """The token's user PIN is locked after too many wrong attempts."""


class KeyNotFound(TokenError):
    """No private key matches the key URI."""


class UnsupportedKeyType(TokenError):
    """The key cannot make the signature asked for (TLS CertificateVerify, certificate)."""


class InvalidKeyUri(TokenError):
    """The key URI is not a valid RFC 7512 PKCS#11 URI."""


class TokenAmbiguous(TokenError):
    """Several tokens could be meant and none was named."""


class TokenInUse(TokenError):
    """Refused: the token (or key id) is in use; nothing was changed."""


class KeyInUse(TokenError):
    """Refused: a configured key URI names the key; nothing was deleted."""


class TokenOperationFailed(TokenError):
    """Any other PKCS#11 failure, named by its CKR_* code."""


# -- signing service -------------------------------------------------------------


class SigningServiceError(AgentError):
    """A failure between the agent and its signing service (socket mode)."""


class SignerUnreachable(SigningServiceError):
    """The signing service's Unix socket does not answer."""


class SignerProtocolError(SigningServiceError):
    """The signing service sent something that is not our protocol."""


class AdminNotAllowed(SigningServiceError):
    """The signing service administers the token only for its own user or root."""


# -- certificates ----------------------------------------------------------------


class CertificateError(AgentError):
    """A problem with the device certificate."""


class CertificateUnreadable(CertificateError):
    """The certificate file is missing, unreadable or not PEM."""


class CertificateExists(CertificateError):
    """Refused: the certificate (or CSR) file exists and would be overwritten."""


class CertificateKeyMismatch(CertificateError):
    """The device certificate does not belong to the private key."""


class CertificateNotValidNow(CertificateError):
    """The device certificate is expired or not yet valid."""


class EnrolmentRefused(CertificateError):
    """The EST server refused the enrolment, could not be reached, or answered nonsense."""


class EnrolmentTimedOut(CertificateError):
    """The EST server still answered "not registered yet" when the wait ran out."""


# -- TLS to the cloud ------------------------------------------------------------


class TlsError(AgentError):
    """The TLS session to the cloud could not be established safely."""


class ServerCertificateUntrusted(TlsError):
    """The server's chain does not lead to a trusted root."""


class ServerHostnameMismatch(TlsError):
    """The server's certificate is not valid for the host we connected to."""


class ServerCertificateExpired(TlsError):
    """A certificate in the server's chain is outside its validity period."""


class ServerKeyTooWeak(TlsError):
    """A key in the server's chain or its trust anchor is under RSA-2048 or P-256."""


class TlsVersionRefused(TlsError):
    """The server speaks only a TLS version below the configured minimum."""


class TlsDowngradeDetected(TlsError):
    """The server's TLS 1.2 answer says it speaks TLS 1.3: someone forced 1.2."""


class DeviceCertificateRefused(TlsError):
    """The cloud refused the device certificate (an alert, or it closed on us right after)."""


class AlpnNotSelected(TlsError):
    """The server did not select the ALPN protocol the cloud needs (AWS on port 443)."""


class TlsHandshakeFailed(TlsError):
    """The handshake failed for another reason (alert, protocol, timeout)."""


# -- MQTT brokers ----------------------------------------------------------------


class BrokerError(AgentError):
    """A broker could not be reached or refused us."""


class BrokerUnreachable(BrokerError):
    """TCP connection to a broker failed."""


class BrokerRefused(BrokerError):
    """The broker answered CONNECT with a failure."""


class CloudDidNotAnswer(BrokerError):
    """TLS and MQTT are up, but the cloud did not answer `connect`'s round trip."""


# -- the bridge service ------------------------------------------------------------


class ServiceError(AgentError):
    """The bridge service could not be started, stopped or queried."""


class BridgeNotRunning(ServiceError):
    """A configured cloud's bridge is not running (`agent status`, `agent doctor`)."""


class BridgeLinkDown(ServiceError):
    """The bridge runs, but its cloud or local link is down (`agent status`)."""


class BridgeAlreadyRunning(ServiceError):
    """Refused: this cloud's bridge already runs (its pid file is held); one per cloud."""


# -- files we write ------------------------------------------------------------------


class FileWriteError(AgentError):
    """A file we were asked to write (certificate, CSR, public key) could not be written."""
