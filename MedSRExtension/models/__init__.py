"""Model registry, architectures, shared blocks and losses."""
from .descriptor import ModelDescriptor, sr_of
from .registry import ModelSpec, as_pair, build, get_spec, names, register

__all__ = ["ModelDescriptor", "ModelSpec", "as_pair", "build", "get_spec", "names", "register", "sr_of"]
