"""Every configuration key: (format, default as `get` prints it, environment variable).

Generated from edgeagent/config/schema.py by `python -m edgeagent.config.keytable_gen`;
do not edit (tests/unit/test_config_quick.py checks it matches the schema).
"""

CLOUDS: tuple[str, ...] = ("c8y", "az", "aws")
"""Every cloud section of the schema, in schema order (read through edgeagent.clouds.registry)."""

KEYS: dict[str, tuple[str, str | None, str]] = {
    "device.cryptoki.mode": ("one of: off, module, socket", "off", "AGENT_DEVICE_CRYPTOKI_MODE"),
    "device.cryptoki.module_path": ("an absolute path", None, "AGENT_DEVICE_CRYPTOKI_MODULE_PATH"),
    "device.cryptoki.pin": ("the token's user PIN", None, "AGENT_DEVICE_CRYPTOKI_PIN"),
    "device.cryptoki.uri": (
        "a PKCS#11 URI (RFC 7512) starting with 'pkcs11:'",
        None,
        "AGENT_DEVICE_CRYPTOKI_URI",
    ),
    "device.cryptoki.socket_path": (
        "an absolute path",
        "/run/agent-p11-server/agent-p11-server.sock",
        "AGENT_DEVICE_CRYPTOKI_SOCKET_PATH",
    ),
    "device.key_uri": (
        "a PKCS#11 URI (RFC 7512) starting with 'pkcs11:'",
        None,
        "AGENT_DEVICE_KEY_URI",
    ),
    "device.key_path": ("an absolute path", None, "AGENT_DEVICE_KEY_PATH"),
    "device.cert_path": (
        "an absolute path",
        "/etc/agent/device-certs/device.pem",
        "AGENT_DEVICE_CERT_PATH",
    ),
    "device.key_pin": ("the token's user PIN", None, "AGENT_DEVICE_KEY_PIN"),
    "device.key_policy": ("one of: any, hardware", "any", "AGENT_DEVICE_KEY_POLICY"),
    "c8y.url": ("host[:port] without a scheme, port 1-65535", None, "AGENT_C8Y_URL"),
    "c8y.root_cert_path": ("an absolute path", "/etc/ssl/certs", "AGENT_C8Y_ROOT_CERT_PATH"),
    "c8y.device.key_uri": (
        "a PKCS#11 URI (RFC 7512) starting with 'pkcs11:'",
        None,
        "AGENT_C8Y_DEVICE_KEY_URI",
    ),
    "c8y.device.cert_path": ("an absolute path", None, "AGENT_C8Y_DEVICE_CERT_PATH"),
    "c8y.device.key_path": ("an absolute path", None, "AGENT_C8Y_DEVICE_KEY_PATH"),
    "c8y.device.key_pin": ("the token's user PIN", None, "AGENT_C8Y_DEVICE_KEY_PIN"),
    "c8y.tls.min_version": ("one of: 1.2, 1.3", "1.2", "AGENT_C8Y_TLS_MIN_VERSION"),
    "c8y.http": ("host[:port] without a scheme, port 1-65535", None, "AGENT_C8Y_HTTP"),
    "az.url": ("host[:port] without a scheme, port 1-65535", None, "AGENT_AZ_URL"),
    "az.root_cert_path": ("an absolute path", "/etc/ssl/certs", "AGENT_AZ_ROOT_CERT_PATH"),
    "az.device.key_uri": (
        "a PKCS#11 URI (RFC 7512) starting with 'pkcs11:'",
        None,
        "AGENT_AZ_DEVICE_KEY_URI",
    ),
    "az.device.cert_path": ("an absolute path", None, "AGENT_AZ_DEVICE_CERT_PATH"),
    "az.device.key_path": ("an absolute path", None, "AGENT_AZ_DEVICE_KEY_PATH"),
    "az.device.key_pin": ("the token's user PIN", None, "AGENT_AZ_DEVICE_KEY_PIN"),
    "az.tls.min_version": ("one of: 1.2, 1.3", "1.2", "AGENT_AZ_TLS_MIN_VERSION"),
    "aws.url": ("host[:port] without a scheme, port 1-65535", None, "AGENT_AWS_URL"),
    "aws.root_cert_path": ("an absolute path", "/etc/ssl/certs", "AGENT_AWS_ROOT_CERT_PATH"),
    "aws.device.key_uri": (
        "a PKCS#11 URI (RFC 7512) starting with 'pkcs11:'",
        None,
        "AGENT_AWS_DEVICE_KEY_URI",
    ),
    "aws.device.cert_path": ("an absolute path", None, "AGENT_AWS_DEVICE_CERT_PATH"),
    "aws.device.key_path": ("an absolute path", None, "AGENT_AWS_DEVICE_KEY_PATH"),
    "aws.device.key_pin": ("the token's user PIN", None, "AGENT_AWS_DEVICE_KEY_PIN"),
    "aws.tls.min_version": ("one of: 1.2, 1.3", "1.2", "AGENT_AWS_TLS_MIN_VERSION"),
    "mqtt.client.host": (
        "a host name or IP address, no scheme, port or path",
        "127.0.0.1",
        "AGENT_MQTT_CLIENT_HOST",
    ),
    "mqtt.client.port": ("a port number, 1-65535", "1883", "AGENT_MQTT_CLIENT_PORT"),
    "mqtt.bridge.built_in": ("true or false", "true", "AGENT_MQTT_BRIDGE_BUILT_IN"),
    "run.path": ("an absolute path", "/run/agent", "AGENT_RUN_PATH"),
    "logs.path": ("an absolute path", "/var/log/agent", "AGENT_LOGS_PATH"),
    "p11_server.socket_group": ("text", None, "AGENT_P11_SERVER_SOCKET_GROUP"),
    "p11_server.allowed_users": (
        "comma-separated names or numeric ids",
        "",
        "AGENT_P11_SERVER_ALLOWED_USERS",
    ),
    "p11_server.allowed_groups": (
        "comma-separated names or numeric ids",
        "",
        "AGENT_P11_SERVER_ALLOWED_GROUPS",
    ),
}
