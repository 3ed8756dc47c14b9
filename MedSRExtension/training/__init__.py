"""Training: the loop (``trainer``), checkpoints with exact resume, EMA weights, multi-GPU helpers."""
from .trainer import TrainConfig, train

__all__ = ["TrainConfig", "train"]
