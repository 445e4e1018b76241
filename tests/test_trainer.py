"""The trainer: learning, exact resume, checkpoints, early stopping, DDP on CPU; the files it
writes, and the train flow's recording of them (metrics rows, registration)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy import select

from tests.test_shards import STEREO, TINY, make_segments
from vocalmine.flows.train import record_run
from vocalmine.storage.catalog import Catalog, TrainingMetric
from vocalmine.storage.registry import ModelRegistry
from vocalmine.storage.shard_writer import ShardWriter
from vocalmine.training import trainer as trainer_module
from vocalmine.training.dataset import ShardDataset
from vocalmine.training.finetune import freeze, init_model, save_init_weights, set_training
from vocalmine.training.launch import launch, torchrun_command
from vocalmine.training.models import build_model
from vocalmine.training.registered import load_model
from vocalmine.training.trainer import TrainConfig, read_metrics, train


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """The test machine is small and shared: one intra-op thread avoids oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> str:
    """24 train rows in row groups of 4 (one per-rank batch), 4 valid rows: 64×32 patches."""
    root = tmp_path_factory.mktemp("shards")
    with ShardWriter(str(root), "ds", TINY, rows_per_shard=8, rows_per_group=4) as writer:
        for pair in range(12):
            writer.write_pair(pair, make_segments(pair, 2))
        writer.write_pair(99, make_segments(99, 4, split="valid"))
    return str(root)


def config(shards: str, run_dir: Path, **overrides: object) -> TrainConfig:
    values = {
        "shard_root": shards,
        "dataset": "ds",
        "run_dir": str(run_dir),
        "name": "tiny",
        "width": 4,
        "batch_size": 4,
        "lr": 1e-3,
        "steps_per_epoch": 4,
        "max_steps": 8,
        "log_every": 1,
        "checkpoint_every": 4,
        "num_workers": 0,
        "shuffle_buffer": 8,
        "tensorboard": False,
    }
    values.update(overrides)
    return TrainConfig(**values)


def test_training_lowers_the_validation_loss_and_the_flow_registers_the_best_model(
    shards: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    run = tmp_path / "run"
    cfg = config(shards, run, max_steps=12, tensorboard=True, dropout=0.0)
    run.mkdir()
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    result = train(cfg)
    assert result["steps"] == 12 and result["epochs"] == 3 and len(result["losses"]) == 12
    # The trainer writes files only: metrics.jsonl, TensorBoard, checkpoints, result.json.
    assert "version" not in result and not (tmp_path / "catalog.db").exists()
    written = read_metrics(run)
    val_l1 = [r["value"] for r in written if r["split"] == "valid" and r["name"] == "l1"]
    assert len(val_l1) == 3 and val_l1[-1] < val_l1[0]
    assert [r["step"] for r in written if r["name"] == "steps_per_s"] == list(range(1, 13))
    assert result["best_checkpoint"] == str(run / "checkpoints" / "best.pt")
    assert list((run / "tensorboard").iterdir())

    recorded = record_run(run, catalog_url=url, model_root=str(tmp_path / "models"))
    assert recorded["version"] == 1
    catalog = Catalog(url)
    with catalog.session() as session:
        rows = session.scalars(select(TrainingMetric).where(TrainingMetric.split == "valid"))
        assert [r.value for r in rows if r.name == "l1"] == val_l1
    model, record = load_model(ModelRegistry(str(tmp_path / "models"), catalog), "tiny")
    assert record["metrics"]["val_l1"] == pytest.approx(min(val_l1))
    assert record["metrics"]["best_step"] == 4 * (1 + val_l1.index(min(val_l1)))
    assert record["manifest"]["counts"]["rows"] == 28 and "sha256" in record["manifest"]
    assert record["config"]["width"] == 4 and model.width == 4
    assert json.loads((run / "result.json").read_text())["version"] == 1

    again = train(cfg)  # a finished run started again trains and logs nothing new ...
    assert again["losses"] == result["losses"] and read_metrics(run) == written
    recorded = record_run(run, catalog_url=url, model_root=str(tmp_path / "models"))
    assert recorded["version"] == 1  # ... and registers nothing new, nor duplicates a row
    assert len(ModelRegistry(str(tmp_path / "models"), catalog).list("tiny")) == 1
    with catalog.session() as session:
        assert len(session.scalars(select(TrainingMetric)).all()) == len(written)


def test_a_resumed_run_logs_each_step_once(shards: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(config(shards, run, max_steps=6, checkpoint_every=4))
    # Killed after logging step 6 but before its checkpoint: the run resumes from step 4.
    train(config(shards, tmp_path / "at4", max_steps=4, checkpoint_every=4))
    shutil.copy(tmp_path / "at4" / "checkpoints" / "last.pt", run / "checkpoints" / "last.pt")
    train(config(shards, run, max_steps=8, checkpoint_every=4))
    rows = read_metrics(run)
    assert [r["step"] for r in rows if r["split"] == "train" and r["name"] == "l1"] == list(
        range(1, 9)
    )
    assert [r["step"] for r in rows if r["split"] == "valid" and r["name"] == "l1"] == [4, 8]


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_reproduces_the_uninterrupted_losses(
    shards: str, tmp_path: Path, workers: int
) -> None:
    straight = train(config(shards, tmp_path / "a", max_steps=8, num_workers=workers))
    first = train(config(shards, tmp_path / "b", max_steps=4, num_workers=workers))
    resumed = train(config(shards, tmp_path / "b", max_steps=8, num_workers=workers))
    assert first["losses"] == straight["losses"][:4]
    assert resumed["losses"][:4] == first["losses"]
    assert resumed["losses"][4:] == pytest.approx(straight["losses"][4:], abs=1e-6)


def test_a_checkpoint_mid_epoch_resumes_exactly(shards: str, tmp_path: Path) -> None:
    straight = train(config(shards, tmp_path / "a", max_steps=7, checkpoint_every=3))
    train(config(shards, tmp_path / "b", max_steps=3, checkpoint_every=3))
    resumed = train(config(shards, tmp_path / "b", max_steps=7, checkpoint_every=3))
    assert resumed["losses"] == pytest.approx(straight["losses"], abs=1e-6)


def test_early_stopping_ends_after_patience_epochs(shards: str, tmp_path: Path) -> None:
    result = train(config(shards, tmp_path / "run", lr=0.0, max_steps=40, patience=2))
    assert result["stopped_early"]
    assert result["epochs"] == 3 and result["steps"] == 12  # best at epoch 1, then 2 worse
    assert result["best_step"] == 4


def test_volume_balance_mse_and_augmentation_options_train(shards: str, tmp_path: Path) -> None:
    cfg = config(
        shards,
        tmp_path / "run",
        model="spectrogram-channels",
        loss="mse",
        volume_balance=True,
        augment={"p": 0.5, "gain": 0.2, "time_stretch": 0.1, "pitch_shift": 0.1},
        max_steps=4,
    )
    result = train(cfg)
    assert result["steps"] == 4 and result["validation"]["mse"] > 0


def test_wrong_preset_is_refused(shards: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shards use preset 'tiny', not 'paper'"):
        train(config(shards, tmp_path / "run", preset="paper"))


def init_file(path: Path, *, seed: int = 7, **model: object) -> dict[str, torch.Tensor]:
    """Save a freshly seeded tiny model as an init weights file; returns its state."""
    torch.manual_seed(seed)
    values = {"kind": "unet", "preset": TINY, "width": 4, **model}
    net = build_model(values.pop("kind"), values.pop("preset"), **values)
    save_init_weights(path, net)
    return {key: value.clone() for key, value in net.state_dict().items()}


def last_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_init_from_sets_the_starting_weights_and_a_resumed_run_ignores_it(
    shards: str, tmp_path: Path
) -> None:
    start = init_file(tmp_path / "init.pt")
    params = [name for name, _ in build_model("unet", TINY, width=4).named_parameters()]
    # At learning rate 0 Adam leaves every parameter where the run started.
    run = tmp_path / "run"
    train(config(shards, run, lr=0.0, max_steps=1, init_from=str(tmp_path / "init.pt")))
    for name in params:
        torch.testing.assert_close(last_weights(run)[name], start[name], rtol=0, atol=0)
    plain = tmp_path / "plain"
    train(config(shards, plain, lr=0.0, max_steps=1))
    assert not torch.equal(last_weights(plain)[params[0]], start[params[0]])
    # Resuming takes the checkpoint's weights: the file (now unfit) is not even read.
    init_file(tmp_path / "init.pt", width=8)
    resumed = train(config(shards, run, max_steps=2, init_from=str(tmp_path / "init.pt")))
    assert resumed["steps"] == 2


@pytest.mark.parametrize(
    ("saved", "message"),
    [({"width": 8}, "width 8 (run: 4)"), ({"kind": "no-skip"}, "kind 'no-skip' (run: 'unet')")],
)
def test_init_weights_for_another_model_fail_with_one_line(
    shards: str, tmp_path: Path, saved: dict[str, object], message: str
) -> None:
    init_file(tmp_path / "init.pt", **saved)
    with pytest.raises(ValueError, match="do not fit") as error:
        train(config(shards, tmp_path / "run", init_from=str(tmp_path / "init.pt")))
    assert message in str(error.value) and "\n" not in str(error.value)
    stereo = build_model("unet", STEREO, width=4)
    with pytest.raises(ValueError, match=r"preset tiny \(8192 Hz, 1 ch") as error:
        init_model(stereo, tmp_path / "init.pt")
    assert "\n" not in str(error.value)


def frozen_run(shards: str, tmp_path: Path, mode: str) -> tuple[dict, dict, dict]:
    """Start, end and checkpoint of 6 steps with ``freeze=mode`` (validating mid-run)."""
    start = init_file(tmp_path / "init.pt")
    run = tmp_path / "run"
    init = str(tmp_path / "init.pt")
    train(config(shards, run, max_steps=6, steps_per_epoch=2, freeze=mode, init_from=init))
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    return start, saved["model"], saved


def test_freeze_norm_keeps_batch_norm_statistics_and_affine_parameters(
    shards: str, tmp_path: Path
) -> None:
    start, end, saved = frozen_run(shards, tmp_path, "norm")
    norms = [k for k in start if ".norm." in k]
    convs = [k for k in start if ".norm." not in k and k.endswith("weight")]
    assert any(k.endswith("running_mean") for k in norms) and convs
    for key in norms:
        assert torch.equal(end[key], start[key]), key
    for key in convs:
        assert not torch.equal(end[key], start[key]), key
    # The optimiser holds exactly the parameters outside the batch norms.
    trained = sum(len(group["params"]) for group in saved["optimiser"]["param_groups"])
    params = [name for name, _ in build_model("unet", TINY, width=4).named_parameters()]
    assert trained == len([name for name in params if ".norm." not in name])


def test_freeze_encoder_trains_only_the_decoder_and_head(shards: str, tmp_path: Path) -> None:
    start, end, _ = frozen_run(shards, tmp_path, "encoder")
    encoder = [k for k in start if ".encoder." in k]
    decoder = [k for k in start if ".decoder." in k and k.endswith("weight")]
    assert encoder and decoder
    for key in encoder:
        assert torch.equal(end[key], start[key]), key
    for key in decoder:
        assert not torch.equal(end[key], start[key]), key


@pytest.mark.parametrize("kind", ["unet", "spleeter"])
def test_frozen_batch_norms_stay_in_eval_mode_and_spleeter_has_an_encoder(kind: str) -> None:
    model = build_model(kind, TINY, width=4)
    norms = freeze(model, "encoder")
    assert norms and all(not p.requires_grad for n in norms for p in n.parameters())
    set_training(model, norms)
    assert model.training and not any(n.training for n in norms)
    assert all(p.requires_grad for name, p in model.named_parameters() if "decoder" in name)


def test_freezing_one_source_network_leaves_only_the_other_trainable() -> None:
    model = build_model("spleeter", TINY, width=4)
    norms = freeze(model, "norm+vocals")
    vocals, accompaniment = model.nets["vocals"], model.nets["accompaniment"]
    assert not any(p.requires_grad for p in vocals.parameters())
    trainable = [n for n, p in accompaniment.named_parameters() if p.requires_grad]
    assert trainable and not any(".norm." in n for n in trainable)
    assert all(isinstance(n, torch.nn.BatchNorm2d) for n in norms)
    with pytest.raises(ValueError, match="no vocals network"):
        freeze(build_model("spectrogram-channels", TINY, width=4), "vocals")
    with pytest.raises(ValueError, match="unknown freeze"):
        TrainConfig(shard_root="s", dataset="d", run_dir="r", freeze="norm+decoder")


def test_raw_input_models_get_raw_patches(
    shards: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, bool]] = []

    class Recording(ShardDataset):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            seen.append((self.split, self.normalise))

    monkeypatch.setattr(trainer_module, "ShardDataset", Recording)
    for kind in ("unet", "spleeter"):
        train(config(shards, tmp_path / kind, model=kind, max_steps=1))
    assert seen == [("train", True), ("valid", True), ("train", False), ("valid", False)]


def test_torchrun_command_for_one_and_several_nodes() -> None:
    single = torchrun_command("c.json", nproc=2)
    assert "--standalone" in single and "--nproc-per-node=2" in single
    assert single[-3:] == ["-m", "vocalmine.training.trainer", "c.json"]
    multi = torchrun_command("c.json", nproc=8, nnodes=2, node_rank=1, rdzv_endpoint="h:29400")
    assert "--nnodes=2" in multi and "--rdzv-endpoint=h:29400" in multi
    assert "--node-rank=1" in multi and "--standalone" not in multi


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(
    shards: str, tmp_path: Path
) -> None:
    # Row groups of 4 rows, no shuffle buffer: rank 0 and rank 1 each read one row group per
    # step, and together they see exactly the 8 rows the single process sees in its step.
    common = {"batch_size": 8, "max_steps": 6, "dropout": 0.0, "shuffle_buffer": 1}
    single = train(config(shards, tmp_path / "one", **common))
    cfg = config(shards, tmp_path / "two", **common)
    (tmp_path / "two").mkdir()
    path = tmp_path / "two" / "config.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert launch(path, nproc=2) == 0
    # The processes have finished: the flow's recording reads the files they wrote.
    recorded = record_run(
        tmp_path / "two",
        catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}",
        model_root=str(tmp_path / "models"),
    )
    double = json.loads((tmp_path / "two" / "result.json").read_text())
    assert recorded["version"] == double["version"] == 1 and double["steps"] == 6
    assert {r["step"] for r in read_metrics(tmp_path / "two") if r["name"] == "l1"} >= {6}
    # Batch norm normalises each rank's 4 rows on their own, so the curves agree closely
    # but not bit for bit.
    assert double["losses"] == pytest.approx(single["losses"], rel=0.01)
    shutil.rmtree(tmp_path / "two")


def test_train_tiny_trains_and_registers_a_small_model(shards: str, tmp_path: Path) -> None:
    from tests.training_support import train_tiny

    result = train_tiny(f"{shards}/ds", data_dir=str(tmp_path), max_steps=4)
    assert result["version"] == 1 and result["steps"] == 4
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    registry = ModelRegistry(str(tmp_path / "models"), catalog)
    assert registry.current("tiny")["version"] == 1
    model, _ = load_model(registry, "tiny")
    assert model.kind == "unet" and model.width == 4


@pytest.mark.slow
def test_train_command_runs_the_flow_and_prints_the_scores(shards: str, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from vocalmine.cli.train import train_command

    app = typer.Typer()
    app.command("train")(train_command)
    app.command("noop")(lambda: None)
    args = ["train", "--shards", f"{shards}/ds", "--data-dir", str(tmp_path), "--width", "2"]
    args += ["--max-steps", "2", "--steps-per-epoch", "2", "--batch-size", "4", "--workers", "0"]
    args += ["--model", "no-skip", "--name", "cli", "--run-dir", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "cli v1" in result.output and "l1_vocals" in result.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"] == "no-skip" and saved["width"] == 2
    bad = CliRunner().invoke(app, [*args[:5], "--preset", "hq"])
    assert bad.exit_code == 2 and "not 'hq'" in bad.output
