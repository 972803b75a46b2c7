"""Trainer config, optimiser factory and the single-process engine (in-process, no MPI)."""

import json

import pytest
import torch
import yaml

from deep_perception.train.__main__ import main
from deep_perception.train.config import OPTIMIZERS, ConfigError, load_config
from deep_perception.train.engine import Trainer, global_batches, rank_share, train_data_parallel
from deep_perception.train.flat import GradBuckets
from deep_perception.train.optim import build_optimizer, build_scheduler

BASE = {"task": "blobs", "task_target": "_train_tasks:BlobTask",
        "train": {"epochs": 2, "batch_size": 8, "progress": False}}


def config(tmp_path, *overrides):
    return load_config(None, [f"output={tmp_path}", *overrides], base=BASE)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimiser_builds_from_config_and_steps(tmp_path, name):
    cfg = config(tmp_path, f"optimizer.name={name}", "optimizer.lr=0.01", "schedule.name=exponential",
                 "schedule.gamma=0.5")
    trainer = Trainer(cfg)
    expected = {"sgd": torch.optim.SGD, "momentum": torch.optim.SGD, "nesterov": torch.optim.SGD,
                "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam,
                "adamw": torch.optim.AdamW}[name]
    assert type(trainer.optimizer) is expected
    group = trainer.optimizer.param_groups[0]
    assert group["lr"] == 0.01
    if name in ("momentum", "nesterov"):
        assert group["momentum"] == 0.9 and group["nesterov"] == (name == "nesterov")
    if name == "sgd":
        assert group["momentum"] == 0
    before = [p.detach().clone() for p in trainer.model.parameters()]
    batch = next(iter(torch.utils.data.DataLoader(trainer.datasets["train"], batch_size=8)))
    trainer.grads.zero()
    trainer.forward_backward(batch, 1.0)
    trainer.optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    trainer.scheduler.step()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.005)


def test_step_schedule():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], {"name": "sgd", "lr": 1.0})
    sched = build_scheduler(opt, {"name": "step", "step_size": 2, "gamma": 0.1})
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01])


@pytest.mark.parametrize("override, key", [
    ("optimizer.name=lbfgs", "optimizer.name"),
    ("optimizer.lr=-1", "optimizer.lr"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.epochs=two", "train.epochs"),
    ("schedule.name=cosine", "schedule.name"),
    ("distributed.staleness_policy=ignore", "distributed.staleness_policy"),
    ("optimizer.betas=[0.9]", "optimizer.betas"),
    ("threads=0", "threads"),
])
def test_config_errors_name_the_key(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config(tmp_path, override)


def test_yaml_file_overrides_and_cli_error(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "optimizer": {"name": "adam", "lr": 0.1}}))
    cfg = load_config(path, ["optimizer.lr=0.5", "data.points=64"])
    assert cfg["optimizer"]["lr"] == 0.5 and cfg["optimizer"]["name"] == "adam"
    assert cfg["data"] == {"points": 64}          # task-owned keys pass through
    assert cfg["train"]["eval_batch_size"] == 64  # defaults filled
    assert main(["--config", str(path), "--set", "optimizer.lr=0"]) == 2
    assert "optimizer.lr" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_global_batches_are_disjoint_and_seeded():
    batches = global_batches(50, 12, seed=3, epoch=1, drop_last=False)
    flat = sorted(int(i) for b in batches for i in b)
    assert flat == list(range(50))
    shares = [set(rank_share(batches[0], r, 4).tolist()) for r in range(3)]
    assert sum(map(len, shares)) == 12 and len(set().union(*shares)) == 12
    assert [b.tolist() for b in global_batches(50, 12, 3, 1)] == [b.tolist() for b in batches[:4]]
    assert global_batches(50, 12, 3, 2)[0].tolist() != batches[0].tolist()


def test_gradient_buckets_are_views():
    model = torch.nn.Sequential(torch.nn.Linear(100, 100), torch.nn.Linear(100, 10))
    grads = GradBuckets(model, bucket_mb=1000 * 4 / 2 ** 20)  # [b2, w2] [b1, w1]
    assert len(grads.buckets) == 2 and grads.numel == 100 * 100 + 100 + 100 * 10 + 10
    model(torch.randn(4, 100)).sum().backward()
    grads.ensure_views()
    total = sum(float(b.abs().sum()) for b in grads.buckets)
    assert total == pytest.approx(sum(float(p.grad.abs().sum()) for p in model.parameters()), rel=1e-6)
    grads.zero()
    assert all(float(p.grad.abs().sum()) == 0 for p in model.parameters())


def test_single_process_run_keeps_best_on_validation_and_resumes(tmp_path):
    full = Trainer(config(tmp_path / "full", "train.epochs=3", "optimizer.name=momentum",
                          "optimizer.lr=0.05"))
    test = train_data_parallel(full)
    metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    scores = [e["val_score"] for e in metrics["epochs"]]
    assert metrics["best"]["score"] == max(scores)
    assert metrics["best"]["epoch"] == scores.index(max(scores)) + 1
    assert metrics["test"] == test and metrics["test_model"] == "best"
    assert (tmp_path / "full" / "curves.png").stat().st_size > 1000

    part = Trainer(config(tmp_path / "part", "train.epochs=1", "optimizer.name=momentum",
                          "optimizer.lr=0.05"))
    train_data_parallel(part)
    resumed = Trainer(config(tmp_path / "part", "train.epochs=3", "optimizer.name=momentum",
                             "optimizer.lr=0.05"))
    resumed.resume(tmp_path / "part" / "last.pt")
    assert resumed.epoch == 1
    train_data_parallel(resumed)
    again = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert [e["train_loss"] for e in again["epochs"]] == [e["train_loss"] for e in metrics["epochs"]]
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key])
    assert a["step"] == b["step"] == 3 * (96 // 8)
