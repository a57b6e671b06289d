"""The package's own components: importing their modules runs their ``@register_*`` decorators.

Kept apart from ``registry`` so that the registry knows nothing of its users: envs, policies,
algorithms, callbacks, reward models and labellers import the registry, never the other way round.
"""


def load_builtin_components() -> None:
    """Import the package's own component modules so their decorators run."""
    import embodireward.algos  # noqa: F401
    import embodireward.collection  # noqa: F401
    import embodireward.envs  # noqa: F401
    import embodireward.policies  # noqa: F401
    import embodireward.rewards  # noqa: F401
    import embodireward.rewards.refresh  # noqa: F401  (labellers)
    import embodireward.trainer.early_stopping  # noqa: F401
