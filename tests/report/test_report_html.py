"""build_report / compare_report: one self-contained HTML file, every section, hostile input escaped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from robustlab.core.errors import RobustlabError
from robustlab.labs.classification.compare import compare_report, pairings
from robustlab.pipeline import report_run as build_report
from robustlab.report.context import load_run

ASSET_REF = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
CSS_URL = re.compile(r"""url\(\s*["']?\s*(?:https?:)?//|@import""", re.IGNORECASE)


def assert_self_contained(html: str) -> None:
    assert not ASSET_REF.search(html), "an asset is loaded from the network"
    assert not CSS_URL.search(html), "CSS loads something from the network"
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    for src in re.findall(r"""<img[^>]*\ssrc="([^"]*)\"""", html):
        assert src.startswith("data:image/"), src


def test_full_report_has_every_section(fake_run: Path) -> None:
    out = build_report(fake_run)
    assert out == fake_run / "report.html"
    html = out.read_text(encoding="utf-8")
    assert_self_contained(html)
    # every figure embedded: the report's own five plus the two explain PNGs
    assert html.count("data:image/png;base64,") == 7
    for name in ("training_curves", "robustness_curve", "per_class", "confusion", "noise_curve"):
        assert (fake_run / "figures" / f"{name}.png").is_file()
    # flags, in plain words, with their remedy; most severe first
    assert "Robust accuracy 44.57% is above clean accuracy 4.81%." in html
    assert "Check for label leaking" in html
    assert html.index("robust_above_clean") < html.index("pgd_weaker_than_fgsm")
    assert html.index("Sanity flags") < html.index("Configuration")
    # the robustness table: clean / FGSM / PGD / worst case, eps as float and k/255
    for number in ("81.23%", "53.11%", "48.22%", "44.57%", "24.23%", "47.01%", "23.11%"):
        assert number in html
    assert "0.03137 (8/255)" in html and "0.01569 (4/255)" in html
    # config, smaller tables and cost
    for text in (
        "resnet18_cifar",
        "pgd_at (eps=0.03137, steps=4)",
        "adam, lr 0.001",
        "Seed",
        "78.86%",
        "vehicles",
        "0.0123",
        "97.00%",
        "90th pct.",
        "Each attack alone",
        "26.56%",
        "(adversarial at eps 0.03137 (8/255))",
        "svhn",
        "11.89%",
        "38.00% of attack work saved",
        "41.3 s",
        "robustlab 0.1.0",
    ):
        assert text in html, text
    assert "Smoke run" not in html


def test_minimal_results_still_render(tmp_path: Path) -> None:
    run = tmp_path / "bare"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"clean_accuracy": 0.5}))
    html = build_report(run).read_text(encoding="utf-8")
    assert_self_contained(html)
    assert "50.00%" in html
    assert "No sanity flags" in html
    assert "bare" in html  # folder name stands in for the run name


def test_empty_and_broken_folders_render(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "No results.json yet" in build_report(empty).read_text(encoding="utf-8")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text("{not json")
    (broken / "config.yaml").write_text("a: [unclosed")
    (broken / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": "x"}\n')
    html = build_report(broken).read_text(encoding="utf-8")
    assert "results.json could not be read" in html and "config.yaml could not be read" in html
    with pytest.raises(RobustlabError):
        build_report(tmp_path / "missing")


def test_odd_sections_do_not_crash(run_factory) -> None:
    res = {
        "clean_accuracy": 0.9,
        "robust": [{"attack": "pgd", "eps": 0.5, "norm": "l2", "accuracy": 0.3}, "junk"],
        "worst_case": "nope",
        "noise": [{"sigma": None}],
        "per_class": {"a": {"clean": None}},
        "confusion": {"clean": [[1, 2], [3]]},
        "flags": [{"severity": "catastrophic"}, 3],
        "figures": {"escape": "../../etc/passwd", "none": None},
        "superclass": [],
        "min_perturbation": {"cw": {"median": 0.25, "q25": 0.125, "q75": 0.5}, "bad": 3},
        "sanity": {"standalone": "x"},
        "generative": {"kind": "vae", "elbo_nats": -98.765, "label_following": {"accuracy": 0.93}},
        "study": {
            "group": "K",
            "columns": ["run", "K", "recon_mse"],
            "rows": [{"run": "k3", "K": 3, "recon_mse": 0.05}],
        },
    }
    run = run_factory(results=res)
    html = build_report(run).read_text(encoding="utf-8")
    assert "30.00%" in html and "0.5" in html and "L2" in html
    assert "unnamed flag" in html
    assert "0.125" in html and "75th pct." in html  # legacy q25/q75
    assert "-98.77" in html and "label_following.accuracy" in html and "93.00%" in html  # generic sections
    assert "recon_mse" in html and "k3" in html  # a study table


def test_hostile_strings_are_escaped(run_factory) -> None:
    evil = '<script>alert("x")</script>'
    res = {
        "name": evil,
        "clean_accuracy": 0.1,
        "dataset": "<img src=x onerror=alert(1)>",
        "flags": [{"code": "x", "severity": "error", "message": evil, "remedy": evil}],
        "per_class": {evil: {"clean": 0.2, "robust": 0.1}, "$\\frac{1}{0}$ $": {"clean": 0.3}},
    }
    run = run_factory(name="evil", results=res)
    html = build_report(run).read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<img src=x" not in html
    assert (run / "figures" / "per_class.png").is_file()  # "$" in a class name is drawn literally


def test_smoke_run_warns(run_factory) -> None:
    run = run_factory(smoke=True, results={"clean_accuracy": 0.1})
    html = build_report(run).read_text(encoding="utf-8")
    assert "Smoke run" in html and "meaningless" in html


def test_compare_report(tmp_path: Path, run_factory) -> None:
    base = run_factory(name="resnet-clean", defense="none", clean=0.6714)
    res = json.loads((base / "results.json").read_text())
    for r in res["robust"]:
        r["accuracy"] /= 4
    res["flags"] = []
    (base / "results.json").write_text(json.dumps(res))
    adv = run_factory(name="resnet-pgd-at", clean=0.0481)
    out = compare_report([base, adv], tmp_path / "cmp" / "compare.html", title="Table 2")
    html = out.read_text(encoding="utf-8")
    assert_self_contained(html)
    assert "resnet-clean" in html and "resnet-pgd-at" in html and "Table 2" in html
    assert "67.14%" in html and "4.81%" in html and "24.23%" in html and "6.06%" in html
    assert "Before / after: resnet-clean → resnet-pgd-at" in html and "pp" in html
    assert "Robust accuracy 44.57% is above clean accuracy 4.81%." in html
    assert html.count("data:image/png;base64,") == 3  # overlay + training curves of each run
    with pytest.raises(RobustlabError):
        compare_report([], tmp_path / "x.html")


def test_before_after_pairs_fine_tuned_runs_with_their_parent(run_factory) -> None:
    a = run_factory(name="a", defense="none", results={"clean_accuracy": 0.9})
    b = run_factory(name="b", defense="noise", results={"clean_accuracy": 0.8})
    c = run_factory(name="c", defense="pgd_at", results={"clean_accuracy": 0.7})
    d = run_factory(name="d", defense="pgd_at", results={"clean_accuracy": 0.6})
    cfg = yaml.safe_load((c / "config.yaml").read_text())
    cfg["train"]["init_from"] = str(b / "checkpoints" / "best.pt")
    (c / "config.yaml").write_text(yaml.safe_dump(cfg))
    runs = [load_run(p) for p in (a, b, c, d)]
    got = {before.name: [r.name for r in after] for before, after in pairings(runs)}
    assert got == {"b": ["c"], "a": ["d"]}


def test_compare_markdown_tables(tmp_path: Path, run_factory) -> None:
    from robustlab.pipeline import compare_runs

    base = run_factory(name="clean-run", defense="none", clean=0.6714)
    res = json.loads((base / "results.json").read_text())
    res["cross_domain"] = [{"dataset": "cifar10", "accuracy": 0.6714, "role": "source"},
                           {"dataset": "svhn", "accuracy": 0.1234, "role": "target"}]
    res["knn"] = [{"attack": "fgsm", "eps": 0.1, "knn_clean": 0.9, "knn_adversarial": 0.5, "head_clean": 0.91,
                   "head_adversarial": 0.2}]
    (base / "results.json").write_text(json.dumps(res))
    adv = run_factory(name="at-run", clean=0.0481)
    out = compare_runs([base, adv], tmp_path / "cmp.md", title="Table 2")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("### Table 2\n")
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    header = lines[0].split(" | ")
    assert header[:3] == ["| run", "defense", "clean"] and "pgd 0.03137 (8/255)" in header
    assert lines[2].startswith("| clean-run | none | 67.14 |") and lines[3].startswith("| at-run | pgd_at")
    assert all(ln.count("|") == lines[0].count("|") for ln in lines[:4])  # a well-formed table
    assert "| clean-run | none | 67.14 | 12.34 |" in text  # cross-domain: source first, then the target
    assert "| clean-run | fgsm 0.1 (25.5/255) | 90.00 | 50.00 | 91.00 | 20.00 |" in text
    with pytest.raises(RobustlabError):
        compare_runs([tmp_path / "nope"], tmp_path / "x.md")
