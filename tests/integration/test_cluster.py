"""Cluster launches (vrs-train -m hydra/launcher=slurm|local): jobs through submitit, one run folder
per job for all its ranks and restarts, continuation from the folder's checkpoint, and the SLURM job
a 2-node x 8-GPU launch submits."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import submitit
import torch
import yaml
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hydra_plugins.vrs_launcher import vrs_launcher
from tests.conftest import compose_config

ROOT = Path(__file__).resolve().parents[2]


def _multirun(tmp_path: Path, data: Path, *overrides: str) -> subprocess.CompletedProcess:
    """vrs-train -m through submitit's local executor, on the small dataset, in tmp_path/sweep."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    args = [
        "-m",
        "hydra/launcher=local",
        f"data.root={data}",
        "data.generate=null",
        "data.image_size=32",
        "model.dim=8",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *overrides,
    ]
    result = subprocess.run(
        [sys.executable, "-m", "vrs.cli.train", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _job_logs(sweep: Path) -> str:
    """What every task of every job printed (submitit keeps it under .submitit/<job id>/)."""
    return "".join(p.read_text() for p in sorted((sweep / ".submitit").rglob("*_log.*")))


def test_jobs_run_in_their_own_folder_and_continue_after_a_preemption(
    tmp_path: Path, small_data: Path
) -> None:
    sweep = tmp_path / "sweep"
    # Each job is preempted once at the start of its second epoch; submitit requeues it.
    preempt = ["+callbacks.preempt._target_=tests.requeue.PreemptOnce",
               "+callbacks.preempt.marker=${paths.output_dir}/preempted"]  # fmt: skip
    _multirun(tmp_path, small_data, "seed=0,1", "trainer.max_epochs=2", *preempt)
    jobs = [p for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]
    assert len(jobs) == 2
    for job_dir in jobs:  # each job: the signal, the requeue (submitit logs to stdout and stderr)
        said = "".join(p.read_text() for p in job_dir.glob("*_log.*"))
        assert "this job is preempted" in said and "Requeued job" in said
    logs = _job_logs(sweep)
    for job, seed in (("0", 0), ("1", 1)):
        run = sweep / job
        assert (run / "preempted").is_file()
        # The requeued job continued its run (resume=last), in its own folder, with its own values.
        overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
        assert f"seed={seed}" in overrides and "resume=last" in overrides
        assert f"Restoring states from the checkpoint path at {run / 'checkpoints' / 'resume.ckpt'}" in logs
        assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == seed
        assert "test/ndcg_10" in json.loads((run / "metrics.json").read_text())
        ckpt = torch.load(run / "checkpoints" / "resume.ckpt", map_location="cpu", weights_only=False)
        assert ckpt["epoch"] == 1
        rows = list(csv.DictReader((run / "csv" / "metrics.csv").open()))
        assert sorted(int(r["epoch"]) for r in rows if r.get("val/ndcg_10")) == [0, 1]
    # Every folder came from the pinned sweep folder: no job or rank resolved a run folder of its own.
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow  # two DDP ranks in a job: about 2.5 minutes on 2 busy cores
def test_ddp_job_ranks_share_one_folder_and_one_feature_extraction(tmp_path: Path, small_data: Path) -> None:
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    overrides = ["seed=0", "trainer=ddp_cpu", "trainer.max_epochs=1", "data.batch_size=8", "test=false"]
    _multirun(tmp_path, small_data, *overrides, "encoder.finetune.freeze=true", f"feature_cache={cache}")
    # Both ranks joined one process group and logged into the one run folder (the console shows
    # rank zero's lines only).
    logs = _job_logs(sweep) + (sweep / "0" / "train.log").read_text()
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in logs and "GLOBAL_RANK: 1, MEMBER: 2/2" in logs
    assert sorted(p.name for p in sweep.iterdir() if not p.name.startswith(".")) == ["0", "multirun.yaml"]
    assert "val/ndcg_10" in json.loads((sweep / "0" / "metrics.json").read_text())
    # One complete entry per modality, extracted once: no second extraction, no shards left over.
    entries = sorted(p.name.split("-")[0] for p in cache.iterdir() if p.is_dir())
    assert entries == ["image", "text"]
    assert not (tmp_path / "logs").exists()


def _slurm_config(tmp_path: Path, *overrides: str):
    return compose_config("train", ["hydra/launcher=slurm", *overrides], tmp_path)


def test_two_nodes_of_eight_gpus_submit_one_slurm_job_of_sixteen_tasks_per_multirun_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _slurm_config(
        tmp_path,
        "trainer=ddp", "trainer.devices=8", "trainer.num_nodes=2", "hydra.launcher.partition=gpu",
        "hydra.launcher.account=proj", "hydra.launcher.timeout_min=90",
    )  # fmt: skip
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    monkeypatch.setattr(vrs_launcher, "NODE_LOCAL", ())  # tmp_path stands for a shared folder here
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # no srun here
    submitted = {}

    class Submitted:
        def results(self) -> list[None]:
            return [None]

    def map_array(executor, fn, *args):
        submitted.update(executor=executor, fn=fn, args=args)
        return [Submitted() for _ in args[0]]

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    launcher.launch([["seed=0"], ["seed=1"]], initial_job_idx=0)
    sbatch = submitted["executor"]._executor._make_submission_file_text("COMMAND", "uid")
    for flag in ("nodes=2", "ntasks-per-node=8", "gpus-per-node=8", "partition=gpu", "account=proj",
                 "time=90", "requeue", "signal=USR2@120"):  # fmt: skip
        assert f"#SBATCH --{flag}\n" in sbatch
    assert "export SLURM_KILL_BAD_EXIT=1" in sbatch
    # Each task receives the sweep folder resolved once, at submission, not ${now:...}.
    assert submitted["fn"].sweep_dir == str(cfg.hydra.sweep.dir) and "${" not in submitted["fn"].sweep_dir
    assert [list(a) for a in submitted["args"][0]] == [["seed=0"], ["seed=1"]]


def test_slurm_launch_refuses_unusable_resources_and_node_local_folders(tmp_path: Path) -> None:
    # trainer=ddp's devices=-1 (every visible GPU) is no task count.
    with pytest.raises(InstantiationException, match=r"tasks_per_node=-1.*trainer.devices=8"):
        instantiate(_slurm_config(tmp_path, "trainer=ddp").hydra.launcher)
    cfg = _slurm_config(tmp_path, "trainer.devices=1", "hydra.launcher.gpus_per_node=null")
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    with pytest.raises(ValueError, match=f"hydra.sweep.dir={tmp_path}.* node-local"):
        launcher.launch([["seed=0"]], initial_job_idx=0)  # tmp_path is under /tmp


def test_a_job_continues_only_a_run_it_started_and_only_without_an_explicit_resume(tmp_path: Path) -> None:
    assert vrs_launcher.continuation(["seed=0"], tmp_path) == []
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "resume.ckpt").write_bytes(b"")
    assert vrs_launcher.continuation(["seed=0"], tmp_path) == ["resume=last"]
    assert vrs_launcher.continuation(["seed=0", "resume=/x/epoch_003.ckpt"], tmp_path) == []


def test_a_trainer_asking_for_other_ranks_than_the_launcher_started_is_refused() -> None:
    trainer = OmegaConf.create({"devices": 4, "num_nodes": 2})
    vrs_launcher.check_ranks(trainer, tasks_per_node=4, nodes=2)
    with pytest.raises(ValueError, match=r"trainer.devices=4 .* started 8 task\(s\) per node on 2"):
        vrs_launcher.check_ranks(trainer, tasks_per_node=8, nodes=2)


@pytest.mark.parametrize("path", ["/shared/runs/a b,c=[d]", "/shared/it's", "/shared/x\\y", "/shared/end\\"])
def test_a_pinned_folder_reaches_the_job_as_it_is(path: str) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = OverridesParser.create().parse_override(f"hydra.sweep.dir={vrs_launcher._quoted(path)}")
    assert override.value() == path
