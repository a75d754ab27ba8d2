"""Run configs: every shipped config validates; bad keys and values are clear errors."""

from pathlib import Path

import pytest

from hamon_nnx import config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_configs_exist():
    names = {p.stem for p in CONFIGS}
    assert {"rbm-digits-16", "rbm-digits-64", "potts-digits-4", "ising-digits"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_validates(path):
    cfg = config.load_config(path)
    assert cfg.name == path.stem  # the file name is the run name (and the zoo name)
    assert cfg.description
    assert config.from_dict(config.to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "mapping, where, suggestion",
    [
        ({"trainig": {}}, "trainig", "training"),
        ({"training": {"learning_rat": 0.1}}, "training.learning_rat", "learning_rate"),
        ({"training": {"negative": {"n_chain": 8}}}, "training.negative.n_chain", "n_chains"),
        ({"data": {"levles": 3}}, "data.levles", "levels"),
        ({"evaluation": {"repeat": 2}}, "evaluation.repeat", "repeats"),
        ({"training": {"warmup_step": 10}}, "training.warmup_step", "warmup_steps"),
        ({"training": {"keep_bset": True}}, "training.keep_bset", "keep_best"),
        ({"training": {"schedul": "cosine"}}, "training.schedul", "schedule"),
    ],
)
def test_misspelt_key_suggests_the_right_one(mapping, where, suggestion):
    with pytest.raises(config.ConfigError) as info:
        config.from_dict({"name": "x", **mapping})
    message = str(info.value)
    assert message.startswith(f"{where}: unknown key")
    assert f"did you mean {suggestion!r}?" in message


def test_unknown_key_without_a_close_match_lists_the_keys():
    with pytest.raises(config.ConfigError, match="zzz: unknown key; known keys: name, "):
        config.from_dict({"name": "x", "zzz": 1})


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({"training": {"learning_rate": 0}}, r"training\.learning_rate: 0\.0 is out of range; "),
        ({"training": {"epochs": -3}}, r"training\.epochs: -3 is out of range; allowed \[1, "),
        ({"data": {"test_fraction": 1.5}}, r"data\.test_fraction: 1\.5 is out of range"),
        ({"data": {"threshold": 0}}, r"data\.threshold: 0\.0 is out of range; allowed \(0, 16\]"),
        ({"model": {"n_hidden": 0}}, r"model\.n_hidden: 0 is out of range"),
        ({"training": {"negative": {"n_chains": 1}}}, r"training\.negative\.n_chains: 1 is out"),
        (
            {"training": {"clip_norm": 0}},
            r"training\.clip_norm: 0\.0 is out of range; allowed \(0, ",
        ),
        ({"training": {"l2": 2}}, r"training\.l2: 2\.0 is out of range; allowed \[0, 1\]"),
        ({"training": {"l1": -1e-3}}, r"training\.l1: -0\.001 is out of range"),
        ({"training": {"warmup_steps": -5}}, r"training\.warmup_steps: -5 is out of range"),
        ({"training": {"patience": 0}}, r"training\.patience: 0 is out of range; allowed \[1, "),
        ({"training": {"eval_every": -1}}, r"training\.eval_every: -1 is out of range"),
    ],
)
def test_out_of_range_names_the_key(mapping, message):
    with pytest.raises(config.ConfigError, match=message):
        config.from_dict({"name": "x", **mapping})


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({"training": {"epochs": "ten"}}, r"training\.epochs: must be an integer, got 'ten'"),
        ({"model": {"n_hidden": 2.5}}, r"model\.n_hidden: must be an integer"),
        ({"model": {"init_from_data": "yes"}}, r"model\.init_from_data: must be true or false"),
        ({"training": {"learning_rate": float("nan")}}, r"learning_rate: must be finite"),
        ({"model": {"kind": "rmb"}}, r"model\.kind: 'rmb' is not one of .*did you mean 'rbm'\?"),
        ({"training": "fast"}, r"training: must be a mapping"),
        ({"training": {"centered": "yes"}}, r"training\.centered: must be true or false"),
        ({"training": {"keep_best": 1}}, r"training\.keep_best: must be true or false"),
        ({"training": {"patience": 2.5}}, r"training\.patience: must be an integer"),
        ({"training": {"clip_norm": "big"}}, r"training\.clip_norm: must be a number"),
        ({"training": {"schedule": "cosin"}}, r"'cosin' is not one of .*did you mean 'cosine'\?"),
        ({"training": {"eval_every": "aut"}}, r"eval_every: 'aut' is not one of 'auto'; did you"),
        ({"training": {"eval_every": [2]}}, r"eval_every: must be an integer or 'auto', got \[2\]"),
        ({"training": {"eval_every": True}}, r"eval_every: must be an integer or 'auto'"),
    ],
)
def test_wrong_types_and_choices(mapping, message):
    with pytest.raises(config.ConfigError, match=message):
        config.from_dict({"name": "x", **mapping})


def test_name_is_required_and_checked():
    with pytest.raises(config.ConfigError, match="name: missing"):
        config.from_dict({})
    with pytest.raises(config.ConfigError, match="name: 'a b'"):
        config.from_dict({"name": "a b"})
    with pytest.raises(config.ConfigError, match="config: must be a mapping"):
        config.from_dict(["name"])


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({"model": {"kind": "potts"}}, "a potts model needs categorical data"),
        ({"data": {"name": "digits_quantized"}}, "needs binary data"),
        ({"model": {"kind": "ising"}, "data": {"encoding": "binary"}}, "takes spins"),
        ({"training": {"negative": {"kind": "exact"}}, "model": {"n_hidden": 32}}, "> 24"),
        ({"evaluation": {"log_likelihood": "exact"}, "model": {"n_hidden": 64}}, "<= 24"),
        ({"model": {"kind": "categorical_rbm"}}, "a categorical_rbm model needs categorical"),
        ({"data": {"name": "fashion_mnist_quantized"}}, "fashion_mnist_quantized has 4 levels"),
        ({"data": {"name": "fashion_mnist", "threshold": 8}}, r"threshold must be in \(0, 1\]"),
        ({"data": {"name": "digits_quantized", "levels": 20}, "model": {"kind": "potts"}}, "17"),
        ({"training": {"schedule": "warmup_cosine"}}, "warmup_cosine needs warmup_steps >= 1"),
        (
            {"training": {"centered": True}, "model": {"kind": "ising"}},
            "centered gradient is an RBM",
        ),
        (
            {"training": {"centered": True, "negative": {"kind": "exact"}}},
            r"training\.centered: negative\.kind exact",
        ),
        ({"training": {"patience": 2}}, r"training\.patience: model selection .*eval_every"),
        ({"training": {"keep_best": True}}, r"training\.keep_best: model selection"),
        ({"training": {"keep_best": True, "eval_every": 30}}, "eval_every 30 > epochs 20"),
    ],
)
def test_inconsistent_combinations(mapping, message):
    with pytest.raises(config.ConfigError, match=message):
        config.from_dict({"name": "x", **mapping})


def test_load_config_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntraining:\n  epochs: [1\n")
    with pytest.raises(config.ConfigError, match=r"bad\.yaml: not valid YAML \(line"):
        config.load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: x\nmodel:\n  n_hiden: 4\n")
    with pytest.raises(config.ConfigError, match=r"typo\.yaml: model\.n_hiden: unknown key"):
        config.load_config(typo)
    with pytest.raises(FileNotFoundError, match="no config file"):
        config.load_config(tmp_path / "missing.yaml")


def test_threshold_defaults_per_data_set_and_round_trips():
    digits = config.from_dict({"name": "x"})
    fashion = config.from_dict({"name": "x", "data": {"name": "fashion_mnist"}})
    assert digits.data.threshold == digits.data.binary_threshold() == 8
    assert fashion.data.binary_threshold() == 0.5 and fashion.data.idx
    assert config.from_dict(config.to_dict(fashion)) == fashion  # null survives the round trip
    with pytest.raises(config.ConfigError, match="data.threshold: must be a number"):
        config.from_dict({"name": "x", "data": {"threshold": "high"}})


def test_defaults_and_output_dir(tmp_path):
    cfg = config.from_dict({"name": "run-1"})
    assert cfg.training.negative.kind == "pcd"
    assert cfg.output_dir() == Path("runs/run-1")
    assert cfg.output_dir(tmp_path) == tmp_path / "runs" / "run-1"


def test_training_recipes_default_off_and_round_trip():
    t = config.from_dict({"name": "x"}).training
    assert (t.schedule, t.warmup_steps, t.clip_norm, t.l1, t.l2) == ("none", 0, None, 0.0, 0.0)
    assert (t.centered, t.eval_every, t.patience, t.keep_best) == (False, 0, None, False)
    cfg = config.from_dict({
        "name": "x",
        "training": {"schedule": "warmup_cosine", "warmup_steps": 100, "clip_norm": 5,
                     "l1": 1e-5, "l2": 1e-4, "centered": True, "eval_every": "auto",
                     "patience": 4, "keep_best": True},
    })  # fmt: skip
    assert cfg.training.clip_norm == 5.0 and cfg.training.eval_every == "auto"
    assert config.from_dict(config.to_dict(cfg)) == cfg
    assert config.from_dict({"name": "x", "training": {"eval_every": 4.0}}).training.eval_every == 4
