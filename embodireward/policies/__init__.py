"""Policies: the ``Policy`` interfaces and the registered ``actor_critic`` and ``squashed_gaussian``."""
from embodireward.policies.base import ActorCriticPolicy, ActorQPolicy, Policy
from embodireward.policies.actor_critic import ActorCritic
from embodireward.policies.squashed_gaussian import SquashedGaussianPolicy

__all__ = ["Policy", "ActorCriticPolicy", "ActorQPolicy", "ActorCritic", "SquashedGaussianPolicy"]
