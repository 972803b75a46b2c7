"""Confusion-matrix PNG (row-normalised colours, raw counts written in the cells)."""

import numpy as np

from deep_perception.fileio import atomic_path


def plot_confusion(cm, class_names, path, title="confusion matrix", skip_empty=True):
    """Write a confusion matrix (rows = truth, columns = prediction) as a PNG; returns ``path``.

    Classes absent from both truth and prediction are left out when ``skip_empty``.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=np.int64)
    keep = np.arange(len(class_names))
    if skip_empty:
        keep = keep[(cm.sum(axis=0) + cm.sum(axis=1)) > 0]
    cm = cm[np.ix_(keep, keep)]
    names = [class_names[i] for i in keep]
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    size = max(4.0, 0.7 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{cm[i, j]}\n{frac[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if frac[i, j] > 0.6 else "black")
    total = cm.sum()
    ax.set_title(f"{title}\nOA {np.trace(cm) / max(total, 1):.3f}, n = {total}")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
