"""Collect class-labelled camera frames while an RL run trains (reward-model data).

The data directory holds ``manifest.json`` (see ``embodireward.rewards.manifest``) plus one
directory per class: with ``labels: "success"`` the classes are failure / success (directories
``negative_dir`` / ``positive_dir``), with ``labels: "stage"`` they are the env's task stages
(``info["stage"]``, named by ``env.stage_names``, directories named after them). The last class
is success. Two formats, both read by the reward-model trainer:

``trajectory``
    one ``{counter:06d}.npy`` per finished episode: a pickled dict ``{"images": {camera_key:
    float32 [T, C, H, W] in [0, 1]}, "labels": int64 [T]}`` (class per frame), under the
    directory of the highest class the episode reached (for success labels: the positive
    directory when it succeeded at any step). A frame's label is the class of its state, or
    success within ``steps_after_success`` steps after the episode's first success.
``frames``
    single ``{n:06d}.png`` frames under their class's directory, subsampled by
    ``sample_rate_success`` (success class) / ``sample_rate_fail`` (the others);
    ``manifest["frame_trajectories"]`` maps each file to its episode id so a train/val split
    can keep episodes whole. With ``robot_state: true`` each PNG also carries the robot's state
    (``rewards.frame_png``) and the manifest its size, ``robot_state_dim``.

Caps count every file of a class directory. How files are numbered, listed, repaired at
start-up and kept consistent on a full disk: see ``store``.
"""
from embodireward.collection.reward_data.callback import RewardDataCollection

__all__ = ["RewardDataCollection"]
