from pathlib import Path

import pytest

from edgeagent.errors import InvalidKeyUri, MissingConfigValue, ModuleLoadError
from edgeagent.pkcs11 import modules
from edgeagent.pkcs11.modules import module_by_name, module_for
from edgeagent.pkcs11.uri import Pkcs11Uri


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    reg, libs = tmp_path / "modules", tmp_path / "lib"
    reg.mkdir()
    libs.mkdir()
    (libs / "relative-pkcs11.so").write_bytes(b"")
    (reg / "absolute.module").write_text("# comment\nmodule: /opt/hsm/libabs.so\ncritical: no\n")
    (reg / "relative.module").write_text("module: relative-pkcs11.so\n")
    monkeypatch.setattr(modules, "P11_KIT_REGISTRIES", (reg,))
    monkeypatch.setattr(modules, "MODULE_DIRS", (libs,))
    return libs


def test_uri_module_path_wins_over_the_config() -> None:
    uri = Pkcs11Uri.parse("pkcs11:token=t?module-path=/opt/x.so")
    assert module_for(uri, Path("/configured.so")) == Path("/opt/x.so")
    assert module_for(Pkcs11Uri.parse("pkcs11:token=t"), Path("/c.so")) == Path("/c.so")


def test_module_name_is_looked_up_like_p11_kit(registry: Path) -> None:
    assert module_by_name("absolute") == Path("/opt/hsm/libabs.so")
    assert module_by_name("relative") == registry / "relative-pkcs11.so"
    uri = Pkcs11Uri.parse("pkcs11:token=t?module-name=absolute")
    assert module_for(uri, None) == Path("/opt/hsm/libabs.so")


def test_unknown_module_name_lists_the_known_ones(registry: Path) -> None:
    with pytest.raises(ModuleLoadError) as caught:
        module_by_name("nope")
    assert "absolute, relative" in caught.value.fix


def test_no_module_anywhere_says_how_to_set_one() -> None:
    with pytest.raises(MissingConfigValue, match="module_path"):
        module_for(Pkcs11Uri.parse("pkcs11:token=t"), None)


@pytest.mark.parametrize(
    "text", ["pkcs11:///usr/lib/x86_64-linux-gnu/pkcs11/", "pkcs11://usr/lib/libtpm2_pkcs11.so"]
)
def test_openziti_module_form_is_refused_with_what_to_write(text: str) -> None:
    with pytest.raises(InvalidKeyUri) as caught:
        Pkcs11Uri.parse(text)
    assert "OpenZiti" in caught.value.cause
    assert "device.cryptoki.module_path" in caught.value.fix
    assert "pkcs11:token=" in caught.value.fix
