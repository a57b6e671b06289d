"""embodireward: JSON-configured, registry-based robot RL with learned reward models."""
from embodireward.registry import (register_algo, register_callback, register_env, register_labeller, register_policy,
                                   register_reward_model)

__version__ = "0.1.0"
__all__ = ["register_env", "register_policy", "register_algo", "register_reward_model", "register_callback", "register_labeller",
           "__version__"]
