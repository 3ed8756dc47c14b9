"""Writing a network's weights: the zoo's one writer, used by training (best/EMA checkpoints) and by
the adaptation (``--save-adapted``). Safetensors only (no pickle), written atomically."""
from __future__ import annotations

from typing import Optional

import torch.nn as nn

from MedSRExtension.core import atomic


def export_safetensors(module: nn.Module, path: str, metadata: Optional[dict] = None) -> None:
    """Write a module's state dict as safetensors (atomic; contiguous CPU float tensors)."""
    from safetensors.torch import save_file
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    atomic.write_with(path, lambda tmp: save_file(state, tmp,
                                                  metadata={k: str(v) for k, v in (metadata or {}).items()}))
