
import pytest

from embodireward.config import ConfigError, apply_overrides, parse_train_config
from tests.conftest import run_module, write_json


def test_unknown_key_suggests_the_closest_key(tiny_config):
    tiny_config["runtime"]["seeed"] = 1
    with pytest.raises(ConfigError, match=r"^runtime.seeed: unknown key \(did you mean seed\?\)$"):
        parse_train_config(tiny_config)


def test_overrides_are_applied_before_validation(tiny_config):
    data = apply_overrides(tiny_config, ["algorithm.cfg.learning_rate=1e-4", "runtime.seed=3", "runtime.exp_name=abc"])
    config = parse_train_config(data)
    assert config.runtime.seed == 3 and config.runtime.exp_name == "abc"
    assert data["algorithm"]["cfg"]["learning_rate"] == 1e-4


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["algorithm"]["cfg"].update(learning_rat=0.1), "error: algorithm.cfg.learning_rat: unknown key (did you mean learning_rate?)"),
    (lambda c: c["runtime"].update(iterations="many"), "error: runtime.iterations: expected an integer, got 'many'"),
    (lambda c: c["env"].update(id="push_cub_2d"), "error: env.id: unknown env 'push_cub_2d' (did you mean 'push_cube_2d'?)"),
    (lambda c: c["env"]["cfg"].update(obs_mode="depth"), "error: env.cfg.obs_mode: expected one of 'state', 'rgb', 'state+rgb', got 'depth'"),
    (lambda c: c["policy"]["actor"].update(activation="relux"), "error: policy.actor.activation: unknown activation 'relux' (did you mean 'relu'?)"),
    (lambda c: c["policy"]["actor"].update(type="transformer"), "error: policy.actor.type: expected one of 'mlp', 'cnn', got 'transformer'"),
    (lambda c: c.pop("env") and c.update(env={"cfg": {}}), "error: env.id: missing required key (string)"),
    (lambda c: c.update(plugins=["no_such_module_xyz"]), "error: plugins[0]: plugin module 'no_such_module_xyz' not found"),
    (lambda c: c.update(callbacks=[{"name": "reward_data_colection"}]), "error: callbacks[0].name: unknown callback 'reward_data_colection' (did you mean 'reward_data_collection'?)"),
])
def test_bad_config_exits_2_with_one_line(tmp_path, tiny_config, mutate, expected):
    mutate(tiny_config)
    result = run_module("embodireward.train", "--config", str(write_json(tmp_path / "c.json", tiny_config)))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected), lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # nothing started


def test_bad_json_syntax_names_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"runtime": {"seed": 1,}}')
    result = run_module("embodireward.train", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: {path}: invalid JSON at line 1 column")
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_config_file(tmp_path):
    result = run_module("embodireward.train", "--config", str(tmp_path / "nope.json"))
    assert result.returncode == 2 and "not found" in result.stderr


def test_bad_set_override(tmp_path, tiny_config):
    result = run_module("embodireward.train", "--config", str(write_json(tmp_path / "c.json", tiny_config)), "--set", "runtime.seed")
    assert result.returncode == 2 and "expected KEY=VALUE" in result.stderr
