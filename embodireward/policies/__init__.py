"""Policies: the ``Policy`` interface and the registered ``actor_critic``."""
from embodireward.policies.base import Policy
from embodireward.policies.actor_critic import ActorCritic

__all__ = ["Policy", "ActorCritic"]
