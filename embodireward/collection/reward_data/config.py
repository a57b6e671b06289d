"""Configuration of the ``reward_data_collection`` callback."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

from embodireward.config import config_error


@dataclass
class CollectionConfig:
    data_dir: str = "{run_dir}/reward_data"  # relative to the working dir; {run_dir} is replaced
    format: Literal["trajectory", "frames"] = "trajectory"
    # success: two classes from info["success"] (failure, success); stage: the env's task stages
    # from info["stage"], named by its stage_names (the last stage is success)
    labels: Literal["success", "stage"] = "success"
    camera_key: Optional[str] = None  # None: the env's first camera
    # episode_end: terminal frames only; every_step: all frames; p in (0, 1]: each step renders
    # every env with probability p (terminal frames are always kept)
    render: Union[Literal["episode_end", "every_step"], float] = "episode_end"
    # frames format: store the robot's proprioception (Frames.robot_state: joint positions and
    # velocities) with each frame, for reward models that read it beside the image
    robot_state: bool = False
    steps_after_success: int = 0  # frames after the first success also labelled success
    positive_dir: Optional[str] = None  # labels "success": default "positive" (trajectory) / "success" (frames)
    negative_dir: Optional[str] = None  # labels "success": default "negative" (trajectory) / "failure" (frames)
    # caps count the files of a class directory: "positive"/"success" for the success class, each
    # other class's own directory for "negative"/"failure"; None: no cap
    max_positive_trajectories: Optional[int] = None  # trajectory format
    max_negative_trajectories: Optional[int] = None
    target_success: Optional[int] = None  # frames format
    target_failure: Optional[int] = None
    sample_rate_success: float = 1.0  # frames format: fraction of success frames kept
    sample_rate_fail: float = 1.0  # ... and of the other classes' frames
    # end the run once every class is at its cap (a warm-up that only exists to collect data stops
    # as soon as it has the data; runtime.iterations is then the most it runs)
    stop_run_when_full: bool = False
    seed: int = 0

    def validate(self, path: str) -> None:
        if isinstance(self.render, float) and not 0.0 < self.render <= 1.0:
            raise config_error(path, "render", f"a render probability must be in (0, 1], got {self.render}")
        for key in ("sample_rate_success", "sample_rate_fail"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise config_error(path, key, f"must be in [0, 1], got {getattr(self, key)}")
        for key in ("steps_after_success", "max_positive_trajectories", "max_negative_trajectories", "target_success", "target_failure"):
            if (getattr(self, key) or 0) < 0:
                raise config_error(path, key, f"must be >= 0, got {getattr(self, key)}")
        # a key of the other format would be silently ignored: reject it
        other = {
            "trajectory": {"target_success": None, "target_failure": None, "sample_rate_success": 1.0, "sample_rate_fail": 1.0},
            "frames": {"max_positive_trajectories": None, "max_negative_trajectories": None},
        }[self.format]
        for key, default in other.items():
            if getattr(self, key) != default:
                raise config_error(path, key, f"not used with format '{self.format}' (it belongs to the other format)")
        if self.robot_state and self.format != "frames":
            raise config_error(path, "robot_state", "is stored with single frames only; use format 'frames'")
        if self.labels == "stage":
            for key in ("positive_dir", "negative_dir"):
                if getattr(self, key) is not None:
                    raise config_error(path, key, "not used with labels 'stage' (each stage's directory is its name)")
        if self.stop_run_when_full and (self.success_cap is None or self.failure_cap is None):
            raise config_error(path, "stop_run_when_full", f"needs both {' and '.join(self.cap_keys)} set: without caps the data is never full")
        if self.success_cap == 0 and self.failure_cap == 0:
            raise config_error(path, self.cap_keys[0], f"{' and '.join(self.cap_keys)} are both 0: nothing would be collected")

    @property
    def cap_keys(self) -> tuple:
        return ("target_success", "target_failure") if self.format == "frames" else ("max_positive_trajectories", "max_negative_trajectories")

    @property
    def success_cap(self) -> Optional[int]:
        return getattr(self, self.cap_keys[0])

    @property
    def failure_cap(self) -> Optional[int]:
        return getattr(self, self.cap_keys[1])
