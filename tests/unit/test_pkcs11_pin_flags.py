"""What the token's PIN-counter flags make of a wrong PIN (SoftHSM never sets them)."""

from dataclasses import dataclass, field

import pkcs11.exceptions as p11x
import pytest
from pkcs11 import TokenFlag

from edgeagent.errors import PinIncorrect, PinLocked
from edgeagent.pkcs11.tokens import FoundToken, TokenDescription, _open_and_login

DESCRIPTION = TokenDescription(
    slot_id=1,
    slot_description="s",
    slot_manufacturer="m",
    label="tok",
    manufacturer="m",
    model="x",
    serial="1",
    login_required=True,
    protected_auth_path=False,
)


@dataclass
class FakeSlot:
    flags_after: int

    def get_token(self) -> "FakeToken":
        return FakeToken(self.flags_after, self)


@dataclass
class FakeToken:
    flags: int
    slot: FakeSlot | None = None
    logins: list[str] = field(default_factory=list)

    def open(self, user_pin: str | None = None) -> object:
        self.logins.append(str(user_pin))
        raise p11x.PinIncorrect()


def attempt(flags_before: int, flags_after: int) -> tuple[FakeToken, Exception]:
    token = FakeToken(flags_before | TokenFlag.LOGIN_REQUIRED, FakeSlot(flags_after))
    with pytest.raises((PinIncorrect, PinLocked)) as caught:
        _open_and_login(FoundToken(DESCRIPTION, token), "0000")
    return token, caught.value


@pytest.mark.parametrize(
    ("after", "words"),
    [
        (TokenFlag.USER_PIN_FINAL_TRY, "ONE attempt is left"),
        (TokenFlag.USER_PIN_COUNT_LOW, "few attempts left"),
        (TokenFlag.USER_PIN_LOCKED, "LOCKED"),
    ],
)
def test_wrong_pin_says_how_close_the_lock_is(after: int, words: str) -> None:
    token, error = attempt(0, after)
    assert isinstance(error, PinIncorrect)
    assert words in error.cause
    assert token.logins == ["0000"], "tried exactly once"


def test_plain_wrong_pin_is_unchanged() -> None:
    _, error = attempt(0, 0)
    assert "attempt" not in error.cause and "LOCKED" not in error.cause


def test_a_locked_pin_is_not_even_tried() -> None:
    token, error = attempt(TokenFlag.USER_PIN_LOCKED, TokenFlag.USER_PIN_LOCKED)
    assert isinstance(error, PinLocked)
    assert token.logins == []
