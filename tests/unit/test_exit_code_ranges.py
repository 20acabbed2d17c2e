"""Exit codes group by layer: a new error lands in its layer's range, usage errors exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeagent import errors
from edgeagent.cli.exit_codes import EXIT_CODES, USAGE, exit_code_for

RANGES: dict[type[errors.AgentError], range] = {
    errors.ConfigError: range(10, 20),
    errors.TokenError: range(20, 40),
    errors.CertificateError: range(40, 50),
    errors.TlsError: range(50, 60),
    errors.BrokerError: range(60, 70),
    errors.SigningServiceError: range(70, 80),
    errors.ServiceError: range(80, 90),
    errors.FileWriteError: range(90, 100),
}


@pytest.mark.parametrize("cls, code", EXIT_CODES, ids=[cls.__name__ for cls, _ in EXIT_CODES])
def test_every_code_is_in_its_layers_range(cls: type[errors.AgentError], code: int) -> None:
    layers = [group for group in RANGES if issubclass(cls, group)]
    if cls in (errors.AgentError, errors.UsageError):
        assert not layers and code in (1, USAGE)
        return
    assert len(layers) == 1, f"{cls.__name__} belongs to no layer (or several)"
    assert code in RANGES[layers[0]], f"{cls.__name__}: {code} outside {RANGES[layers[0]]}"


def test_each_layers_catch_all_is_the_end_of_its_range() -> None:
    assert exit_code_for(errors.ConfigError("x")) == 19
    assert exit_code_for(errors.TokenOperationFailed("x")) == 39


def test_usage_errors_are_not_runtime_errors() -> None:
    assert exit_code_for(errors.UsageError("x")) == USAGE == 2
    assert not issubclass(errors.UsageError, (errors.ConfigError, errors.TokenError))
    assert exit_code_for(errors.FileWriteError("x")) == 90
    assert not issubclass(errors.FileWriteError, errors.CertificateError)


def test_an_unknown_cloud_is_one_error_wherever_it_is_found() -> None:
    from edgeagent.clouds.registry import cloud_profile
    from edgeagent.config import AgentConfig

    with pytest.raises(errors.UnknownCloud) as from_schema:
        AgentConfig().cloud("nowhere")
    with pytest.raises(errors.UnknownCloud) as from_registry:
        cloud_profile("nowhere", AgentConfig(), Path("/nonexistent"))
    assert exit_code_for(from_schema.value) == exit_code_for(from_registry.value) == 15
