"""Training configuration: YAML file + ``key.path=value`` overrides + validation with clear errors.

The trainer owns the keys below; every other top-level key (``data``, ``model``, ...) belongs to the
task and is passed through untouched (the task receives the whole merged dict).

.. code-block:: yaml

    task: pointnet_cls          # name in deep_perception.train.task.TASKS
    task_target: null           # optional "module:Class" registered under `task` (plugins, tests)
    seed: 0
    threads: 1                  # torch threads per process (mpirun gives 1 per rank otherwise)
    output: out/train/run       # checkpoints, metrics.json, curves.png
    train:
      epochs: 10
      batch_size: 32            # per process; sync mode's global batch is ranks x batch_size
      eval_batch_size: 64
      num_workers: 0            # DataLoader workers
      max_steps_per_epoch: null # cap for smoke runs
      progress: true            # tqdm on rank 0
    optimizer: {name: adam, lr: 0.001, weight_decay: 0.0, momentum: 0.9, betas: [0.9, 0.999], eps: 1e-8}
    schedule: {name: step, step_size: 20, gamma: 0.5}   # none | step | exponential (per epoch)
    distributed:
      mode: none                # none | sync | async (the CLI's --distributed wins)
      bucket_mb: 8              # sync: size of the contiguous gradient buckets
      overlap: false            # sync: all-reduce each bucket while backward continues (comm thread;
                                #   pays off with idle cores, costs CPU on oversubscribed ones)
      max_staleness: 8          # async: pushes older than this many versions are ...
      staleness_policy: drop    # ... dropped, or applied with lr x (max+1)/(staleness+1) ("downweight")
"""

import copy
import os

import yaml

DEFAULTS = {
    "seed": 0,
    "threads": 1,
    "output": "out/train/run",
    "train": {
        "epochs": 10,
        "batch_size": 32,
        "eval_batch_size": 64,
        "num_workers": 0,
        "max_steps_per_epoch": None,
        "progress": True,
    },
    "optimizer": {
        "name": "adam",
        "lr": 1e-3,
        "weight_decay": 0.0,
        "momentum": 0.9,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "alpha": 0.99,
    },
    "schedule": {"name": "none", "step_size": 20, "gamma": 0.5},
    "distributed": {
        "mode": "none",
        "bucket_mb": 8.0,
        "overlap": False,
        "max_staleness": 8,
        "staleness_policy": "drop",
    },
}

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("none", "step", "exponential")
MODES = ("none", "sync", "async")
POLICIES = ("drop", "downweight")


class ConfigError(ValueError):
    """A training configuration value is missing or invalid; the message names the key."""


def _merge(base, override):
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(config, item):
    """Apply one ``a.b.c=value`` override in place; the value is parsed as YAML (numbers, lists...)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.path=value")
    path, raw = item.split("=", 1)
    keys = [k for k in path.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {path}: cannot parse value {raw!r}: {exc}") from exc
    node = config
    for i, key in enumerate(keys[:-1]):
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {path}: {'.'.join(keys[:i + 1])} is not a mapping")
    node[keys[-1]] = value


def load_config(path=None, overrides=(), base=None):
    """Read YAML ``path`` (or start from ``base``), apply overrides, fill defaults, validate."""
    raw = copy.deepcopy(base) if base is not None else {}
    if path is not None:
        if not os.path.isfile(path):
            raise ConfigError(f"config file not found: {path}")
        with open(path, encoding="utf-8") as f:
            try:
                loaded = yaml.safe_load(f) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping, got {type(loaded).__name__}")
        raw = _merge(raw, loaded)
    for item in overrides:
        apply_override(raw, item)
    config = _merge(DEFAULTS, raw)
    validate(config)
    return config


def _number(config, dotted, kind=float, minimum=None, allow_none=False, strict_min=False):
    node = config
    for key in dotted.split("."):
        node = node[key]
    if node is None and allow_none:
        return
    ok_types = (int,) if kind is int else (int, float)
    if isinstance(node, bool) or not isinstance(node, ok_types):
        raise ConfigError(f"{dotted} must be {'an integer' if kind is int else 'a number'}, got {node!r}")
    if minimum is not None and (node <= minimum if strict_min else node < minimum):
        raise ConfigError(f"{dotted} must be {'>' if strict_min else '>='} {minimum}, got {node!r}")


def _choice(config, dotted, choices):
    node = config
    for key in dotted.split("."):
        node = node[key]
    if node not in choices:
        raise ConfigError(f"{dotted} must be one of {list(choices)}, got {node!r}")


def validate(config):
    """Raise ConfigError naming the first invalid key."""
    if not isinstance(config.get("task"), str):
        raise ConfigError(f"task must be a task name (string), got {config.get('task')!r}")
    target = config.get("task_target")
    if target is not None and (not isinstance(target, str) or target.count(":") != 1):
        raise ConfigError(f"task_target must be 'module:Class', got {target!r}")
    for section in ("train", "optimizer", "schedule", "distributed"):
        if not isinstance(config.get(section), dict):
            raise ConfigError(f"{section} must be a mapping, got {config.get(section)!r}")
    if not isinstance(config.get("output"), str) or not config["output"]:
        raise ConfigError(f"output must be a directory path, got {config.get('output')!r}")
    _number(config, "seed", int, 0)
    _number(config, "threads", int, 1)
    _number(config, "train.epochs", int, 1)
    _number(config, "train.batch_size", int, 1)
    _number(config, "train.eval_batch_size", int, 1)
    _number(config, "train.num_workers", int, 0)
    _number(config, "train.max_steps_per_epoch", int, 1, allow_none=True)
    _choice(config, "optimizer.name", OPTIMIZERS)
    _number(config, "optimizer.lr", float, 0, strict_min=True)
    _number(config, "optimizer.weight_decay", float, 0)
    _number(config, "optimizer.momentum", float, 0)
    _number(config, "optimizer.eps", float, 0, strict_min=True)
    _number(config, "optimizer.alpha", float, 0)
    betas = config["optimizer"]["betas"]
    if (not isinstance(betas, (list, tuple)) or len(betas) != 2
            or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
        raise ConfigError(f"optimizer.betas must be two numbers in [0, 1), got {betas!r}")
    _choice(config, "schedule.name", SCHEDULES)
    _number(config, "schedule.step_size", int, 1)
    _number(config, "schedule.gamma", float, 0, strict_min=True)
    _choice(config, "distributed.mode", MODES)
    _number(config, "distributed.bucket_mb", float, 0, strict_min=True)
    _number(config, "distributed.max_staleness", int, 0)
    if not isinstance(config["distributed"]["overlap"], bool):
        raise ConfigError(f"distributed.overlap must be true or false, got {config['distributed']['overlap']!r}")
    _choice(config, "distributed.staleness_policy", POLICIES)
    return config
