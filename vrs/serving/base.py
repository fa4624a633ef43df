"""What the serving functions share: inference mode, item vectors, id look-ups."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from vrs.models.recommender import Recommender

_SHOW = 5  # ids an error message lists before "..."


@contextlib.contextmanager
def inference(module: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the duration; the module's previous mode is restored after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def item_vectors(net: Recommender) -> Tensor:
    """The whole catalogue's item vectors (N, D), computed in eval mode."""
    with inference(net):
        return net.encode_items()  # (N, D)


def describe_ids(ids: Sequence[str]) -> str:
    """ "'a', 'b', ... (12 in all)": the first few ids of a list, for error messages."""
    shown = ", ".join(repr(i) for i in ids[:_SHOW])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > _SHOW else "")


def lookup(index: Mapping[str, int], ids: Sequence[object]) -> tuple[list[int], list[str]]:
    """Positions of `ids` in `index` (ids compare as strings: the canonical format stores them so).

    Returns:
        (positions of the known ids, in order; the unknown ids, in order).
    """
    known, unknown = [], []
    for raw in ids:
        key = str(raw)
        if key in index:
            known.append(index[key])
        else:
            unknown.append(key)
    return known, unknown


def require_known(index: Mapping[str, int], ids: Sequence[object], what: str) -> list[int]:
    """Positions of `ids` in `index`; a ValueError naming the unknown ones ("3 unknown {what}: ...")."""
    known, unknown = lookup(index, ids)
    if unknown:
        raise ValueError(f"{len(unknown)} unknown {what}: {describe_ids(unknown)}")
    return known
