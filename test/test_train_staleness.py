"""Async down-weighting of stale pushes scales the UPDATE (the step's learning rate), so it works for
adaptive optimisers too; the learning rate is restored exactly (no MPI needed)."""

import copy

import pytest
import torch

from deep_perception.train.optim import (build_optimizer, build_scheduler, staleness_weight,
                                         weighted_step)

MAX_STALENESS, STALENESS = 2, 8
W = (MAX_STALENESS + 1) / (STALENESS + 1)  # 1/3


def test_staleness_weight():
    assert staleness_weight(0, 2, "downweight") == staleness_weight(2, 2, "drop") == 1.0
    assert staleness_weight(3, 2, "drop") == 0.0
    assert staleness_weight(STALENESS, MAX_STALENESS, "downweight") == pytest.approx(W)
    assert staleness_weight(3, 2, "downweight") == pytest.approx(0.75)
    with pytest.raises(ValueError, match="staleness_policy"):
        staleness_weight(5, 2, "halve")


def _warm_optimizer(name):
    """A small model and its optimiser after a few ordinary steps (non-trivial optimiser state)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 3).double()  # float64: parameter differences without rounding noise
    opt = build_optimizer(model.parameters(), {"name": name, "lr": 0.01})
    x, y = torch.randn(16, 6, dtype=torch.float64), torch.randn(16, 3, dtype=torch.float64)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y * 2).backward()  # the pushed gradient
    return model, opt


def _change(name, weight, scale_gradient=False):
    """Norm of the parameter change of one push with ``weight`` from the same warm state."""
    model, opt = _warm_optimizer(name)
    before = [p.detach().clone() for p in model.parameters()]
    if scale_gradient:  # the old, broken way: scale the gradient, plain step
        for p in model.parameters():
            p.grad.mul_(weight)
        opt.step()
    else:
        weighted_step(opt, weight)
    assert opt.param_groups[0]["lr"] == 0.01
    return torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])


def test_sgd_change_scales_by_w():
    fresh, stale = _change("sgd", 1.0), _change("sgd", W)
    assert torch.allclose(stale, W * fresh, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop", "adagrad"])
def test_adaptive_optimiser_stale_push_changes_parameters_less(name):
    fresh, stale = _change(name, 1.0).norm(), _change(name, W).norm()
    assert stale < 0.5 * fresh
    assert stale == pytest.approx(W * fresh, rel=1e-4)
    if name.startswith("adam"):
        # scaling the gradient instead hardly changes Adam's step: the bug this replaces
        grad_scaled = _change(name, W, scale_gradient=True).norm()
        assert grad_scaled > 0.6 * fresh


def test_lr_is_restored_exactly_and_schedule_unaffected():
    model, opt = _warm_optimizer("adam")
    opt.param_groups[0]["lr"] = 0.1 / 3  # a value that w * lr / w would not give back bit-exactly
    sched = build_scheduler(opt, {"name": "step", "step_size": 1, "gamma": 0.5})
    lr = opt.param_groups[0]["lr"]
    reference = copy.deepcopy(sched.state_dict())
    weighted_step(opt, 0.3)
    assert opt.param_groups[0]["lr"] == lr
    assert sched.state_dict() == reference
    sched.step()
    assert opt.param_groups[0]["lr"] == lr * 0.5


def test_lr_restored_when_step_raises():
    model, opt = _warm_optimizer("sgd")
    seen = []

    def failing_step():
        seen.append(opt.param_groups[0]["lr"])
        raise RuntimeError("step failed")

    opt.step = failing_step
    with pytest.raises(RuntimeError, match="step failed"):
        weighted_step(opt, 0.25)
    assert seen == [0.01 * 0.25] and opt.param_groups[0]["lr"] == 0.01
