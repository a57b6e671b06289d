"""The ``maniskill`` env's JSON config, ManiSkill's task registry and its asset check."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Literal, Optional

from embodireward.config import ConfigError, config_error, join_path
from embodireward.registry import closest_name

# gym.make kwargs that the config sets; env_kwargs must not repeat them
RESERVED_KWARGS = ("num_envs", "obs_mode", "control_mode", "reward_mode", "sim_backend", "render_backend", "sensor_configs", "max_episode_steps")
NOT_METRICS = ("elapsed_steps",)


@dataclass
class CameraConfig:
    key: str = "base_camera"  # a sensor camera of the task
    width: int = 128
    height: int = 128


@dataclass
class ManiSkillConfig:
    env_id: str
    num_envs: int = 16
    obs_mode: Literal["state", "rgb"] = "state"
    control_mode: str = "pd_joint_delta_pos"
    reward_mode: Literal["sparse", "dense", "normalized_dense", "none"] = "normalized_dense"
    sim_backend: Literal["auto", "gpu", "cpu"] = "auto"
    camera: CameraConfig = field(default_factory=CameraConfig)
    show_goal: bool = True
    max_episode_steps: Optional[int] = None
    env_kwargs: Dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        if self.num_envs < 1:
            raise config_error(path, "num_envs", f"must be >= 1, got {self.num_envs}")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise config_error(path, "max_episode_steps", f"must be >= 1 or null, got {self.max_episode_steps}")
        if min(self.camera.width, self.camera.height) < 1:
            raise config_error(path, "camera", f"width and height must be >= 1, got {self.camera.width}x{self.camera.height}")
        for name in self.env_kwargs:
            if name in RESERVED_KWARGS:
                raise config_error(path, f"env_kwargs.{name}", "set by the adapter's own config keys")
        registered = registered_envs(join_path(path, "env_id"))
        if self.env_id not in registered:
            hint = closest_name(self.env_id, registered)
            raise config_error(path, "env_id", f"unknown ManiSkill env {self.env_id!r}" + (f" (did you mean {hint!r}?)" if hint else ""))


def registered_envs(path: str) -> Dict[str, Any]:
    """ManiSkill's env specs by id (importing mani_skill registers its tasks)."""
    from embodireward.envs.vulkan import select_lavapipe_without_gpu

    select_lavapipe_without_gpu()  # before SAPIEN is imported
    try:
        import mani_skill.envs  # noqa: F401
        from mani_skill.utils.registration import REGISTERED_ENVS
    except ImportError as exc:
        raise ConfigError(path, f"needs ManiSkill3: pip install mani-skill ({exc})") from None
    return REGISTERED_ENVS


def check_assets(env_id: str) -> None:
    """Fail clearly instead of ManiSkill's interactive download prompt (which hangs CI and workers)."""
    from mani_skill.utils import assets
    from mani_skill.utils.registration import REGISTERED_ENVS

    if os.environ.get("MS_SKIP_ASSET_DOWNLOAD_PROMPT") == "1":  # ManiSkill then downloads without asking
        return
    sources = [
        source
        for asset_id in REGISTERED_ENVS[env_id].asset_download_ids or []
        for source in ([asset_id] if asset_id in assets.DATA_SOURCES else assets.expand_data_group_into_individual_data_source_ids(asset_id))
    ]
    missing = [source for source in sources if not assets.is_data_source_downloaded(source)]
    if missing:
        raise RuntimeError(
            f"ManiSkill env {env_id} needs assets that are not downloaded ({', '.join(missing)}): run "
            f"`python -m mani_skill.utils.download_asset {env_id}` or set MS_SKIP_ASSET_DOWNLOAD_PROMPT=1"
        )
