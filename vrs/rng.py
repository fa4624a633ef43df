"""The global random generators' state, as plain values a `weights_only` checkpoint can hold.

A resumed run restores them so that its remaining epochs draw the same dropout masks, negatives and
modality drops as the uninterrupted run would have.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def rng_states() -> dict[str, Any]:
    """Python's, NumPy's and torch's (CPU and CUDA) global generator states."""
    version, state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {
        "python": [version, list(state), gauss],
        # NumPy's key array as a tensor: weights_only loading refuses numpy arrays.
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "torch_cuda": cuda,
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restores what `rng_states` returned."""
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states.get("torch_cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch_cuda"])
