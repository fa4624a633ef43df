"""vrs-train: compose, train, test the best checkpoint, write metrics.json.

vrs-train experiment=demo
vrs-train data=canonical data.root=DIR encoder=tiny_clip fusion=gated loss=sampled_softmax
vrs-train experiment=sasrec_amazon hydra.run.dir=RUN resume=last     # continue RUN where it stopped
vrs-train -m hparams_search=sasrec_beauty data.root=data/amazon/Beauty   # Optuna search, validation only
vrs-train -m hydra/launcher=slurm trainer=ddp trainer.devices=8 trainer.num_nodes=2 seed=0,1,2   # SLURM jobs
"""

from __future__ import annotations

import csv
import io
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from vrs.cli.checks import check_config
from vrs.cli.common import (
    CONFIG_DIR,
    RESUME_CKPT,
    finish_run,
    friendly_errors,
    results,
    setup_run,
    write_user_results,
)
from vrs.cli.sweeps import check_search, sweep_job
from vrs.io import atomic_write_text
from vrs.lit.targets import trusted_config

if TYPE_CHECKING:  # Lightning is imported where a job needs it: --help and tab completion stay fast
    import lightning as L


def last_checkpoint(run_dir: Path) -> Path | None:
    """What ``resume=last`` continues a run folder from: its state after its latest epoch
    (checkpoints/resume.ckpt; last.ckpt, a copy of the best epoch, for runs without one), or None."""
    folder = run_dir / "checkpoints"
    return next((p for p in (folder / RESUME_CKPT, folder / "last.ckpt") if p.is_file()), None)


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """The checkpoint ``resume`` names, checked to exist (``last``: see `last_checkpoint`)."""
    if not cfg.get("resume"):
        return None
    path = Path(cfg.resume)
    if cfg.resume == "last":
        run_dir = Path(cfg.paths.output_dir)
        path = last_checkpoint(run_dir) or run_dir / "checkpoints" / RESUME_CKPT
    if not path.is_file():
        raise FileNotFoundError(
            f"resume={cfg.resume}: no checkpoint at {path} (pass a .ckpt path, or 'last' with the "
            "interrupted run's hydra.run.dir)"
        )
    return str(path)


def _csv_logs(cfg: DictConfig) -> list[Path]:
    """metrics.csv files of the configured CSV loggers."""
    nodes = (cfg.get("logger") or {}).values()
    return [
        Path(n.save_dir) / str(n.get("name") or "") / str(n.get("version") or "") / "metrics.csv"
        for n in nodes
        if n and str(n.get("_target_", "")).endswith("CSVLogger")
    ]


# The log rows of a run before it was resumed, kept until the resumed run ends (a resumed run that is
# stopped again leaves them here for the next resume, and for readers of the log).
KEPT_LOG = "metrics.before_resume.csv"


def _keep_log(path: Path) -> Path:
    """Saves ``path``'s rows beside it before Lightning starts the file afresh; returns ``path``."""
    kept = path.with_name(KEPT_LOG)
    if kept.is_file():  # an earlier resume was stopped: its rows and the kept ones, together
        _merge_csv(path, kept.read_text())
    if path.is_file():
        atomic_write_text(kept, path.read_text())
    return path


def _merge_csv(path: Path, before: str) -> None:
    """Puts back the rows of epochs the resumed run did not redo (Lightning's CSV logger starts its
    file afresh), under the union of both headers."""
    old = list(csv.DictReader(io.StringIO(before)))
    new = list(csv.DictReader(io.StringIO(path.read_text()))) if path.is_file() else []
    first = min((int(r["epoch"]) for r in new if r.get("epoch")), default=None)
    rows = [r for r in old if first is None or not r.get("epoch") or int(r["epoch"]) < first] + new
    keys = sorted({k for r in rows for k in r})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, out.getvalue())


def require_targets(datamodule: Any) -> None:
    """Refuses a dataset whose split leaves nothing to train on or to validate with."""
    data = datamodule.data
    least = 1 if getattr(datamodule, "first_target", False) else 2
    trainable = int((data.train_len >= least).sum())
    if trainable == 0 or len(data.val_targets) == 0:
        raise ValueError(
            f"{datamodule.root}: the {datamodule.split_kind} split leaves {trainable} user(s) with a "
            f"training history of {least}+ events and {len(data.val_targets)} validation target(s); "
            "training needs at least one of each (more users, or users with more events)"
        )


def require_history_free(datamodule: Any, module: Any) -> None:
    """Refuses data.first_target=true with a user encoder that reads the history: the first event
    would be its own input, so the model would learn to copy its input."""
    encoder = getattr(getattr(module, "net", None), "user_encoder", None)
    if getattr(datamodule, "first_target", False) and getattr(encoder, "reads_history", True):
        raise ValueError(
            f"data.first_target=true makes each user's first train event a target with itself as input; "
            f"only user encoders that never read the history allow it (user=mf, lightgcn, freedom), "
            f"not {type(encoder).__name__}: set data.first_target=false"
        )


def require_windows_for_cloze(datamodule: Any, module: Any) -> None:
    """Refuses overlapping windows (data.train_stride < data.max_len) with a cloze-trained encoder:
    its sequences are the windows' targets, which are blank where a window is context only."""
    encoder = getattr(getattr(module, "net", None), "user_encoder", None)
    stride = getattr(datamodule, "train_stride", None)
    if getattr(encoder, "cloze", False) and stride is not None and stride < datamodule.max_len:
        raise ValueError(
            f"data.train_stride={stride} makes training windows overlap, their first positions context "
            f"only; {type(encoder).__name__} trains on the windows' items themselves (the cloze task), "
            "so it takes non-overlapping windows: set data.train_stride=null"
        )


class TrainingStopped(RuntimeError):
    """Training was stopped by SIGTERM (a scheduler's time limit, ``kill``) before it finished: nothing
    was tested and no metrics.json written; ``resume=last`` continues from the last saved epoch."""

    exit_code = 143  # 128 + SIGTERM, as a shell reports a process killed by it


def _unless_stopped(trainer: L.Trainer, run: Callable[[], object], message: Callable[[], str]) -> None:
    """Runs a trainer call; raises TrainingStopped(message()) if SIGTERM arrived during it."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    try:
        run()
    except SIGTERMException:  # a SystemExit with code 0: a stopped run must not look finished
        pass
    if trainer.received_sigterm:
        raise TrainingStopped(message())


def train(cfg: DictConfig) -> dict[str, float]:
    """Runs one training job as configured; returns the metrics written to metrics.json."""

    def build(datamodule):
        require_targets(datamodule)
        with trusted_config():  # the user's own command line: the whole of Hydra
            module = instantiate(
                cfg.model,
                n_items=datamodule.n_items,
                n_events=datamodule.n_events,
                n_users=datamodule.n_users,
                n_categories=datamodule.n_categories,
                max_len=datamodule.max_len,
                dataset_fingerprint=datamodule.fingerprint,
            )
        require_history_free(datamodule, module)
        require_windows_for_cloze(datamodule, module)
        return module

    check_config(cfg)
    check_search(cfg)
    resume = resume_checkpoint(cfg)
    if resume:
        # Lightning warns that the log and checkpoint folders are not empty: expected when resuming,
        # and the earlier log rows are put back below.
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
    logs = [_keep_log(p) for p in _csv_logs(cfg)] if resume else []
    datamodule, module, trainer = setup_run(cfg, build)
    _unless_stopped(
        trainer,
        lambda: trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True),
        lambda: (
            f"training stopped by SIGTERM after {trainer.current_epoch} complete epoch(s); nothing "
            f"was tested. Continue it with: vrs-train <same overrides> hydra.run.dir={cfg.paths.output_dir} "
            "resume=last"
        ),
    )

    metrics: dict[str, float] = {}
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.best_model_score is not None:
        metrics["val/ndcg_10"] = float(checkpoint.best_model_score)
    else:
        metrics.update(results(module, "val/ndcg_10"))
    if cfg.test:  # verbose=False: finish_run prints the results, Lightning's table would repeat them
        best = checkpoint.best_model_path if checkpoint is not None else ""
        _unless_stopped(
            trainer,
            lambda: trainer.test(
                module, datamodule=datamodule, ckpt_path=best or None, weights_only=True, verbose=False
            ),
            lambda: (
                "training finished, then SIGTERM stopped the test; test the checkpoint with: "
                f"vrs-eval ckpt_path={best or Path(cfg.paths.output_dir) / 'checkpoints' / 'last.ckpt'}"
            ),
        )
        metrics.update(results(module, "test/", "test_cold/"))
        if trainer.is_global_zero and not trainer.fast_dev_run:
            write_user_results(Path(cfg.paths.output_dir), module, datamodule)
    finish_run(cfg, trainer, metrics)
    if trainer.is_global_zero:  # after the last log line: Lightning rewrites the file on new columns
        for path in logs:
            kept = path.with_name(KEPT_LOG)
            if kept.is_file():
                _merge_csv(path, kept.read_text())
                kept.unlink()
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@friendly_errors
def main(cfg: DictConfig) -> float | None:
    try:
        with sweep_job():
            metrics = train(cfg)
    except TrainingStopped as err:
        print(f"stopped: {err}", file=sys.stderr)
        sys.exit(TrainingStopped.exit_code)
    # Sweepers optimise the returned value: validation only, never test.
    return metrics.get("val/ndcg_10")


if __name__ == "__main__":
    main()
