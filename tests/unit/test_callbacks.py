"""CapWarning: a run that ends at trainer.max_epochs while still improving says so; PatienceWarning:
so does one that early stopping ended after a patience of few training batches."""

from types import SimpleNamespace

import pytest
import torch

from vrs.lit.callbacks import CapWarning


def fit(values: list[float], max_epochs: int, mode: str = "max") -> CapWarning:
    cb = CapWarning(mode=mode)
    trainer = SimpleNamespace(
        sanity_checking=False, max_epochs=max_epochs, is_global_zero=True, callback_metrics={}
    )
    for epoch, v in enumerate(values):
        trainer.current_epoch = epoch
        trainer.callback_metrics = {"val/ndcg_10": torch.tensor(v)}
        cb.on_validation_end(trainer, None)
    trainer.current_epoch = len(values)  # Lightning counts the last epoch as completed at fit end
    cb.on_fit_end(trainer, None)
    return cb


def test_warns_at_the_cap_while_improving():
    with pytest.warns(
        UserWarning, match=r"max_epochs=4 .* its best \(0.4000, epoch 3\) is among the last 2 epochs \(0-3\)"
    ):
        fit([0.1, 0.2, 0.3, 0.4], max_epochs=4)
    with pytest.warns(UserWarning, match=r"its best \(0.4000, epoch 2\) is among the last 2 epochs \(0-3\)"):
        fit([0.1, 0.2, 0.4, 0.3], max_epochs=4)  # within=2: the second-to-last epoch is recent


@pytest.mark.parametrize(
    ("values", "max_epochs", "mode"),
    [
        ([0.1, 0.4, 0.3, 0.2], 4, "max"),  # best two epochs before the end: converged
        ([0.1, 0.2, 0.3], 10, "max"),  # stopped before the cap (early stopping)
    ],
)
def test_no_warning_when_converged_or_stopped_early(values, max_epochs, mode, recwarn):
    cb = fit(values, max_epochs, mode)
    assert cb.message is None and not [w for w in recwarn if "still improving" in str(w.message)]


def test_min_mode_and_resume_state():
    with pytest.warns(UserWarning, match=r"its best \(0.1000, epoch 3\)"):
        fit([0.4, 0.3, 0.2, 0.1], max_epochs=4, mode="min")
    cb = CapWarning()
    cb.load_state_dict({"best": (0.5, 7)})
    assert cb.state_dict() == {"best": (0.5, 7), "last": None}
    with pytest.raises(ValueError, match="mode must be"):
        CapWarning(mode="up")


def test_epoch_timer_logs_epoch_times_and_keeps_elapsed_across_resumes(tmp_path):
    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel

    from vrs.lit.callbacks import EpochTimer

    timer = EpochTimer()
    timer.load_state_dict({"elapsed": 100.0})  # as a resumed run restores it
    trainer = L.Trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=1, callbacks=[timer],
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(BoringModel())
    m = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("time/")}
    assert set(m) == {"time/train_s", "time/epoch_s", "time/elapsed_s", "time/first_step_s", "time/step_s"}
    assert 0 < m["time/train_s"] <= m["time/epoch_s"] < m["time/elapsed_s"] - 100.0
    assert m["time/first_step_s"] + m["time/step_s"] == pytest.approx(m["time/train_s"])
    assert timer.state_dict()["elapsed"] == pytest.approx(m["time/elapsed_s"])


def test_epoch_timer_keeps_the_first_steps_one_off_cost_out_of_the_step_time(tmp_path):
    import time

    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel

    from vrs.lit.callbacks import EpochTimer

    class SlowStart(BoringModel):  # the first batch of each epoch pays a one-off 0.3 s
        def training_step(self, batch, batch_idx):
            time.sleep(0.3 if batch_idx == 0 else 0.01)
            return super().training_step(batch, batch_idx)

    timer = EpochTimer()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=5, limit_val_batches=0, callbacks=[timer],
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(SlowStart())
    m = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("time/")}
    assert m["time/first_step_s"] >= 0.3
    assert 0.01 <= m["time/step_s"] < 0.15  # the later batches' mean, not (train_s / 5 >= 0.34)
    assert m["time/first_step_s"] + 4 * m["time/step_s"] == pytest.approx(m["time/train_s"])


@pytest.mark.parametrize(("batches", "patience", "warned"), [(4, 10, True), (8, 30, False), (50, 3, True)])
def test_patience_warning_when_early_stopping_spans_few_batches(tmp_path, batches, patience, warned, recwarn):
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping
    from lightning.pytorch.demos.boring_classes import BoringModel

    from vrs.lit.callbacks import PatienceWarning

    class Flat(BoringModel):  # a validation metric that never improves: early stopping fires
        def validation_step(self, batch, batch_idx):
            self.log("val/ndcg_10", 0.5)

    stop = EarlyStopping(monitor="val/ndcg_10", mode="max", patience=patience)
    warn = PatienceWarning(min_batches=200)
    trainer = L.Trainer(max_epochs=100, limit_train_batches=batches, limit_val_batches=1, callbacks=[stop, warn],
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(Flat())
    assert stop.stopped_epoch == patience  # stopped early, well before the cap
    if warned:
        assert warn.message is not None and f"= {patience * batches} training batches" in warn.message
        assert any("early stopping ended training" in str(w.message) for w in recwarn)
    else:
        assert warn.message is None


def test_patience_warning_silent_without_an_early_stop(tmp_path):
    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel

    from vrs.lit.callbacks import PatienceWarning

    warn = PatienceWarning()
    trainer = L.Trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=1, callbacks=[warn],
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(BoringModel())
    assert warn.message is None
    with pytest.raises(ValueError, match="min_batches"):
        PatienceWarning(min_batches=0)


def test_log_progress_writes_lines_with_counts_rates_and_time_left(tmp_path, caplog):
    import logging

    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel

    from vrs.lit.callbacks import LogProgress

    often, never = LogProgress(every_s=1e-9), LogProgress(every_s=3600)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=3, callbacks=[often, never],
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="vrs.progress"):
        trainer.fit(BoringModel())
        trainer.test(BoringModel(), verbose=False)
    assert not never.lines  # loops shorter than the interval log nothing
    train = [ln for ln in often.lines if ln.startswith("train epoch 0: ")]
    assert [ln.split(" (")[0] for ln in train] == [f"train epoch 0: batch {i}/4" for i in range(1, 5)]
    assert "batches/s, about" in train[0] and train[-1].endswith("about 0 s left")
    assert any(ln.startswith("validation: batch 3/3 (100%)") for ln in often.lines)
    assert any(ln.startswith("test: batch ") for ln in often.lines)
    assert [r.getMessage() for r in caplog.records if r.name == "vrs.progress"] == list(often.lines)
    with pytest.raises(ValueError, match="every_s must be > 0"):
        LogProgress(every_s=0)
