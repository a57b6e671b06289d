"""The project's fault matrix: bad input and a hostile file system, each a one-line error.

Every case runs one command the way its console script does and asserts: the exit status, one
stderr line starting ``error:`` and no traceback, the offending key or file named in it, and that
every file present before the call has the same hash afterwards. A failed start ("start") must
also create nothing; a fault during the run ("run") must leave everything written earlier intact.
Read-only and full-disk cases mount real tmpfs file systems (root only: CI runs as root).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import pytest

from tests.conftest import tiny_train_config
from tests.faults import can_mount, fill, invoke, tmpfs, tree_hashes

REPO_ROOT = Path(__file__).resolve().parent.parent


class Workspace:
    """A temp directory with a tiny push_cube_2d config and helpers to break things in it."""

    def __init__(self, root: Path):
        self.root = root
        self.config = tiny_train_config(root)
        self.config["runtime"]["run_dir"] = None
        self.config["runtime"]["output_dir"] = str(root / "outputs")

    def write(self, name: str, data) -> str:
        path = self.root / name
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return str(path)

    def config_file(self, **sections) -> str:
        config = json.loads(json.dumps(self.config))
        for key, value in sections.items():
            config[key] = value
        return self.write("config.json", config)

    def finished_run(self, **runtime) -> Path:
        """A real run directory (2 iterations) to resume from."""
        config = json.loads(json.dumps(self.config))
        config["runtime"].update(run_dir=str(self.root / "run"), **runtime)
        code, err = invoke("train", ["--config", self.write("run_config.json", config)])
        assert code == 0, err
        return self.root / "run"

    def mount(self, name: str, size_kib: int = 512, read_only: bool = False) -> Path:
        reason = can_mount()
        if reason is not None:
            pytest.skip(reason)
        self._mounts.append(tmpfs(self.root / name, size_kib, read_only))
        return self._mounts[-1].__enter__()

    _mounts: list = []


@dataclass
class Case:
    id: str
    build: Callable[[Workspace], List[str]]  # prepares files, returns the argv
    names: str  # what the error line must name (the key or file); "{root}" is the workspace
    command: str = "train"
    exit_code: int = 2
    kind: str = "start"  # "start": creates nothing; "run": keeps what existed
    extra: Optional[Callable[[Workspace], None]] = field(default=None)  # more checks after the call


def train_args(w: Workspace, *sets: str, config: Optional[dict] = None) -> List[str]:
    path = w.write("config.json", config) if config is not None else w.config_file()
    return ["--config", path, *[arg for item in sets for arg in ("--set", item)]]


def with_config(mutate: Callable[[dict], None]) -> Callable[[Workspace], List[str]]:
    def build(w: Workspace) -> List[str]:
        config = json.loads(json.dumps(w.config))
        mutate(config)
        return train_args(w, config=config)
    return build


def sets(*items: str) -> Callable[[Workspace], List[str]]:
    return lambda w: train_args(w, *items)


def plugin(source: str) -> Callable[[Workspace], str]:
    return lambda w: w.write("bad_plugin.py", source)


CASES: List[Case] = [
    # -- the config file and the command line
    Case("config missing", lambda w: ["--config", str(w.root / "nope.json")], "nope.json"),
    Case("config is a directory", lambda w: ["--config", str(w.root)], "is a directory"),
    Case("config invalid JSON", lambda w: ["--config", w.write("c.json", '{"runtime": {"seed": 1,}}')], "invalid JSON at line 1"),
    Case("config top level not an object", lambda w: ["--config", w.write("c.json", "[1, 2]")], "top level must be a JSON object"),
    Case("config not UTF-8", lambda w: ["--config", w.write("c.json", "") and str(_write_bytes(w.root / "c.json", b"\xff\xfe{"))], "c.json"),
    Case("--set without =", sets("runtime.seed"), "expected KEY=VALUE"),
    Case("--set with an empty key", sets("=3"), "--set"),
    Case("--set with an empty key part", sets("runtime..seed=3"), "--set"),
    Case("--set into a number", sets("runtime.seed.x=3"), "runtime.seed"),
    Case("--set list index out of range", sets("policy.actor.hidden_sizes.5=3"), "policy.actor.hidden_sizes"),
    Case("--force on a single run", lambda w: train_args(w) + ["--force"], "--force"),
    # -- unknown or ill-typed keys
    Case("unknown top-level section", with_config(lambda c: c.update(rewards={})), "rewards: unknown key (did you mean reward?)"),
    Case("typo in algorithm cfg", sets("algorithm.cfg.learning_rat=0.1"), "algorithm.cfg.learning_rat"),
    Case("typo in env cfg", sets("env.cfg.num_env=3"), "env.cfg.num_env"),
    Case("string for an integer", sets("runtime.iterations=many"), "runtime.iterations"),
    Case("float for an integer", sets("runtime.rollout_steps=2.5"), "runtime.rollout_steps"),
    Case("boolean for a number", sets("algorithm.cfg.gamma=true"), "algorithm.cfg.gamma"),
    Case("missing env section", with_config(lambda c: c.pop("env")), "env: missing required key"),
    Case("env without id", with_config(lambda c: c["env"].pop("id")), "env.id"),
    Case("unknown env", sets("env.id=push_cub_2d"), "env.id"),
    Case("unknown policy", sets("policy.name=actorcritic"), "policy.name"),
    Case("unknown algorithm", sets("algorithm.name=ppo2"), "algorithm.name"),
    Case("unknown callback", with_config(lambda c: c.update(callbacks=[{"name": "reward_data_colection"}])), "callbacks[0].name"),
    Case("bad obs_mode", sets("env.cfg.obs_mode=depth"), "env.cfg.obs_mode"),
    Case("bad activation", sets("policy.actor.activation=relux"), "policy.actor.activation"),
    Case("bad network type", sets("policy.critic.type=transformer"), "policy.critic.type"),
    Case("malformed conv layer", with_config(lambda c: c["policy"]["actor"].update(type="cnn", conv_layers=[[32, 8]])), "policy.actor.conv_layers[0]"),
    Case("bad device", sets("runtime.device=gpu0"), "runtime.device"),
    Case("resume and init_from together", sets("runtime.resume=x", "runtime.init_from=y"), "runtime.init_from"),
    # -- numbers: NaN, infinities, ranges, impossible sizes
    Case("NaN learning rate", sets("algorithm.cfg.learning_rate=NaN"), "algorithm.cfg.learning_rate"),
    Case("NaN max_grad_norm", sets("algorithm.cfg.max_grad_norm=NaN"), "algorithm.cfg.max_grad_norm"),
    Case("infinite clip_coef", sets("algorithm.cfg.clip_coef=Infinity"), "algorithm.cfg.clip_coef"),
    Case("-inf env speed", sets("env.cfg.max_speed=-Infinity"), "env.cfg.max_speed"),
    Case("NaN reward threshold", sets("reward.threshold=NaN"), "reward.threshold"),
    Case("zero learning rate", sets("algorithm.cfg.learning_rate=0"), "algorithm.cfg.learning_rate"),
    Case("gamma above 1", sets("algorithm.cfg.gamma=1.5"), "algorithm.cfg.gamma"),
    Case("negative iterations", sets("runtime.iterations=-1"), "runtime.iterations"),
    Case("zero envs", sets("env.cfg.num_envs=0"), "env.cfg.num_envs"),
    Case("1e12 envs", sets("env.cfg.num_envs=1e12"), "env.cfg"),
    Case("hidden layer of 1e9 units", sets("policy.actor.hidden_sizes=[1e9]"), "policy"),
    Case("rollout buffer larger than memory", sets("runtime.rollout_steps=1e9"), "runtime.rollout_steps"),
    Case("more minibatches than transitions", sets("algorithm.cfg.num_minibatches=100000"), "algorithm.cfg.num_minibatches"),
    Case("tiny image size", sets("env.cfg.image_size=0"), "env.cfg.image_size"),
    # -- plugins and user components
    Case("plugin file missing", with_config(lambda c: c.update(plugins=["missing_plugin.py"])), "plugins[0]"),
    Case("plugin module missing", with_config(lambda c: c.update(plugins=["no_such_module_xyz"])), "plugins[0]"),
    Case("plugin raises on import", lambda w: train_args(w, config={**w.config, "plugins": [plugin("raise RuntimeError('boom')")(w)]}), "plugins[0]"),
    Case("callback constructor raises", lambda w: train_args(w, config={**w.config, "plugins": [plugin(
        "from embodireward import register_callback\nfrom embodireward.trainer import Callback\n"
        "@register_callback('fm_broken', override=True)\nclass Broken(Callback):\n"
        "    def __init__(self, cfg, trainer):\n        raise ValueError('no such sensor')\n")(w)],
        "callbacks": [{"name": "fm_broken"}]}), "callbacks[0]"),
    Case("policy without the methods PPO calls", lambda w: train_args(w, config={**w.config, "plugins": [plugin(
        "from embodireward import register_policy\nfrom embodireward.policies import Policy\n"
        "@register_policy('fm_act_only', override=True)\nclass ActOnly(Policy):\n"
        "    def __init__(self, section, obs_space, action_space):\n        super().__init__()\n")(w)],
        "policy": {"name": "fm_act_only"}}), "policy.name"),
    # -- gymnasium envs
    Case("unknown gymnasium id", with_config(lambda c: c.update(env={"id": "gymnasium", "cfg": {"env_id": "NoSuchEnv-v9"}})), "env.cfg.env_id"),
    Case("discrete-action gymnasium env", with_config(lambda c: c.update(env={"id": "gymnasium", "cfg": {"env_id": "CartPole-v1", "num_envs": 2}})), "env"),
    Case("collection on an env without success", with_config(lambda c: c.update(
        env={"id": "gymnasium", "cfg": {"env_id": "Pendulum-v1", "num_envs": 2}}, callbacks=[{"name": "reward_data_collection"}])), "reward_data_collection: env 'gymnasium' reports no success"),
    # -- the learned-reward hook
    Case("reward model without checkpoint", sets("reward.use_reward_model=true"), "reward.checkpoint_path"),
    Case("reward checkpoint missing", sets("reward.use_reward_model=true", "reward.checkpoint_path=/nonexistent/best_model.safetensors"), "/nonexistent/best_model.safetensors"),
    Case("reward checkpoint wrong suffix", sets("reward.use_reward_model=true", "reward.checkpoint_path=/tmp/model.bin"), "model.bin"),
    Case("reward sidecar corrupt", lambda w: train_args(w, "reward.use_reward_model=true", f"reward.checkpoint_path={_broken_reward_model(w)}"), "best_model.json"),
    # -- output locations
    Case("output_dir is a file", lambda w: train_args(w, f"runtime.output_dir={w.write('a_file', 'x')}"), "a_file"),
    Case("run_dir below a file", lambda w: train_args(w, f"runtime.run_dir={w.write('a_file', 'x')}/run"), "a_file"),
    Case("run_dir already holds a run", lambda w: train_args(w, f"runtime.run_dir={w.finished_run()}"), "runtime.run_dir"),
    Case("output_dir read-only", lambda w: train_args(w, f"runtime.output_dir={w.mount('ro', read_only=True)}/out"), "read-only"),
    Case("output_dir on a full disk", lambda w: train_args(w, f"runtime.output_dir={_full_disk(w)}/out"), "no space left"),
    # -- checkpoints: resume and init_from
    Case("resume path missing", sets("runtime.resume=/nonexistent/run"), "/nonexistent/run"),
    Case("resume dir without checkpoint", lambda w: train_args(w, f"runtime.resume={w.root}"), "no checkpoints/latest.pt"),
    Case("resume truncated checkpoint", lambda w: train_args(w, f"runtime.resume={_truncate(w.finished_run() / 'checkpoints' / 'latest.pt')}"), "latest.pt"),
    Case("resume with another env's config", lambda w: train_args(w, f"runtime.resume={w.finished_run()}", "env.cfg.obs_mode=state+rgb"), "env.cfg.obs_mode"),
    Case("resume with more envs", lambda w: train_args(w, f"runtime.resume={w.finished_run()}", "env.cfg.num_envs=32"), "env.cfg.num_envs 16 -> 32"),
    Case("resume with another learning rate", lambda w: train_args(w, f"runtime.resume={w.finished_run()}", "algorithm.cfg.learning_rate=0.1"), "algorithm.cfg.learning_rate 0.0003 -> 0.1"),
    Case("resume a file that is no checkpoint", lambda w: train_args(w, f"runtime.resume={w.write('fake.pt', 'not a checkpoint')}"), "fake.pt"),
    Case("init_from missing", sets("runtime.init_from=/nonexistent/latest.pt"), "/nonexistent/latest.pt"),
    Case("init_from shape mismatch", lambda w: train_args(w, f"runtime.init_from={w.finished_run() / 'checkpoints' / 'latest.pt'}", "policy.actor.hidden_sizes=[64,64]"), "actor_encoder.net.0.weight"),
    # -- a fault during the run: the disk fills up
    Case("disk fills during training", lambda w: train_args(w, f"runtime.run_dir={_nearly_full_disk(w)}/run", "runtime.iterations=50",
                                                             "policy.actor.hidden_sizes=[256,256]"),
         "no space left on device", exit_code=1, kind="run", extra=lambda w: _previous_checkpoint_loads(w)),
    # -- list
    Case("list plugin file missing", lambda w: ["--plugin", str(w.root / "missing.py")], "missing.py", command="list"),
    Case("list plugin raises", lambda w: ["--plugin", plugin("raise RuntimeError('boom')")(w)], "bad_plugin.py", command="list"),
]


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:100])
    return path


def _broken_reward_model(w: Workspace) -> Path:
    folder = w.root / "rm"
    folder.mkdir()
    (folder / "best_model.safetensors").write_bytes(b"\0" * 16)
    (folder / "best_model.json").write_text("{not json")
    return folder / "best_model.safetensors"


def _full_disk(w: Workspace) -> Path:
    disk = w.mount("full", size_kib=256)
    fill(disk, leave_kib=16)
    return disk


def _nearly_full_disk(w: Workspace) -> Path:
    # room for the start (config, logs, the first checkpoints) but not for 50 iterations of checkpoints
    return w.mount("small", size_kib=1200)


def _previous_checkpoint_loads(w: Workspace) -> None:
    from embodireward.trainer.checkpoint import load_checkpoint

    state = load_checkpoint(w.root / "small" / "run")
    assert state["iteration"] >= 1
    assert not list((w.root / "small" / "run").rglob("*.tmp"))  # the failed write cleaned up after itself


@pytest.fixture
def workspace(tmp_path):
    w = Workspace(tmp_path)
    w._mounts = []
    yield w
    for mount in reversed(w._mounts):
        mount.__exit__(None, None, None)


def test_matrix_has_at_least_60_cases():
    assert len(CASES) >= 60 and len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_fault(case: Case, workspace: Workspace):
    argv = case.build(workspace)
    before = tree_hashes(workspace.root)
    code, stderr = invoke(case.command, argv)
    after = tree_hashes(workspace.root)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert case.names.format(root=workspace.root) in lines[0], lines[0]
    assert code == case.exit_code, lines[0]
    if case.kind == "start":
        assert after == before, f"a failed start changed files: {sorted(set(after.items()) ^ set(before.items()))[:5]}"
    else:
        changed = [path for path, digest in before.items() if after.get(path) != digest and not path.endswith("/")]
        assert not changed, f"files written before the fault changed: {changed[:5]}"
    if case.extra is not None:
        case.extra(workspace)
    print(f"{case.id}: {lines[0]}")


def test_tensorboard_on_a_full_disk_is_a_one_line_error(workspace):
    from embodireward.trainer.logger import Logger
    from embodireward.utils.io import FileSystemError

    disk = workspace.mount("tb", size_kib=64)
    logger = Logger(disk / "logs")
    with pytest.raises(FileSystemError, match=r"^cannot write '.*/logs': no space left on device$"):
        for step in range(200_000):
            logger.add_scalar("a/b", float(step), step)
            if step % 1000 == 0:
                logger.flush()
