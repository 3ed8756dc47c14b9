"""``medsr bench``: see MedSRExtension.benchmark."""
from ..benchmark import register  # noqa: F401
