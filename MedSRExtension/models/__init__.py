"""Model registry, architectures, shared blocks and losses."""
from .registry import ModelSpec, as_pair, build, get_spec, names, register

__all__ = ["ModelSpec", "as_pair", "build", "get_spec", "names", "register"]
