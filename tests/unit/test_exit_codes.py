import inspect

from edgeagent import errors
from edgeagent.cli.exit_codes import ABSTRACT, EXIT_CODES, exit_code_for


def test_every_error_class_has_its_own_exit_code() -> None:
    classes = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.AgentError)
    }
    listed = [cls for cls, _ in EXIT_CODES]
    assert set(listed) | set(ABSTRACT) == classes
    assert not set(listed) & set(ABSTRACT)
    codes = [code for _, code in EXIT_CODES]
    assert len(set(codes)) == len(codes), "codes are unique"
    assert all(0 < code < 126 for code in codes), "no clash with shell/signal codes"


def test_most_specific_class_wins() -> None:
    assert exit_code_for(errors.PinIncorrect("x")) == 24
    assert exit_code_for(errors.ConfigSyntaxError("f", 1, 2, "x")) == 10
    assert exit_code_for(errors.ConfigError("x")) == 19
    assert exit_code_for(errors.AgentError("x")) == 1


def test_error_text_names_cause_and_fix() -> None:
    text = str(errors.PinIncorrect("PIN incorrect for token 't'", "check device.cryptoki.pin"))
    assert text == "PIN incorrect for token 't'\n  fix: check device.cryptoki.pin"


def test_readme_shows_the_table_the_code_prints() -> None:
    from pathlib import Path

    from edgeagent.cli.exit_codes import markdown_table

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start = readme.index("<!-- exit-codes:start -->\n") + len("<!-- exit-codes:start -->\n")
    end = readme.index("<!-- exit-codes:end -->")
    assert readme[start:end].strip() == markdown_table(), (
        "README's exit codes are stale: paste `python -m edgeagent.cli.exit_codes`"
    )
