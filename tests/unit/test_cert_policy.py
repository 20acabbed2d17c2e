"""Pure parts of issue 14: the key-origin verdict, and --if-expiring-within's durations."""

from __future__ import annotations

import argparse
import datetime

import pytest

from edgeagent.cli.cert_enrol_cmd import duration
from edgeagent.pkcs11.origin import KeyOrigin


@pytest.mark.parametrize(
    ("origin", "hardware"),
    [
        (KeyOrigin(True, True, True), True),
        (KeyOrigin(False, True, True), False),  # imported, even if never extractable since
        (KeyOrigin(True, False, True), False),  # generated, but was extractable once
        (KeyOrigin(True, True, False), False),
        (KeyOrigin(True, None, True), None),  # not reported: unknown, never a guess
        (KeyOrigin(False, None, None), False),  # one false is enough
    ],
)
def test_a_key_is_hardware_only_when_all_three_say_so(
    origin: KeyOrigin, hardware: bool | None
) -> None:
    assert origin.hardware is hardware


def test_the_description_names_each_attribute() -> None:
    text = KeyOrigin(True, None, False).describe()
    assert text.startswith("imported or extractable (")
    assert "CKA_LOCAL=true, CKA_NEVER_EXTRACTABLE=unknown, CKA_ALWAYS_SENSITIVE=false" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", datetime.timedelta(days=30)),
        ("30", datetime.timedelta(days=30)),
        ("12h", datetime.timedelta(hours=12)),
        ("90m", datetime.timedelta(minutes=90)),
        ("3600s", datetime.timedelta(hours=1)),
        ("0.5d", datetime.timedelta(hours=12)),
    ],
)
def test_durations(text: str, expected: datetime.timedelta) -> None:
    assert duration(text) == expected


@pytest.mark.parametrize("text", ["", "d", "thirty days", "-1d", "5w"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)
