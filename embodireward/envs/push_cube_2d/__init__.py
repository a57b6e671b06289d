"""push_cube_2d: the built-in batched 2D pushing task, and its distractor and decoy-goal variants that expose reward hacking."""
from embodireward.envs.push_cube_2d.config import TABLE_HALF_SIZE, PushCube2DConfig
from embodireward.envs.push_cube_2d.decoy import PushCube2DDecoy, PushCube2DDecoyConfig
from embodireward.envs.push_cube_2d.distractor import PushCube2DDistractor, PushCube2DDistractorConfig
from embodireward.envs.push_cube_2d.env import STATE_DIM, PushCube2D  # STATE_DIM: of push_cube_2d; the distractor variant adds 6
from embodireward.envs.push_cube_2d.physics import box_contact
from embodireward.envs.push_cube_2d.render import CUBE, DECOY_GOAL, DISTRACTOR, GOAL, GOAL_REACHED, PALETTE, PUSHER, TABLE

__all__ = ["TABLE_HALF_SIZE", "PushCube2DConfig", "PushCube2D", "PushCube2DDistractor", "PushCube2DDistractorConfig", "PushCube2DDecoy", "PushCube2DDecoyConfig",
           "box_contact", "PALETTE", "TABLE", "GOAL", "CUBE", "PUSHER", "GOAL_REACHED", "DISTRACTOR", "DECOY_GOAL", "STATE_DIM"]
