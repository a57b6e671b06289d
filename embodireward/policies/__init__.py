"""Policies: the ``Policy`` interfaces and the registered ``actor_critic``."""
from embodireward.policies.base import ActorCriticPolicy, Policy
from embodireward.policies.actor_critic import ActorCritic

__all__ = ["Policy", "ActorCriticPolicy", "ActorCritic"]
