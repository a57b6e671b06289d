"""The plugin examples of the README run as written: a callback in a training run, a reward model
saved, reloaded and scored."""
import re

import torch

from embodireward.config import parse_train_config
from embodireward.registry import CALLBACKS, REWARD_MODELS
from tests.conftest import REPO_ROOT, tiny_train_config


def readme_example(heading: str) -> str:
    """The first ```python block after ``heading`` in README.md."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_callback_example_counts_successes_and_keeps_its_state(tmp_path):
    from embodireward.trainer.trainer import Trainer

    plugin = tmp_path / "success_counter.py"
    plugin.write_text(readme_example("### Writing a callback"))
    config = tiny_train_config(tmp_path, iterations=2)
    config["env"]["cfg"]["goal_radius"] = 0.45  # many episodes succeed without learning
    config.update(plugins=[str(plugin)], callbacks=[{"name": "success_counter", "cfg": {"every": 5}}])
    trainer = Trainer(parse_train_config(config))
    trainer.train()
    counter = trainer.callbacks.callbacks[0]
    assert counter.cfg.every == 5 and counter.successes > 0
    assert trainer.callbacks.progress() == {"successes": counter.successes}
    fresh = CALLBACKS.get("success_counter")(counter.cfg, None)
    fresh.load_state_dict(counter.state_dict())
    assert fresh.successes == counter.successes


def test_reward_model_example_round_trips_through_its_checkpoint(tmp_path):
    from embodireward.rewards import load_reward_model, save_reward_model

    namespace = {}
    exec(compile(readme_example("### Writing a reward model"), "README", "exec"), namespace)
    model = REWARD_MODELS.get("tiny_cnn_reward")(namespace["TinyCNNReward"].Config())
    images = torch.randint(0, 256, (5, 48, 48, 3), dtype=torch.uint8)  # resized to 64 x 64 by preprocess
    probs = model.eval().compute_reward(images)
    assert probs.shape == (5,) and bool(((probs > 0) & (probs < 1)).all())
    save_reward_model(model, tmp_path / "rm")
    loaded = load_reward_model(tmp_path / "rm")
    assert torch.allclose(loaded.compute_reward(images), probs)
