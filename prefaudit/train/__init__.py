"""DPO training on (cleaned) preference pairs: config, losses, data, loop."""

from prefaudit.train.config import TrainConfig
from prefaudit.train.loop import METRICS, TrainResult, evaluate, train
from prefaudit.train.losses import LOSSES

__all__ = ["LOSSES", "METRICS", "TrainConfig", "TrainResult", "evaluate", "train"]
