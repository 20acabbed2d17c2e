"""Handing start-up data to the lean runtimes through a pipe."""

from __future__ import annotations

import os

import pytest

from edgeagent.errors import ServiceError
from edgeagent.lean_exec import read_payload, write_payload


def test_a_payload_that_fits_the_pipe_is_read_back_whole() -> None:
    read_end, write_end = os.pipe()
    write_payload(write_end, b'{"pin": "1234"}' * 100)
    assert read_payload(read_end) == b'{"pin": "1234"}' * 100


def test_a_payload_larger_than_the_pipe_fails_instead_of_hanging() -> None:
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(ServiceError, match="does not fit a pipe"):
            write_payload(write_end, b"x" * (4 << 20))  # nobody reads: it must not block
    finally:
        os.close(read_end)
