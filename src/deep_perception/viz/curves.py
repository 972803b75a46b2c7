"""Training curves as a PNG: loss per epoch (train, validation) and the validation score."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from deep_perception.fileio import atomic_path  # noqa: E402


def plot_training_curves(history, path, title="training"):
    """``history`` is the engine's list of per-epoch records (metrics.json's ``epochs``)."""
    if not history:
        raise ValueError("no epochs to plot")
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        values = [r.get(key) for r in history]
        if any(v is not None for v in values):
            ax_loss.plot(epochs, values, marker="o", label=label)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    for key, label in (("train_accuracy", "train accuracy"), ("val_accuracy", "validation accuracy"),
                       ("val_score", "validation score (model selection)")):
        values = [r.get(key) for r in history]
        if any(v is not None for v in values):
            ax_score.plot(epochs, values, marker="o", label=label)
    ax_score.set_xlabel("epoch")
    ax_score.set_ylabel("score")
    ax_score.legend()
    ax_score.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
