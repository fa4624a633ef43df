"""RecModule: trains a Recommender; the architecture itself lives in vrs.models."""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from vrs.data.batch import RecBatch
from vrs.data.content import ItemContent
from vrs.encoders.base import ModalityEncoder, Towers
from vrs.encoders.cache import FeatureCache
from vrs.lit.finetune import FineTuning, upgrade_legacy
from vrs.lit.ranking import RankingModule, Scorer
from vrs.lit.targets import build, check_targets, is_trusted, moved_state_keys, moved_targets
from vrs.losses import BPRLoss, InBatchLoss, SampledSoftmaxLoss
from vrs.models.content_match import ContentMatch
from vrs.models.item_tower import ItemTower
from vrs.models.recommender import Recommender
from vrs.threads import take_rows

INITS = ("default", "xavier_normal")
# ID tables from this size on train far faster with model.sparse_id=true under sampled or in-batch
# negatives (1.7x at 100k items, 6.6-6.9x at 1M: benchmarks/bench_scale.py); below it no warning.
LARGE_CATALOGUE = 200_000


class RecModule(RankingModule):
    """Builds the network from plain config dicts, trains it, evaluates by full ranking.

    Every argument is a plain value or dict, saved with `save_hyperparameters()`, so
    `RecModule.load_from_checkpoint(path)` rebuilds the model without Hydra. Item content (pixels,
    text) is not part of the checkpoint: call `attach_data` before scoring.

    Args:
        n_items: catalogue size N.
        n_events: number of event types E.
        max_len: longest history T the user encoder sees.
        dim: item and user vector size D.
        use_id: add a learned item-ID embedding to the item tower.
        finetune: how the encoder weights train: {"freeze", "trainable_layers", "lr",
            "gradient_checkpointing", "negatives"}, plain values (see `FineTuning`; None: defaults).
        modality_dropout: per-item probability of dropping a modality while training.
        feature_norm: LayerNorm on each encoder's features before fusion.
        id_init_std: standard deviation of the item-ID embedding's initialisation.
        init: "default" (each module's own initialisation) or "xavier_normal" (every weight matrix
            outside the encoders re-drawn Xavier-normal, as RecTools' transformers do).
        encoder: `_target_` dict building a `Towers` (None: no content towers); its `finetune`
            entry, if any, is ignored (the config passes it as `finetune`).
        modalities: more modalities, name -> `_target_` dict building a `ModalityEncoder` trained
            with the model (`configs/modalities/`); fused after the encoder's towers, in this order.
        fusion: `_partial_` `_target_` dict of the fusion module.
        user: `_partial_` `_target_` dict of the user encoder.
        loss: `_target_` dict of the loss.
        optimizer: `_partial_` `_target_` dict of the optimiser.
        scheduler: optional `_partial_` `_target_` dict of an LR scheduler (stepped per epoch).
        evaluation: {"ks", "exclude_seen", "chunk_size"}.
        dataset_fingerprint: fingerprint of the dataset trained on, checked at evaluation.
        content_match: {"modalities", "window", "weight", "learn_weight", "dim", "whiten", "session_gap"} of a content-profile term
            (`vrs.models.content_match.ContentMatch`; frozen modalities only), or None.
        n_users: number of users of the training data; used by user encoders with a vector per
            user (`user=mf`), which take it as `n_users`.
        aux_category_weight: weight of an auxiliary cross-entropy predicting each trained item's
            category (items.parquet's `category`) from its fused item vector, through a linear head
            (0: off). It pushes the content towers' path into the item vector to carry the category,
            which cold items (no trained ID) depend on.
        n_categories: number of distinct categories C (the dataset's; needed when the weight is > 0).
        sparse_id: sparse gradients for the item-ID embedding and a lazy AdamW
            (`vrs.lit.optim.LazyAdamW`: moments and weight decay of the touched rows only), so a step
            with sampled or in-batch negatives costs what it touches instead of O(catalogue). Large
            catalogues only: it changes the optimiser, and one process only (no DDP).
        embedding_dropout: dropout on the learned item embeddings (ID, learned modalities) while
            training, one mask per item and step shared by its input and candidate uses.
        **legacy: the fine-tuning arguments of checkpoints written before `finetune` existed
            (`freeze_encoders`, `encoder_lr`, ...), upgraded by `vrs.lit.finetune.upgrade_legacy`.
    """

    def __init__(
        self,
        n_items: int,
        n_events: int,
        max_len: int,
        dim: int = 64,
        use_id: bool = True,
        finetune: dict[str, Any] | None = None,
        modality_dropout: float = 0.0,
        feature_norm: bool = True,
        id_init_std: float = 0.02,
        init: str = "default",
        encoder: dict[str, Any] | None = None,
        modalities: dict[str, Any] | None = None,
        fusion: dict[str, Any] | None = None,
        user: dict[str, Any] | None = None,
        loss: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        evaluation: dict[str, Any] | None = None,
        dataset_fingerprint: str = "",
        content_match: dict[str, Any] | None = None,
        n_users: int = 0,
        aux_category_weight: float = 0.0,
        n_categories: int = 0,
        sparse_id: bool = False,
        embedding_dropout: float = 0.0,
        **legacy: Any,
    ) -> None:
        super().__init__(n_items, evaluation)
        # save_hyperparameters() reads these locals: an old checkpoint is saved again in the new layout.
        finetune, encoder = upgrade_legacy(finetune, encoder, legacy)
        legacy = {}
        encoder, modalities, fusion, user, loss, optimizer, scheduler = (
            moved_targets(node) for node in (encoder, modalities, fusion, user, loss, optimizer, scheduler)
        )
        self.save_hyperparameters()
        self.finetune = FineTuning.from_dict(finetune)  # plain values only, from a file too
        # Built from the user's own config (vrs-train) or from a file (a checkpoint): a file's targets
        # go through the allow-list, all of them checked before anything is built.
        self._trusted_config = is_trusted()
        if not self._trusted_config:
            for name in ("encoder", "modalities", "fusion", "user", "loss", "optimizer", "scheduler"):
                check_targets(self.hparams.get(name), f"hyper_parameters.{name}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        towers = build_towers(encoder, self._trusted_config)
        self.finetune.apply(towers)
        extra = build_modalities(modalities, towers, self._trusted_config)
        fusion_factory = build(
            fusion or {"_target_": "vrs.fusion.concat.ConcatFusion", "_partial_": True},
            "fusion",
            self._trusted_config,
        )
        user_factory = build(
            user or {"_target_": "vrs.user.sasrec.SASRecUserEncoder", "_partial_": True},
            "user",
            self._trusted_config,
        )
        tower = ItemTower(
            n_items,
            dim,
            {**towers, **extra},
            fusion_factory,
            use_id,
            self.finetune.freeze,
            modality_dropout,
            feature_norm=feature_norm,
            id_init_std=id_init_std,
            trained=tuple(extra),
            sparse_id=sparse_id,
            embedding_dropout=embedding_dropout,
        )
        match = ContentMatch(**content_match) if content_match else None
        sizes = {"dim": dim, "max_len": max_len, "n_events": n_events}
        if "n_users" in inspect.signature(user_factory).parameters:  # a vector per user (user=mf)
            sizes["n_users"] = n_users
        self.net = Recommender(tower, user_factory(**sizes), match)
        if init == "xavier_normal":
            _xavier_normal_outside_encoders(self.net)
        self.encoders_train = any(p.requires_grad for e in tower.encoders() for p in e.parameters())
        self.loss_fn = self._training_loss(loss)
        # Training-split item counts travel with the checkpoint: they define which IDs were trained
        # and the popularity q(item) of logQ-corrected losses.
        self.register_buffer("train_counts", torch.zeros(n_items))
        self.register_buffer("item_log_q", torch.full((n_items,), -math.log(n_items)), persistent=False)
        if aux_category_weight < 0:
            raise ValueError(f"model.aux_category_weight must be >= 0, got {aux_category_weight}")
        self.aux_category_weight = float(aux_category_weight)
        self.aux_head: torch.nn.Linear | None = None
        if self.aux_category_weight > 0:
            if n_categories < 2:
                raise ValueError(
                    f"model.aux_category_weight={aux_category_weight} needs items with at least 2 "
                    f"categories (items.parquet's `category` column); this dataset has {n_categories}"
                )
            self.aux_head = torch.nn.Linear(dim, n_categories)
        # Each item's category code (-1: none), from the attached content (training only).
        self.register_buffer("item_category", torch.full((n_items,), -1, dtype=torch.long), persistent=False)

    def _training_loss(self, node: dict[str, Any] | None) -> torch.nn.Module:
        """The configured loss, or what it hands over to while encoder weights train."""
        loss_fn = build(node or {"_target_": "vrs.losses.FullSoftmaxLoss"}, "loss", self._trusted_config)
        if not (self.encoders_train and self.finetune.negatives == "in_batch"):
            return loss_fn
        # The loss says what stands in for it while encoders train (vrs.losses.Loss).
        stand_in = getattr(loss_fn, "while_encoders_train", lambda: loss_fn)()
        if stand_in is not loss_fn:
            rank_zero_info(
                f"encoder weights train: {type(loss_fn).__name__} becomes "
                f"{type(stand_in).__name__} (finetune.negatives=in_batch)"
            )
        return stand_in

    def scorer(self) -> Scorer:
        return self.net

    def attach_data(
        self,
        content: ItemContent,
        train_counts: Tensor | None = None,
        feature_cache: FeatureCache | None = None,
    ) -> None:
        """Hands the catalogue content to the model (and, when training, the training-split counts).

        A reloaded checkpoint already holds its training counts: pass `content` alone. Frozen
        encoders read their features from `feature_cache` when given (see `ItemTower.set_content`).
        """
        if len(content) != self.hparams.n_items:
            raise ValueError(
                f"the dataset has {len(content)} items but the model was built for "
                f"{self.hparams.n_items}: evaluate with the dataset the checkpoint was trained on"
            )
        if train_counts is not None:
            self.train_counts = train_counts.float().to(self.train_counts.device)
        known = self.train_counts > 0 if bool(self.train_counts.any()) else None
        self.net.item_tower.set_content(content, known_items=known, feature_cache=feature_cache)
        self.item_log_q = training_log_q(self.train_counts)
        self.content = content
        if self.aux_head is not None:
            self.item_category = self._category_codes(content).to(self.item_category.device)

    def fit_catalogue(self, datamodule: Any, feature_cache: FeatureCache | None = None) -> None:
        """A graph user encoder (user=lightgcn) takes the training split's (user, item) pairs."""
        if self.net.graph:
            self.net.user_encoder.set_interactions(*datamodule.train_pairs)
        if getattr(self.net.user_encoder, "needs_item_graph", False):
            tower = self.net.item_tower
            catalogue = tower.catalogue
            self.net.user_encoder.set_item_graph(
                {m: catalogue.inputs[m] for m in tower.frozen},
                {m: catalogue.present[m] for m in tower.frozen},
            )

    def on_train_epoch_start(self) -> None:
        # Graph encoders that resample their graph per epoch (user=freedom): drawn from the run's
        # seed and the epoch, so a resumed run draws what an uninterrupted one did.
        new_epoch = getattr(self.net.user_encoder, "new_epoch", None)
        if new_epoch is not None:
            new_epoch(torch.Generator().manual_seed(torch.initial_seed() % 2**31 + 7919 * self.current_epoch))

    def _category_codes(self, content: ItemContent) -> Tensor:
        from vrs.list_metrics import category_codes

        if "category" not in content.columns:
            raise ValueError(
                "model.aux_category_weight > 0 needs the items' categories: the items table has no "
                f"`category` column (it has {sorted(content.columns)})"
            )
        codes = category_codes(pd.Series(list(content.column("category")), dtype="object"))
        n_head = self.aux_head.out_features  # called only with the head built
        if int(codes.max()) >= n_head:
            raise ValueError(
                f"the items have {int(codes.max()) + 1} categories but the model was built for {n_head}: "
                "train on the dataset the model was built for"
            )
        return codes

    def _with_aux(
        self, loss: Tensor, items: Tensor, encode_items: Callable[[Tensor | None], Tensor]
    ) -> Tensor:
        """loss + aux_category_weight x the category cross-entropy of the distinct `items` (targets)."""
        if self.aux_head is None:
            return loss
        uniq = torch.unique(items)
        labels = self.item_category[uniq]
        uniq, labels = uniq[labels >= 0], labels[labels >= 0]
        if not len(uniq):
            return loss
        vectors = encode_items(uniq)[:, : self.net.dim]  # the learned part (not content_match's columns)
        aux = torch.nn.functional.cross_entropy(self.aux_head(vectors.float()), labels)
        self.log("train/aux_category", aux, batch_size=len(uniq))
        return loss + self.aux_category_weight * aux

    def training_step(self, batch: RecBatch, batch_idx: int) -> Tensor:
        self.net.item_tower.new_dropout_draw()
        if getattr(self.net.user_encoder, "cloze", False):
            return self._cloze_step(batch)
        states, encode_items = self._states(batch)  # (B, T, D)
        if self.net.causal:
            # One causal pass trains on every position of each history.
            keep = batch.targets >= 0  # (B, T)
            states, targets = states[keep], batch.targets[keep]  # (M, D), (M,)
        else:
            # A non-causal encoder sees the whole input: only the next item after it is a fair target.
            states, targets = states[:, -1], batch.targets[:, -1]  # (B, D), (B,)
            keep = targets >= 0
            states, targets = states[keep], targets[keep]
        extra = {}
        if getattr(self.loss_fn, "skip_positives", False):
            # Each target's user's items in the batch (inputs and targets): never its negatives.
            held = torch.cat([batch.items.masked_fill(~batch.mask, -1), batch.targets], 1)  # (B, 2T)
            extra["positives"] = held[keep.nonzero()[:, 0]]  # keep: (B, T) or (B,), rows first
        loss = self._with_aux(
            self.loss_fn(states, targets, encode_items, self.item_log_q, **extra), targets, encode_items
        )
        loss = self._with_side(loss, states, targets)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        return loss

    def _with_side(self, loss: Tensor, states: Tensor, targets: Tensor) -> Tensor:
        """loss + the fusion's side weight x each content modality's BPR between the user states and
        that modality's projections of the targets and of uniform negatives (`fusion=side`)."""
        tower = self.net.item_tower
        weight = getattr(tower.fusion, "side_weight", 0.0)
        if not weight or not targets.numel():
            return loss
        bpr = BPRLoss(self.hparams.n_items)
        side = sum(
            bpr(states, targets, functools.partial(tower.side_vector, m), self.item_log_q)
            for m in tower.fusion.side
        )
        self.log("train/side", side, batch_size=len(targets))
        return loss + weight * side

    def _cloze_step(self, batch: RecBatch) -> Tensor:
        """BERT4Rec's cloze task on the training sequences: the last T items of each training prefix
        (the batch's targets), a random `mask_prob` share of them hidden, at least one per history
        (the most recent when the draw hides none); the states there are trained to recover them.
        An item's event type is its successor input's; the last one repeats the one before it."""
        items, real = batch.targets.clamp(min=0), batch.targets >= 0  # (B, T)
        events = torch.cat([batch.events[:, 1:], batch.events[:, -1:]], dim=1) * real
        hidden = (torch.rand(real.shape, device=real.device) < self.net.user_encoder.mask_prob) & real
        none = ~hidden.any(dim=1) & real.any(dim=1)
        hidden[none, -1] = True  # left padding: the last position is the most recent item
        sequences = RecBatch(items=items, events=events, mask=real, targets=batch.targets, users=batch.users)
        states, encode_items = self._states(sequences, cloze=hidden)  # (B, T, D)
        loss = self.loss_fn(states[hidden], items[hidden], encode_items, self.item_log_q)
        loss = self._with_aux(loss, items[hidden], encode_items)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        return loss

    def _states(
        self, batch: RecBatch, cloze: Tensor | None = None
    ) -> tuple[Tensor, Callable[[Tensor | None], Tensor]]:
        if getattr(self.loss_fn, "needs_catalogue", False):
            # The loss needs the whole catalogue anyway: encode it once, reuse it for the history.
            items = self.net.encode_items()  # (N, D)
            states = self.net.sequence_states(batch, items, cloze=cloze)
            return states, lambda idx: items if idx is None else take_rows(items, idx)
        # Encode only the items this batch touches (trainable encoders cannot afford N per step).
        return self.net.sequence_states(batch, cloze=cloze), self.net.encode_items

    def _fixed_frozen_prefixes(self) -> list[str]:
        """State-dict prefixes of frozen encoders whose weights the config reproduces."""
        tower = self.net.item_tower
        return [f"net.item_tower.towers.{m}." for m in tower.frozen if tower.towers[m].fixed_weights]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Frozen pretrained weights rebuild from the config (package or file): storing them would
        # make every checkpoint of the demo model ~100 MB instead of ~2 MB.
        prefixes = self._fixed_frozen_prefixes()
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(tuple(prefixes))]:
            del state[key]
        checkpoint["vrs_rebuilt_prefixes"] = prefixes

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Checkpoints of towers named by attribute (image_encoder, text_encoder) name them by modality.
        checkpoint["state_dict"] = moved_state_keys(checkpoint["state_dict"])
        state = checkpoint["state_dict"]
        edges = state.get("net.user_encoder.edge_users")
        if self.net.graph and edges is not None:
            self.net.user_encoder.check_graph(state, self.hparams.n_items, prefix="net.user_encoder.")
            # Sized to the saved graph, which is then loaded into them.
            item_edges = state.get("net.user_encoder.item_src")
            extra = {} if item_edges is None else {"n_item_edges": len(item_edges)}
            self.net.user_encoder.resize_graph(len(edges), **extra)
        if "vrs_rebuilt_prefixes" in checkpoint:
            checkpoint["vrs_rebuilt_prefixes"] = list(
                moved_state_keys(dict.fromkeys(checkpoint["vrs_rebuilt_prefixes"]))
            )
        # Put back the weights on_save_checkpoint left out: this module was just built with them.
        prefixes = tuple(checkpoint.get("vrs_rebuilt_prefixes", []))
        if prefixes:
            own = self.state_dict()
            checkpoint["state_dict"].update({k: v for k, v in own.items() if k.startswith(prefixes)})

    def configure_optimizers(self) -> Any:
        encoder_ids = {id(p) for e in self.net.item_tower.encoders() for p in e.parameters()}
        trained = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in trained if id(p) not in encoder_ids]}]
        encoder_params = [p for p in trained if id(p) in encoder_ids]
        if encoder_params:
            lr = self.finetune.lr
            groups.append({"params": encoder_params} | ({"lr": lr} if lr is not None else {}))
        optimizer = build(
            self.hparams.optimizer or {"_target_": "torch.optim.AdamW", "_partial_": True},
            "optimizer",
            self._trusted_config,
        )(params=groups)
        if self.hparams.get("sparse_id"):
            optimizer = self._lazy(optimizer)
        else:
            self._warn_if_dense_table()
        if not self.hparams.scheduler:
            return optimizer
        scheduler = build(self.hparams.scheduler, "scheduler", self._trusted_config)(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def _warn_if_dense_table(self) -> None:
        """Warns when a large ID table trains with sampled or in-batch negatives but a dense
        optimiser step, which reads and writes every row at each step (README, "Scale")."""
        table = getattr(self.net.item_tower, "id_emb", None)
        if table is None or table.num_embeddings < LARGE_CATALOGUE:
            return
        if not isinstance(self.loss_fn, SampledSoftmaxLoss | InBatchLoss):
            return
        if self._trainer is not None and self._trainer.world_size > 1:
            return  # sparse_id is one-process only
        warnings.warn(
            f"{table.num_embeddings:,} item IDs with {type(self.loss_fn).__name__} and a dense optimiser "
            "step: every step updates the whole ID table (at 1M items 6.6-6.9x slower per epoch than "
            "model.sparse_id=true, which updates only the rows a step touches)",
            stacklevel=2,
        )

    def _lazy(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """The optimiser for sparse ID gradients: AdamW becomes LazyAdamW; anything else is refused."""
        from vrs.lit.optim import LazyAdamW

        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            raise ValueError(
                "model.sparse_id=true trains in one process only (sparse gradients are not reduced "
                f"across the {trainer.world_size} DDP processes); use model.sparse_id=false with DDP"
            )
        if type(optimizer) is torch.optim.AdamW:
            return LazyAdamW.like(optimizer)
        if isinstance(optimizer, LazyAdamW):
            return optimizer
        raise ValueError(
            "model.sparse_id=true updates the ID table with a lazy AdamW: it needs "
            f"model.optimizer._target_=torch.optim.AdamW, not {type(optimizer).__name__}"
        )


def _xavier_normal_outside_encoders(net: Recommender) -> None:
    """Re-draws every weight matrix outside the item encoders Xavier-normal (init="xavier_normal")."""
    encoder_ids = {id(p) for e in net.item_tower.encoders() for p in e.parameters()}
    for param in net.parameters():
        if param.dim() > 1 and id(param) not in encoder_ids:
            torch.nn.init.xavier_normal_(param)


def training_log_q(counts: Tensor) -> Tensor:
    """log q(item) of the training popularity; -inf (not a candidate) for items absent from training.

    With no counts at all (nothing attached yet) every item is an equally likely candidate.
    """
    if not bool(counts.any()):
        return torch.full_like(counts, -math.log(counts.numel()))
    return (counts / counts.sum()).log()  # log 0 = -inf


def build_towers(node: dict[str, Any] | None, trusted: bool | None = None) -> Towers:
    """The towers of an `encoder` group node; its `finetune` node is RecModule's, not the builder's.

    `trusted` (default: inside `vrs.lit.targets.trusted_config()`) lets the node name any target.
    """
    if not node:
        return Towers()
    node = {k: v for k, v in node.items() if k != "finetune"}
    return build(node, "encoder", is_trusted() if trusted is None else trusted)


def build_modalities(
    nodes: dict[str, Any] | None, towers: Towers, trusted: bool | None = None
) -> dict[str, ModalityEncoder]:
    """The encoders of a `modalities` node (name -> `_target_` dict), in its order.

    Raises:
        ValueError: a name the encoder's towers already use, or a node that builds no encoder.
    """
    trusted = is_trusted() if trusted is None else trusted
    built: dict[str, ModalityEncoder] = {}
    for name, node in (nodes or {}).items():
        if name in towers:
            raise ValueError(
                f"modalities.{name}: the encoder already has a {name!r} tower; pick another name"
            )
        encoder = build(node, f"modalities.{name}", trusted)
        if not isinstance(encoder, ModalityEncoder):
            raise ValueError(
                f"modalities.{name}: {type(encoder).__name__} is not a vrs.encoders.base.ModalityEncoder"
            )
        built[name] = encoder
    return built
