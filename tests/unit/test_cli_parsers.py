"""The command line's shape: every subcommand described with an example, one vocabulary.

Walks the real parser (`edgeagent.cli.main.build_parser`); nothing runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeagent.cli.args import CLOUD_NAMES, resolve_renamed
from edgeagent.cli.main import build_parser, main


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, (*path, name))


PARSERS = list(_walk(build_parser()))


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path, _ in PARSERS}
    assert {"hsm init", "hsm create-key", "cert renew", "config get", "bridge run"} <= names
    assert len(PARSERS) >= 25


@pytest.mark.parametrize("path, parser", PARSERS, ids=[" ".join(p) or "agent" for p, _ in PARSERS])
def test_every_command_has_a_description_and_an_example(
    path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    text = parser.format_help()
    assert parser.description and len(parser.description) > 10, f"{path}: no description"
    example = text.split("example:\n", 1)
    assert len(example) == 2, f"agent {' '.join(path)} --help shows no example"
    assert example[1].lstrip().startswith("agent"), example[1]
    assert all(f" {word}" in example[1] for word in path), f"{path}: example of another command"
    assert not parser.allow_abbrev, f"{path}: abbreviations allowed"


def test_an_abbreviation_is_refused_not_guessed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["hsm", "list-keys", "--pin", "1234"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --pin <hidden>" in err
    assert "1234" not in err


@pytest.mark.parametrize(
    "argv, shown",
    [
        (["--pin", "1234"], "--pin <hidden>"),
        (["--so-pin=87654321"], "--so-pin=<hidden>"),
        (["--password", "a", "b", "--verbose-ish", "c"], "--password <hidden> --verbose-ish c"),
        (["--colour", "blue"], "--colour blue"),
    ],
)
def test_a_refused_option_never_prints_a_secret_back(
    argv: list[str], shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["hsm", "list-keys", *argv])
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {shown}\n" in err
    for secret in ("1234", "87654321", " a b "):
        assert secret not in err


def test_a_pin_taken_for_another_argument_is_not_quoted_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `cert show` has no PIN option: argparse takes 1234 for the CLOUD and
    # would say "invalid choice: '1234'".
    for argv in (["cert", "show", "--pin", "271828"], ["cert", "show", "--pin=271828", "x"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
        err = capsys.readouterr().err
        assert "271828" not in err and "error:" in err, err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["cert", "show", "c8"])  # no PIN anywhere: quoted as typed
    assert "invalid choice: 'c8'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["hsm", "list-keys", "--pin-file"],
        ["hsm", "change-pin", "--pin-file"],
        ["hsm", "init", "--token-label", "t", "--so-pin-file"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_a_pin_given_where_a_pin_file_belongs_is_not_echoed(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "agent.toml").write_text('[device.cryptoki]\nmode = "module"\n')
    code = main(["--config-dir", str(config_dir), *command, "314159"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "314159" not in err
    assert f"{command[-1]} takes the path of a file" in err


def test_a_secret_from_a_missing_file_is_not_echoed_by_config_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--config-dir", str(tmp_path), "config", "set", "device.cryptoki.pin"]
    assert main([*argv, "--from-file", "271828"]) == 2
    err = capsys.readouterr().err
    assert "271828" not in err and "--from-file takes the path" in err
    # A path that exists is a path: named, as before.
    (tmp_path / "pin-dir").mkdir()
    assert main([*argv, "--from-file", str(tmp_path / "pin-dir")]) != 0
    assert str(tmp_path / "pin-dir") in capsys.readouterr().err


RENAMED = [
    # old spelling, new spelling, the attribute both set, its value
    (["hsm", "init", "--label", "t"], ["hsm", "init", "--token-label", "t"], "token_label", "t"),
    (["hsm", "init", "--reinit"], ["hsm", "init", "--force"], "force", True),
    (["hsm", "create-key", "--force-new"], ["hsm", "create-key", "--new-key"], "new_key", True),
    (["hsm", "create-key", "--cloud", "c8y"], ["hsm", "create-key", "c8y"], "cloud", "c8y"),
    (["cert", "show", "--cloud", "c8y"], ["cert", "show", "c8y"], "cloud", "c8y"),
    (["hsm", "list-keys", "--uri", "pkcs11:token=t"], None, "token_uri", "pkcs11:token=t"),
    (["p11-server", "--uri", "pkcs11:token=t"], None, "token_uri", "pkcs11:token=t"),
]


@pytest.mark.parametrize("old, new, dest, value", RENAMED, ids=[" ".join(r[0]) for r in RENAMED])
def test_an_old_spelling_still_works_and_says_so(
    old: list[str],
    new: list[str] | None,
    dest: str,
    value: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parsed = build_parser().parse_args(old)
    resolve_renamed(parsed)
    assert getattr(parsed, dest) == value
    assert not [name for name in vars(parsed) if name.startswith("renamed__")]
    err = capsys.readouterr().err
    assert f"warning: {old[-2] if value is not True else old[-1]} is deprecated" in err
    assert "next release" in err
    if new is not None:
        fresh = build_parser().parse_args(new)
        resolve_renamed(fresh)
        assert getattr(fresh, dest) == value
        assert capsys.readouterr().err == ""


def test_the_new_spelling_wins_over_the_old(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeagent.clouds import registry

    monkeypatch.setattr(registry, "CLOUDS", ("c8y", "elsewhere"))
    parsed = build_parser().parse_args(["cert", "show", "--cloud", "elsewhere", "c8y"])
    resolve_renamed(parsed)
    assert parsed.cloud == "c8y"
    parsed = build_parser().parse_args(["hsm", "init", "--token-label", "new", "--label", "old"])
    resolve_renamed(parsed)
    assert parsed.token_label == "new"


def test_clouds_come_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeagent.clouds import registry

    assert tuple(CLOUD_NAMES) == registry.CLOUDS
    monkeypatch.setattr(registry, "CLOUDS", ("c8y", "elsewhere"))
    for argv in (["connect", "elsewhere"], ["doctor", "elsewhere"], ["cert", "show", "elsewhere"]):
        assert build_parser().parse_args(argv).cloud == "elsewhere"
    assert "one of: c8y, elsewhere" in _help_of("connect")


def _help_of(*path: str) -> str:
    for found, parser in _walk(build_parser()):
        if found == path:
            return parser.format_help()
    raise AssertionError(path)


def test_building_the_parser_loads_no_cloud_registry() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from edgeagent.cli.main import build_parser; build_parser(); "
            "heavy = ('edgeagent.clouds.registry', 'pydantic'); "
            "print(sorted(m for m in heavy if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_a_missing_required_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hsm", "init"]) == 2
    assert "--token-label is required" in capsys.readouterr().err


def test_an_old_pin_variable_still_works_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeagent.cli.pin_input import NEW_PIN_ENV, OLD_PIN_ENV, SO_PIN_ENV, read_pin

    for env in (SO_PIN_ENV, NEW_PIN_ENV):
        monkeypatch.delenv(env, raising=False)
        monkeypatch.setenv(OLD_PIN_ENV[env], "4321")
        pin = read_pin(
            "PIN", file=None, file_option="--x", env_var=env, old_env_var=OLD_PIN_ENV[env]
        )
        assert pin == "4321"
        assert f"warning: {OLD_PIN_ENV[env]} is deprecated" in capsys.readouterr().err
        monkeypatch.setenv(env, "8765")  # the new name wins, silently
        pin = read_pin(
            "PIN", file=None, file_option="--x", env_var=env, old_env_var=OLD_PIN_ENV[env]
        )
        assert pin == "8765" and capsys.readouterr().err == ""
    assert not any(env.startswith("AGENT_") for env in (SO_PIN_ENV, NEW_PIN_ENV))
