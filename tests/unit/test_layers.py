"""Layers point down only: the order is the README's "Code layout" list.

Every module under edgeagent/ is parsed (ast: nothing is imported or run)
and every import in it, at the top, inside a function or under
``if TYPE_CHECKING:``, must name a module in its own layer or one listed
below it. A module in no listed layer fails too, so a new folder has to be
placed in the README before it can be imported from anywhere.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Upward:
    importer: str
    line: int
    imported: str
    importer_layer: str
    imported_layer: str

    def __str__(self) -> str:
        return (
            f"{self.importer}:{self.line} ({self.importer_layer}) imports {self.imported} "
            f"({self.imported_layer}), a layer above it"
        )


def layers_from_readme(readme: str) -> list[str]:
    """The "Code layout" block's entries (``edgeagent/cli``, ``edgeagent/errors.py``), top first."""
    after = readme.split("Code layout", 1)[1]
    block = after.split("```", 2)[1]
    return [line.split()[0] for line in block.splitlines() if line.startswith("edgeagent/")]


def module_files(package: Path) -> list[Path]:
    return sorted(package.rglob("*.py"))


def layer_of(path: str, layers: list[str]) -> str | None:
    """The README entry ``path`` (relative, e.g. ``edgeagent/pkcs11/uri.py``) belongs to."""
    for layer in layers:
        if path == layer or path.startswith(layer.rstrip("/") + "/"):
            return layer
    return None


def _module_path(root: Path, dotted: str) -> str | None:
    """``edgeagent.pkcs11.uri`` -> ``edgeagent/pkcs11/uri.py`` (or a package's __init__.py)."""
    base = root / Path(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(root).as_posix()
    return None


def imported_modules(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every edgeagent module ``path`` imports, wherever the import is."""
    tree = ast.parse(path.read_text(), str(path))
    package = path.relative_to(root).with_suffix("").parts[:-1]
    if path.name == "__init__.py":
        package = path.relative_to(root).parts[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join((*base, node.module) if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                # `from edgeagent.pkcs11 import admin` imports the module admin.
                submodule = f"{module}.{alias.name}"
                is_module = _module_path(root, submodule) is not None
                found.append((node.lineno, submodule if is_module else module))
    return [(line, name) for line, name in found if name.split(".")[0] == "edgeagent"]


def check(root: Path, layers: list[str]) -> tuple[list[Upward], list[str], int]:
    """Upward imports, modules in no layer, and how many modules were read."""
    upward: list[Upward] = []
    unlisted: list[str] = []
    files = module_files(root / "edgeagent")
    for path in files:
        relative = path.relative_to(root).as_posix()
        own = layer_of(relative, layers)
        if own is None:
            unlisted.append(relative)
            continue
        for line, name in imported_modules(root, path):
            target = _module_path(root, name)
            theirs = layer_of(target, layers) if target is not None else None
            if theirs is None:
                unlisted.append(f"{name} (imported by {relative}:{line})")
            elif layers.index(theirs) < layers.index(own):
                upward.append(Upward(relative, line, name, own, theirs))
    return upward, unlisted, len(files)


# -- the real tree --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def layers() -> list[str]:
    return layers_from_readme((REPO / "README.md").read_text())


def test_the_readme_lists_every_layer_once_and_each_exists(layers: list[str]) -> None:
    assert len(layers) == len(set(layers))
    for wanted in ("edgeagent/cli", "edgeagent/pkcs11", "edgeagent/errors.py"):
        assert wanted in layers
    assert layers.index("edgeagent/lean_exec.py") > layers.index("edgeagent/p11server")
    for layer in layers:
        assert (REPO / layer).exists(), f"README lists {layer}, which does not exist"


def test_no_import_goes_up_and_every_module_is_in_a_layer(layers: list[str]) -> None:
    upward, unlisted, read = check(REPO, layers)
    assert read == len(list((REPO / "edgeagent").rglob("*.py"))) > 90
    assert unlisted == [], "modules in no layer of the README's Code layout"
    assert [str(u) for u in upward] == []


def test_the_wire_types_and_the_socket_client_load_no_python_pkcs11() -> None:
    """Socket mode: the agent's user needs neither the module nor python-pkcs11."""
    code = (
        "import sys\n"
        "import edgeagent.protocol.admin, edgeagent.protocol.messages\n"
        "import edgeagent.hsm.backend, edgeagent.hsm.socket_admin\n"
        "import edgeagent.signing.socket_signer, edgeagent.signing.open\n"
        "print(sorted(m for m in sys.modules if m == 'pkcs11' or m.startswith('pkcs11.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert done.stdout.strip() == "[]"


# -- the check itself, on a made-up tree -----------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> tuple[Path, list[str]]:
    readme = """
        Code layout:

        ```
        edgeagent/top      the upper layer
        edgeagent/bottom   the lower layer
        edgeagent/base.py  below everything
        ```
        """
    (tmp_path / "README.md").write_text(textwrap.dedent(readme))
    for name, text in {
        "edgeagent/__init__.py": "",
        "edgeagent/base.py": "",
        "edgeagent/top/__init__.py": "",
        "edgeagent/top/a.py": "from edgeagent.bottom.b import x\nimport edgeagent.base\n",
        "edgeagent/bottom/__init__.py": "",
        "edgeagent/bottom/b.py": "x = 1\n",
        **files,
    }.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    layers = layers_from_readme((tmp_path / "README.md").read_text())
    # The package root is where the README's made-up list puts nothing: give it one.
    return tmp_path, [*layers, "edgeagent/__init__.py"]


def test_downward_imports_pass(tmp_path: Path) -> None:
    root, layers = _tree(tmp_path, {})
    assert layers[:3] == ["edgeagent/top", "edgeagent/bottom", "edgeagent/base.py"]
    assert check(root, layers) == ([], [], 6)


@pytest.mark.parametrize(
    "planted",
    [
        "import edgeagent.top.a\n",
        "import edgeagent.top.a as a\n",
        "from edgeagent.top import a\n",
        "from edgeagent.top.a import x\n",
        "from ..top import a\n",
        "def later():\n    from edgeagent.top.a import x\n    return x\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from edgeagent.top import a\n",
        "class C:\n    def m(self):\n        import edgeagent.top\n",
    ],
)
def test_an_upward_import_is_caught_in_every_form(tmp_path: Path, planted: str) -> None:
    root, layers = _tree(tmp_path, {"edgeagent/bottom/c.py": planted})
    upward, unlisted, _ = check(root, layers)
    assert unlisted == []
    assert [(u.importer, u.importer_layer, u.imported_layer) for u in upward] == [
        ("edgeagent/bottom/c.py", "edgeagent/bottom", "edgeagent/top")
    ]


def test_a_module_layer_imports_nothing_above_it(tmp_path: Path) -> None:
    root, layers = _tree(tmp_path, {"edgeagent/base.py": "from edgeagent.bottom import b\n"})
    upward, _, _ = check(root, layers)
    assert [(u.importer, u.imported) for u in upward] == [
        ("edgeagent/base.py", "edgeagent.bottom.b")
    ]


def test_a_module_in_no_layer_is_reported(tmp_path: Path) -> None:
    root, layers = _tree(tmp_path, {"edgeagent/stray.py": "", "edgeagent/new/d.py": ""})
    _, unlisted, read = check(root, layers)
    assert unlisted == ["edgeagent/new/d.py", "edgeagent/stray.py"]
    assert read == 8
