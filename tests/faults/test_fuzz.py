"""Fuzzing the config loader and the CLI: bad input never reaches the user as a traceback."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustlab.cli import main
from robustlab.config import ExperimentConfig, load_yaml, parse_config
from robustlab.core.errors import RobustlabError

KEYS = ["data", "model", "train", "defense", "evaluate", "seed", "name", "dataset", "epochs", "lr", "eps",
        "batch_size", "val_fraction", "steps", "attacks", "optimizer", "options", "params", "bogus"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.lists(st.floats(-1, 2), max_size=3))
trees = st.recursive(scalars, lambda inner: st.dictionaries(st.sampled_from(KEYS), inner, max_size=4), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), trees, max_size=5))
def test_config_loader_only_raises_one_line_errors(data):
    try:
        cfg = parse_config(data)
    except RobustlabError as e:
        assert "\n" not in str(e) and str(e)
    else:
        assert isinstance(cfg, ExperimentConfig)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_yaml_loader_only_raises_one_line_errors(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text, encoding="utf-8")
    try:
        load_yaml(p)
    except RobustlabError as e:
        assert "\n" not in str(e)


OPTIONS = {
    "--dataset": st.sampled_from(["digits", "nope", "", "cifar10", "DIGITS"]),
    "--model": st.sampled_from(["small_cnn", "nope", "vit", "resnet18_cifar"]),
    "--seed": st.sampled_from(["1", "-3", "x", "1e9"]),
    "--lr": st.sampled_from(["0.1", "0", "-1", "nan", "abc"]),
    "--batch-size": st.sampled_from(["8", "0", "-2", "1.5"]),
    "--optimizer": st.sampled_from(["sgd", "adam", "rmsprop"]),
    "--schedule": st.sampled_from(["cosine", "none", "weird"]),
    "--defense": st.sampled_from(["none", "fgsm-rs", "nope", "pgd-at"]),
    "--eps": st.sampled_from(["0.1", "8/255", "-0.1", "x", "1/0"]),
    "--val-fraction": st.sampled_from(["0.1", "1.5", "-0.2"]),
    "--amp": st.sampled_from(["none", "bf16", "fp16", "fp8"]),
    "--device": st.sampled_from(["cpu", "cuda", "tpu", "auto"]),
    "--set": st.sampled_from(["train.lr=0.01", "nokey", "train.bogus=1", "data.batch_size=[1]", "x.y.z=3"]),
    "--label-smoothing": st.sampled_from(["0.1", "1.0", "-1"]),
    "--bogus-flag": st.just("1"),
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(sorted(OPTIONS)), st.just(None), max_size=4).flatmap(
    lambda d: st.fixed_dictionaries({k: OPTIONS[k] for k in d})))
def test_cli_arguments_never_show_a_traceback(tmp_path, capsys, opts):
    args = ["train", "--smoke", "--epochs", "0", "--quiet", "--out", str(tmp_path / uuid.uuid4().hex)]
    for k, v in opts.items():
        args += [k, v]
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code or 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 2), (args, err)
    if code == 2:
        lines = [ln for ln in err.strip().splitlines() if ln.startswith("robustlab: error")]
        assert len(lines) == 1, err


@pytest.mark.parametrize("command", [["evaluate", "nowhere"], ["report", "nowhere"], ["explain", "nowhere"],
                                     ["compare", "a", "b"], ["run", "missing.yaml"], ["attacks", "--bogus"]])
def test_other_commands_bad_paths(command, capsys):
    with pytest.raises(SystemExit) as e:
        main(command)
    assert e.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
