"""Training data: corpus readers with fixed validation regions, and LR/HR patch sampling."""
from .corpus import NAMES, Region, read, training_regions, validation_regions

__all__ = ["NAMES", "Region", "read", "training_regions", "validation_regions"]
