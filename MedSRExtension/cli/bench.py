"""``medsr bench``: see MedSRExtension.evaluation.benchmark."""
from MedSRExtension.evaluation.benchmark import register  # noqa: F401
