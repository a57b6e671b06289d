"""The trainer, its callback interface and checkpoint helpers."""
from embodireward.trainer.callbacks import Callback, CallbackList, StepData

__all__ = ["Callback", "CallbackList", "StepData", "Trainer"]


def __getattr__(name):  # Trainer imports the whole stack; load it on first use only
    if name == "Trainer":
        from embodireward.trainer.trainer import Trainer

        return Trainer
    raise AttributeError(name)
