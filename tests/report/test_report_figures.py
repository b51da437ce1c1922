"""Report figures write PNGs from data and return None when there is nothing to draw; number formats."""

from __future__ import annotations

from pathlib import Path

from robustlab.labs.classification import figures as figs
from robustlab.report.format import eps_label, pct, seconds
from robustlab.viz import training_curves

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path: Path | None) -> bool:
    return path is not None and path.read_bytes().startswith(PNG)


def test_empty_inputs_draw_nothing(tmp_path: Path) -> None:
    assert training_curves([], tmp_path / "a.png") is None
    assert figs.robustness_curve([], tmp_path / "b.png") is None
    assert figs.per_class_bars({}, tmp_path / "c.png") is None
    assert figs.confusion_matrices({"clean": [[1, 2]]}, tmp_path / "d.png") is None  # not square
    assert figs.noise_curve([{"sigma": "x"}], tmp_path / "e.png") is None
    assert figs.robustness_overlay([("r", {})], tmp_path / "f.png") is None
    assert not list(tmp_path.iterdir())


def test_figures_from_data(tmp_path: Path) -> None:
    metrics = [
        {"epoch": e, "lr": 0.1 / e, "train_loss": 1 / e, "val_accuracy": 0.5, "adv_loss": 2.0, "best": True}
        for e in (1, 2)
    ]
    assert is_png(training_curves(metrics, tmp_path / "t.png"))
    robust = [
        {"attack": "fgsm", "norm": "linf", "eps": 8 / 255, "accuracy": 0.4},
        {"attack": "pgd", "norm": "l2", "eps": 0.5, "accuracy": 0.2},
    ]
    assert is_png(
        figs.robustness_curve(
            robust, tmp_path / "r.png", worst_case=[{"eps": 8 / 255, "accuracy": 0.3}], clean_accuracy=0.9
        )
    )
    assert is_png(
        figs.robustness_overlay(
            [("a", {"robust": robust, "clean_accuracy": 0.9}), ("b", {"robust": robust})], tmp_path / "o.png"
        )
    )
    many = {f"c{i}": {"clean": i / 101, "robust": i / 202} for i in range(101)}
    assert is_png(figs.per_class_bars(many, tmp_path / "p.png"))
    k = 25  # > 20 classes: no tick labels
    eye = [[10 if i == j else 1 for j in range(k)] for i in range(k)]
    assert is_png(figs.confusion_matrices({"clean": eye, "adversarial": eye}, tmp_path / "c.png"))
    assert is_png(figs.noise_curve([{"sigma": 0.1, "accuracy": 0.5}], tmp_path / "n.png", clean_accuracy=0.9))


def test_number_formats() -> None:
    assert pct(0.91234) == "91.23%" and pct(None) == "—" and pct(True) == "—"
    assert eps_label(8 / 255) == "0.03137 (8/255)"
    assert eps_label(0.1) == "0.1 (25.5/255)"
    assert eps_label(0.5, "l2") == "0.5"
    assert seconds(75) == "1 min 15 s" and seconds(3.21) == "3.2 s"
