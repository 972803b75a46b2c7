"""Optimiser and learning-rate schedule factory over ``torch.optim`` (chosen in the config)."""

import torch


def build_optimizer(params, cfg):
    """``cfg`` is the config's ``optimizer`` mapping; ``name`` is one of config.OPTIMIZERS.

    ``sgd`` is plain SGD (no momentum), ``momentum`` is SGD with heavy-ball momentum, ``nesterov`` is
    SGD with Nesterov momentum (momentum defaults to 0.9 for both).
    """
    name = cfg["name"]
    lr, wd = float(cfg["lr"]), float(cfg.get("weight_decay", 0.0))
    momentum = float(cfg.get("momentum", 0.9))
    params = list(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd)
    if name == "nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd, eps=float(cfg.get("eps", 1e-10)))
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=float(cfg.get("alpha", 0.99)),
                                   eps=float(cfg.get("eps", 1e-8)), weight_decay=wd,
                                   momentum=float(cfg.get("rmsprop_momentum", 0.0)))
    betas = tuple(float(b) for b in cfg.get("betas", (0.9, 0.999)))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=float(cfg.get("eps", 1e-8)),
                                weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=float(cfg.get("eps", 1e-8)),
                                 weight_decay=wd)
    raise ValueError(f"optimizer.name: unknown optimiser {name!r}")


def build_scheduler(optimizer, cfg):
    """Per-epoch schedule from the config's ``schedule`` mapping: none, step or exponential."""
    name = cfg.get("name", "none")
    if name == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(cfg["step_size"]),
                                               gamma=float(cfg["gamma"]))
    if name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=float(cfg["gamma"]))
    raise ValueError(f"schedule.name: unknown schedule {name!r}")


def current_lr(optimizer):
    return float(optimizer.param_groups[0]["lr"])


def staleness_weight(staleness, max_staleness, policy):
    """Weight of an async push: 1 when ``staleness <= max_staleness``; beyond the bound 0 (``drop``)
    or ``(max_staleness + 1) / (staleness + 1)`` (``downweight``, < 1 and falling like 1/staleness)."""
    if staleness <= max_staleness:
        return 1.0
    if policy == "drop":
        return 0.0
    if policy == "downweight":
        return (max_staleness + 1) / (staleness + 1)
    raise ValueError(f"distributed.staleness_policy: unknown policy {policy!r}")


def weighted_step(optimizer, weight):
    """``optimizer.step()`` with this step's update scaled by ``weight``.

    The learning rate of every param group is multiplied by ``weight`` for the step and the original
    value objects are put back afterwards, so a scheduler sees exactly the lr it set. Scaling the
    gradient instead would do nothing for Adam, RMSprop or Adagrad (their updates are nearly
    invariant to the gradient's scale). The optimiser state (moments, momentum buffers) still takes
    the gradient at full size; only the parameter change of this step is scaled.
    """
    if weight == 1.0:
        return optimizer.step()
    saved = [group["lr"] for group in optimizer.param_groups]
    try:
        for group, lr in zip(optimizer.param_groups, saved):
            group["lr"] = lr * weight
        return optimizer.step()
    finally:
        for group, lr in zip(optimizer.param_groups, saved):
            group["lr"] = lr
