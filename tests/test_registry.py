"""The one Registry class: registration, lookup errors, aliases, building and entry points."""

from __future__ import annotations

import sys
import textwrap

import pytest

from robustlab.core.errors import RobustlabError
from robustlab.core.registry import Registry, callable_params


def _widget(size: int, colour: str = "red") -> tuple[int, str]:
    return size, colour


def _gadget() -> str:
    return "gadget"


def test_register_twice_is_an_error_but_the_same_entry_is_idempotent() -> None:
    reg: Registry = Registry("widget")
    reg.register("w", _widget)
    reg.register("w", _widget)  # the same object again (a module imported twice)
    with pytest.raises(RobustlabError, match="widget 'W' is registered twice"):
        reg.register("W", _gadget)  # the same key under another spelling
    assert reg.get("w") is _widget and reg.names() == ["w"]


def test_decorator_and_normalised_lookup_keep_the_registered_spelling() -> None:
    reg: Registry = Registry("model")

    @reg.register("small_cnn")
    def build() -> str:
        return "built"

    assert reg.get(" Small-CNN ") is build and reg["small_cnn"] is build
    assert "SMALL_CNN" in reg and "nope" not in reg and 3 not in reg
    assert reg.names() == ["small_cnn"] and list(reg) == ["small_cnn"] and len(reg) == 1
    assert reg.items() == [("small_cnn", build)]
    assert reg.key("Small_Cnn") == "small-cnn"


def test_unknown_name_lists_the_choices_in_one_line() -> None:
    reg: Registry = Registry("gizmo")
    reg.register("b", _gadget)
    reg.register("a_c", _widget)
    with pytest.raises(RobustlabError) as err:
        reg.get("zzz")
    assert str(err.value) == "unknown gizmo 'zzz'; choose one of: a_c, b"
    with pytest.raises(RobustlabError, match="unknown gizmo 'zzz'"):
        reg["zzz"]


def test_aliases_resolve_to_the_entry_and_are_not_listed() -> None:
    reg: Registry = Registry("dataset")
    reg.register("cifar10", _gadget, aliases=("CIFAR-10", "c10"))
    assert reg.get("cifar_10") is _gadget and reg.get("C10") is _gadget and "c10" in reg
    assert reg.key("c10") == "cifar10" and reg.names() == ["cifar10"]
    reg.unregister("cifar10")
    assert "c10" not in reg and reg.names() == []


def test_params_and_build_check_keywords() -> None:
    reg: Registry = Registry("widget")
    reg.register("w", _widget)
    assert reg.params("w") == {"size": None, "colour": "red"}
    assert callable_params(_widget, required="(required)") == {"size": "(required)", "colour": "red"}
    assert reg.build("w", size=3) == (3, "red")
    with pytest.raises(RobustlabError, match="widget 'w' has no parameter 'color'; parameters: size, colour"):
        reg.build("w", size=3, color="blue")


def test_classes_report_their_init_parameters() -> None:
    class Thing:
        def __init__(self, a: int, *args: int, b: float = 0.5, **kwargs: int) -> None:
            self.a, self.b = a, b

    reg: Registry = Registry("thing")
    reg.register("thing", Thing)
    assert reg.params("thing") == {"a": None, "b": 0.5}
    assert reg.build("thing", a=1, extra=2).b == 0.5  # **kwargs: any keyword is passed on
    reg.register("value", 42)
    with pytest.raises(RobustlabError, match="thing 'value' cannot be built"):
        reg.build("value")


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """A fake installed distribution whose entry point ``fancy`` in group ``robustlab_test.widgets``
    names ``robustlab_test_plugin:make_fancy``."""
    dist = tmp_path / "robustlab_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: robustlab-test-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[robustlab_test.widgets]\nfancy = robustlab_test_plugin:make_fancy\nbroken = robustlab_test_plugin:nope\n"
    )
    (tmp_path / "robustlab_test_plugin.py").write_text(textwrap.dedent('''
        def make_fancy(level: int = 2) -> str:
            return "fancy" * level
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("robustlab_test_plugin", None)


def test_entry_points_are_loaded_on_first_lookup(plugin_dist) -> None:
    reg: Registry = Registry("widget", entry_point_group="robustlab_test.widgets")
    reg.register("broken", _gadget)  # a name registered in code wins; its entry point is not loaded
    assert "fancy" in reg
    assert reg.names() == ["broken", "fancy"]
    assert reg.build("fancy", level=1) == "fancy" and reg.params("fancy") == {"level": 2}
    assert reg.get("broken") is _gadget


def test_a_broken_entry_point_is_a_one_line_error(plugin_dist) -> None:
    reg: Registry = Registry("widget", entry_point_group="robustlab_test.widgets")
    with pytest.raises(RobustlabError, match=r"widget plug-in 'broken' \(robustlab_test_plugin:nope\) could not"):
        reg.names()


def test_without_a_group_no_entry_points_are_read(plugin_dist) -> None:
    reg: Registry = Registry("widget")
    assert "fancy" not in reg and reg.names() == []
