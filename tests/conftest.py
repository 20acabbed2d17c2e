"""Fixtures reach every test module from here, never by import (tests/unit/test_suite_layout.py)."""

pytest_plugins = [
    "tests.support.environment",
    "tests.support.pki",
    "tests.support.mosquitto",
    "tests.support.softhsm",
    "tests.support.tpm",
    "tests.support.signing_service",
    "tests.support.gateway",
    "tests.support.est",
    "tests.support.clouds",
]
