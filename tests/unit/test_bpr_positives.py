"""BPR with skip_positives: the training step hands the loss each target's user's items."""

from __future__ import annotations

import torch

from vrs.data.batch import RecBatch
from vrs.data.content import ItemContent
from vrs.lit.module import RecModule

N, D = 8, 4


def test_training_step_passes_each_targets_user_items_to_the_loss(monkeypatch) -> None:
    torch.manual_seed(0)
    module = RecModule(
        n_items=N,
        n_events=1,
        max_len=4,
        dim=D,
        n_users=2,
        fusion={
            "_target_": "vrs.fusion.single_modality.SingleModalityFusion",
            "_partial_": True,
            "modality": "id",
            "project": False,
        },
        user={"_target_": "vrs.user.mf.UserEmbedding", "_partial_": True},
        loss={"_target_": "vrs.losses.BPRLoss", "skip_positives": True},
    )
    content = ItemContent(
        images=torch.zeros(N, 3, 8, 8, dtype=torch.uint8),
        has_image=torch.zeros(N, dtype=torch.bool),
        texts=[""] * N,
        has_text=torch.zeros(N, dtype=torch.bool),
    )
    module.attach_data(content, torch.ones(N))
    seen = []
    forward = module.loss_fn.forward

    def recorded(states, targets, encode_items, log_q=None, positives=None):
        seen.append((targets.clone(), positives))
        return forward(states, targets, encode_items, log_q, positives=positives)

    monkeypatch.setattr(module.loss_fn, "forward", recorded)
    items = torch.tensor([[1, 2, 3, 0], [0, 0, 5, 6]])
    mask = torch.tensor([[True, True, True, False], [False, False, True, True]])
    targets = torch.tensor([[2, 3, 4, -1], [-1, -1, 6, 7]])
    batch = RecBatch(items=items, events=mask.long(), mask=mask, targets=targets, users=torch.tensor([0, 1]))
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)
    ((got_targets, positives),) = seen
    held = [set(row[row >= 0].tolist()) for row in positives]
    user0, user1 = {1, 2, 3, 4}, {5, 6, 7}
    expected = {2: user0, 3: user0, 4: user0, 6: user1, 7: user1}
    assert held == [expected[t] for t in got_targets.tolist()]
