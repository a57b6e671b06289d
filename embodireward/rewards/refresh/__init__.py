"""Online refresh of the learned reward (``reward.refresh``): label what the policy produces now,
fine-tune the model on it, swap it in. Importing this package registers the built-in labellers
(``env_success``, ``vice``, ``queue``); see :mod:`.refresher` for what one refresh does."""
from embodireward.rewards.refresh.labellers import EnvSuccessLabeller, Labeller, QueueLabeller, ViceLabeller, labelled_rows
from embodireward.rewards.refresh.refresher import RewardRefresh

__all__ = ["EnvSuccessLabeller", "Labeller", "QueueLabeller", "RewardRefresh", "ViceLabeller", "labelled_rows"]
