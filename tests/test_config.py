import pytest

from robustlab.config import ClassificationConfig, EvalConfig, load_yaml, parse_config, parse_override, set_dotted
from robustlab.core.errors import RobustlabError


def test_defaults_resolve_to_every_field():
    cfg = parse_config({})
    resolved = cfg.resolved()
    assert resolved["data"]["dataset"] == "fashion-mnist"
    assert set(resolved) >= {"name", "seed", "data", "model", "train", "defense", "evaluate"}
    assert parse_config(resolved) == cfg  # the resolved form round-trips


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"data": {"datset": "x"}}, "unknown key 'data.datset'"),
        ({"trian": {}}, "unknown key 'trian'"),
        ({"train": {"epochs": -1}}, "train.epochs"),
        ({"train": {"lr": 0}}, "train.lr"),
        ({"data": {"batch_size": 0}}, "data.batch_size"),
        ({"data": {"val_fraction": 1.5}}, "data.val_fraction"),
        ({"evaluate": {"eps": [0.1, -0.2]}}, "eps must be >= 0"),
        ({"evaluate": {"steps": 0}}, "evaluate.steps"),
        ({"train": {"optimizer": "lbfgs"}}, "train.optimizer"),
    ],
)
def test_bad_values_name_the_key(data, needle):
    with pytest.raises(RobustlabError) as e:
        parse_config(data)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_malformed_yaml_gives_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("data:\n  dataset: [unclosed\n")
    with pytest.raises(RobustlabError, match="malformed YAML at line"):
        load_yaml(p)


def test_top_level_must_be_mapping(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(RobustlabError, match="mapping"):
        load_yaml(p)


def test_overrides():
    raw: dict = {}
    key, value = parse_override("train.lr=0.01")
    set_dotted(raw, key, value)
    set_dotted(raw, *parse_override("evaluate.eps=[0.1, 0.2]"))
    cfg = parse_config(raw)
    assert cfg.train.lr == 0.01 and cfg.evaluate.eps == [0.1, 0.2]
    with pytest.raises(RobustlabError, match="key=value"):
        parse_override("train.lr")


def test_eval_config_forbids_unknown():
    with pytest.raises(RobustlabError, match="unknown key 'attackz'"):
        parse_config({"attackz": []}, model=EvalConfig)
    assert isinstance(ClassificationConfig().evaluate, EvalConfig)
