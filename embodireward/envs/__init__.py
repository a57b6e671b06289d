"""Vector envs: the :class:`VecEnv` contract and the built-in envs (imported to register them)."""
from embodireward.envs.base import Frames, VecEnv, merge_render_requests
from embodireward.envs import gymnasium_env, maniskill, push_cube_2d  # noqa: F401  (run the @register_env decorators)

__all__ = ["Frames", "VecEnv", "merge_render_requests"]
