"""Device selection and what each device can do (AMP precision, memory)."""
from __future__ import annotations

import torch

from MedSRExtension.core.errors import MedSRError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'; unavailable ones are refused."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise MedSRError("device 'mps' is not available (Apple GPU needed); use --device cpu or auto")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise MedSRError(f"device '{name}' requested but CUDA is not available here; use --device cpu or auto")
        index = 0 if name == "cuda" else name.split(":", 1)[1]
        if not str(index).isdigit() or int(index) >= torch.cuda.device_count():
            raise MedSRError(f"no CUDA device '{name}'; this machine has {torch.cuda.device_count()} (cuda:0..)")
        return torch.device(f"cuda:{int(index)}")
    raise MedSRError(f"unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps")


def amp_dtype(device: torch.device, supported: tuple[str, ...]):
    """The reduced precision to autocast to on CUDA (bf16 preferred), or None for float32."""
    if device.type != "cuda":
        return None
    if "bf16" in supported and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if "fp16" in supported:
        return torch.float16
    return None


def describe(device: torch.device) -> str:
    """A one-line description: GPU name and memory, or CPU with its thread count."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.1f} GiB, {device})"
    if device.type == "mps":
        return "Apple GPU (mps)"
    return f"CPU ({torch.get_num_threads()} threads)"
