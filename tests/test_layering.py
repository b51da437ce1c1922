"""The layers of ``src/robustlab`` point one way (docs/architecture.md draws them):

    core ← data ← models; core ← viz; data, models ← training ← attacks ← defenses, evaluation, explain ← labs ← top
    report ← core, viz only (a lab hands it sections)

Every import in every module is read — top-level, inside functions and under ``TYPE_CHECKING`` — so a
lazy import cannot hide a back-edge. A lab may import the labs' shared modules and itself, never
another lab.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: package -> the packages it may import (besides itself and the bare ``robustlab`` root)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "builtin": set(),  # packaged files (the demo recipe), no code
    "data": {"core"},
    "models": {"core", "data"},  # batching a dataset for inference; data never imports models
    "viz": {"core"},
    "training": {"core", "data", "models"},
    "attacks": {"core", "data", "models"},
    "defenses": {"core", "data", "models", "training", "attacks"},
    "evaluation": {"core", "data", "models", "training", "attacks"},
    "explain": {"core", "data", "models", "viz", "training", "attacks"},
    "report": {"core", "viz"},
    "labs": {"core", "data", "models", "viz", "training", "attacks", "defenses", "evaluation", "explain", "report"},
}
TOP = {"cli", "config", "crossval", "experiment", "pipeline", "recipe", "__main__"}
ROOT_ALLOWED = {"core"}  # what robustlab/__init__.py may import
LABS_SHARED = {"base", "schema", "__init__"}  # modules of robustlab/labs every lab may use


def _package(module: str) -> str:
    """``robustlab.labs.generative.vae`` → ``labs``; ``robustlab`` → ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "robustlab"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "robustlab":
                continue
            if target == "robustlab":  # from robustlab import data → robustlab.data
                out += [(node.lineno, f"robustlab.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, target))
    return out


def violations(src: Path) -> list[str]:
    """``file:line: a -> b`` for every import of ``src/robustlab`` against the rule."""
    bad = []
    for path in sorted((src / "robustlab").rglob("*.py")):
        rel = path.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        module = ".".join(parts)
        pkg = _package(module)
        for line, target in _imports(path, module):
            tpkg = _package(target)
            if pkg == "":
                ok = tpkg in ROOT_ALLOWED or tpkg == ""
            elif pkg in TOP:
                ok = True
            elif tpkg in ("", pkg):
                ok = True
                if pkg == "labs" and tpkg == "labs":
                    mine = module.split(".")[2] if len(module.split(".")) > 2 else ""
                    theirs = target.split(".")[2] if len(target.split(".")) > 2 else ""
                    ok = theirs in LABS_SHARED or theirs == mine or mine in LABS_SHARED
            elif pkg in ALLOWED:
                ok = tpkg in ALLOWED[pkg]
            else:
                ok = False
            if not ok:
                bad.append(f"{path.relative_to(src)}:{line}: {module} -> {target}")
    return bad


def test_src_imports_follow_the_layers():
    assert violations(SRC) == []


def test_training_imports_neither_attacks_nor_defenses():
    for path in (SRC / "robustlab" / "training").rglob("*.py"):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts)
        targets = [t for _, t in _imports(path, module)]
        assert not [t for t in targets if t.startswith(("robustlab.attacks", "robustlab.defenses"))], path


def test_every_package_is_in_the_table():
    found = {p.name for p in (SRC / "robustlab").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in (SRC / "robustlab").glob("*.py")} - {"__init__"}
    assert found <= set(ALLOWED), found - set(ALLOWED)
    assert modules <= TOP, modules - TOP


def _plant(tmp_path: Path, package: str, text: str) -> Path:
    src = tmp_path / "src"
    for pkg in ("core", "training", "attacks", "labs", "labs/vae", "labs/captions", "report"):
        (src / "robustlab" / pkg).mkdir(parents=True, exist_ok=True)
        (src / "robustlab" / pkg / "__init__.py").write_text("")
    (src / "robustlab" / "__init__.py").write_text("from robustlab.core import errors\n")
    (src / "robustlab" / package).with_suffix(".py").write_text(text)
    return src


def test_the_check_fails_on_planted_back_edges(tmp_path):
    assert violations(_plant(tmp_path / "clean", "training/loop", "from robustlab.core import io\n")) == []
    planted = {
        "training/loop": "def f():\n    from robustlab.attacks import PGD\n",  # lazy import: still seen
        "core/io": "import robustlab.training.trainer\n",
        "report/html": "from robustlab import labs\n",
        "labs/vae/lab": "from robustlab.labs.captions import model\n",  # one lab into another
        "attacks/pgd": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from robustlab.defenses import base\n",
    }
    for i, (where, text) in enumerate(planted.items()):
        found = violations(_plant(tmp_path / str(i), where, text))
        assert len(found) == 1 and where.replace("/", ".") in found[0], (where, found)
