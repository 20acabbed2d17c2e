"""`agent doctor` counts the device certificate's remaining days and warns under 30."""

from __future__ import annotations

import datetime

import pytest

from tests.support.gateway import Gateway
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.integration


def _certificate_line(gateway: Gateway) -> str:
    done = gateway.agent("doctor", "c8y")
    assert done.returncode == 0, done.stdout
    [line] = [x for x in done.stdout.splitlines() if "certificate matches the key" in x]
    return line


@pytest.mark.parametrize(("days", "warned"), [(10, True), (45, False)])
def test_doctor_shows_the_days_left_and_warns_under_30(
    gateway: Gateway, softhsm_token: SoftHsmToken, days: int, warned: bool
) -> None:
    ends = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days, hours=1)
    gateway.new_device_key(softhsm_token, not_after=ends)
    line = _certificate_line(gateway)
    assert line.startswith("  ✓ ")
    assert f"valid for {days} more days" in line
    assert ("warning: under 30 days left: agent cert renew c8y" in line) == warned
