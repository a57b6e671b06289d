"""push_cube_2d: the built-in batched 2D pushing task, and its distractor variant that exposes reward hacking."""
from embodireward.envs.push_cube_2d.config import TABLE_HALF_SIZE, PushCube2DConfig
from embodireward.envs.push_cube_2d.distractor import PushCube2DDistractor, PushCube2DDistractorConfig
from embodireward.envs.push_cube_2d.env import STATE_DIM, PushCube2D  # STATE_DIM: of push_cube_2d; the distractor variant adds 6
from embodireward.envs.push_cube_2d.physics import box_contact
from embodireward.envs.push_cube_2d.render import CUBE, DISTRACTOR, GOAL, GOAL_REACHED, PALETTE, PUSHER, TABLE

__all__ = ["TABLE_HALF_SIZE", "PushCube2DConfig", "PushCube2D", "PushCube2DDistractor", "PushCube2DDistractorConfig",
           "box_contact", "PALETTE", "TABLE", "GOAL", "CUBE", "PUSHER", "GOAL_REACHED", "DISTRACTOR", "STATE_DIM"]
