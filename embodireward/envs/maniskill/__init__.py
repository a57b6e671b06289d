"""ManiSkill3 tasks (``PickCube-v1``, ``PushCube-v1``, ...) as a :class:`VecEnv`.

JSON (``env`` section; ``env_id`` is required, every other key has the default shown)::

    {"id": "maniskill", "cfg": {
        "env_id": "PickCube-v1",
        "num_envs": 16,
        "obs_mode": "state",                  # "state" | "rgb", see below
        "control_mode": "pd_joint_delta_pos",
        "reward_mode": "normalized_dense",    # ManiSkill's: sparse | dense | normalized_dense | none
        "sim_backend": "auto",                # "auto" (gpu when CUDA is available) | "gpu" | "cpu"
        "camera": {"key": "base_camera", "width": 128, "height": 128},
        "show_goal": true,                    # show goal markers the task hides from cameras (PickCube's goal_site)
        "max_episode_steps": null,            # null: the task's registered limit (50 for PickCube)
        "env_kwargs": {}}}                    # extra ManiSkill gym.make kwargs

Observations: ``state`` gives float ``[N, D]``; ``rgb`` gives ``{"rgb": uint8 [N, H, W, 3],
"state": float [N, D]}``, the image of ``camera`` plus ManiSkill's agent/extra state flattened.
Frames (``info["frames"]``, ``render_frames()``) come from ``camera``: rendered only when a step
asks for them under ``state``, taken from the observation under ``rgb``. ``show_goal`` applies to
both, so a reward model and an image policy see the same scene. ``info["success"]`` is ManiSkill's
bool success; ``info["metrics"]`` holds its other per-env info values (success, fail, is_grasped,
is_obj_placed, ...) as floats.

Backends: GPU simulation runs all envs batched in one ManiSkill env in this process. CPU
simulation runs one env in-process when ``num_envs`` is 1, else one env per worker process
(gymnasium's AsyncVectorEnv, as ManiSkill recommends for CPU). Both run :class:`_Core`, which
steps, renders the requested frames and auto-resets finished envs, so terminal frames are
rendered before the reset wherever the simulation lives. Time limits come out as truncation.

Worker processes start through multiprocessing's forkserver (forking would copy this process'
Vulkan/CUDA state), so a script that builds a CPU env with ``num_envs > 1`` needs the usual
``if __name__ == "__main__":`` guard. Rendering needs a Vulkan device (see
:mod:`embodireward.envs.vulkan`); mani_skill and SAPIEN are imported only when this env is used.
"""
from embodireward.envs.maniskill.config import CameraConfig, ManiSkillConfig, registered_envs
from embodireward.envs.maniskill.env import ManiSkillVecEnv

__all__ = ["CameraConfig", "ManiSkillConfig", "ManiSkillVecEnv", "registered_envs"]
