"""The test suite's own layout: test modules share code through tests/support/ only.

- No test module imports another test module (``tests/**/test_*.py``): what
  two of them need lives in tests/support/.
- No test module imports or re-assigns a fixture: fixtures reach every module
  through ``pytest_plugins`` in tests/conftest.py.

Both read the source with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
SUPPORT = TESTS / "support"


def _is_test_module(name: str) -> bool:
    """``tests.integration.test_tpm`` / ``test_tpm``: a dotted name whose last part is a test's."""
    return name.rsplit(".", 1)[-1].startswith("test_")


def _fixture_names() -> set[str]:
    """Every fixture the support modules define (``@pytest.fixture`` functions)."""
    names = set()
    for path in SUPPORT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and any(
                "fixture" in ast.unparse(d) for d in node.decorator_list
            ):
                names.add(node.name)
    return names


def layout_problems(source: str, where: str, fixtures: set[str]) -> list[str]:
    """What in one test module's source breaks the two rules, one line each."""
    tree = ast.parse(source, where)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_test_module(alias.name):
                    problems.append(f"{where}:{node.lineno}: imports test module {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if node.module and _is_test_module(node.module):
                problems.append(f"{where}:{node.lineno}: imports from test module {module}")
            for alias in node.names:
                if _is_test_module(alias.name):
                    problems.append(
                        f"{where}:{node.lineno}: imports test module {alias.name} from {module}"
                    )
                elif alias.name in fixtures and not _is_support_module(module, alias.name):
                    problems.append(f"{where}:{node.lineno}: imports fixture {alias.name}")
    for statement in tree.body:
        # `software_tpm = tpm.software_tpm`: a fixture re-exported by assignment.
        if (
            isinstance(statement, ast.Assign)
            and isinstance(statement.value, ast.Attribute)
            and statement.value.attr in fixtures
        ):
            problems.append(
                f"{where}:{statement.lineno}: re-exports fixture {statement.value.attr}"
            )
    return problems


def _is_support_module(package: str, name: str) -> bool:
    """``from tests.support import softhsm``: the module, not the fixture of that name."""
    return package == "tests.support" and (SUPPORT / f"{name}.py").exists()


def test_no_test_module_imports_another_or_a_fixture() -> None:
    fixtures = _fixture_names()
    modules = sorted(TESTS.rglob("test_*.py"))
    assert Path(__file__).resolve() in modules  # the walk does reach the test modules
    problems = [
        problem
        for path in modules
        for problem in layout_problems(path.read_text(), str(path.relative_to(TESTS)), fixtures)
    ]
    assert problems == [], "\n".join(problems)


def test_the_fixtures_are_found() -> None:
    """The check above knows the fixtures it guards (or it could pass by knowing none)."""
    assert {"gateway_factory", "gateway", "softhsm", "software_tpm", "pki"} <= _fixture_names()


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("from tests.integration.test_socket_mode import P11Server", id="from-module"),
        pytest.param("from tests.integration import test_tpm", id="from-package"),
        pytest.param("import tests.integration.test_tpm", id="import"),
        pytest.param("import tests.integration.test_tpm as other", id="import-as"),
        pytest.param("from .test_tpm import LIBRARY_LOG", id="relative-from-module"),
        pytest.param("from . import test_tpm", id="relative-from-package"),
        pytest.param(
            "def f():\n    from tests.integration.test_socket_mode import raw_ask\n",
            id="inside-a-function",
        ),
        pytest.param("from tests.support.tpm import software_tpm", id="a-fixture-imported"),
        pytest.param(
            "from tests.support import tpm\nsoftware_tpm = tpm.software_tpm",
            id="a-fixture-assigned",
        ),
        pytest.param(
            "import tests.support.tpm\nsoftware_tpm = tests.support.tpm.software_tpm",
            id="a-fixture-assigned-by-full-name",
        ),
    ],
)
def test_the_check_fails_on_what_it_forbids(source: str) -> None:
    assert layout_problems(source, "test_x.py", _fixture_names()) != []


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("from tests.support.gateway import Gateway, GatewayFactory", id="support"),
        pytest.param(
            "from tests.support import tpm\nmodule = tpm.TPM2_PKCS11_MODULE", id="a-constant"
        ),
        pytest.param("from tests.support import softhsm, gateway", id="modules-named-as-fixtures"),
        pytest.param("def test_x(gateway):\n    pki = gateway.pki\n", id="an-attribute-in-a-test"),
    ],
)
def test_the_check_passes_what_is_allowed(source: str) -> None:
    assert layout_problems(source, "test_x.py", _fixture_names()) == []
