"""Labelled point-cloud PNGs: prediction next to ground truth, coloured by surface class."""

import numpy as np

from deep_perception.fileio import atomic_path
from deep_perception.vocab import SURFACE_CLASSES, SURFACE_COLOURS


def label_colours(labels, colours=SURFACE_COLOURS):
    """(N,) labels → (N, 3) floats in [0, 1]; labels outside the palette are black."""
    pal = np.vstack([np.asarray(colours, float) / 255.0, [[0.0, 0.0, 0.0]]])
    lab = np.asarray(labels, dtype=np.int64)
    lab = np.where((lab >= 0) & (lab < len(colours)), lab, len(colours))
    return pal[lab]


def plot_labelled_clouds(points, panels, path, title="", class_names=SURFACE_CLASSES, colours=SURFACE_COLOURS):
    """3-D scatter of ``points`` (N, 3) once per ``panels`` entry ``(name, labels)``; writes a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    pts = np.asarray(points, dtype=np.float64)
    fig = plt.figure(figsize=(5 * len(panels), 5))
    lim = np.abs(pts - pts.mean(axis=0)).max()
    centre = pts.mean(axis=0)
    present = set()
    for i, (name, labels) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1, projection="3d")
        ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], c=label_colours(labels, colours), s=8, depthshade=False)
        for axis, c in zip("xyz", centre):
            getattr(ax, f"set_{axis}lim")(c - lim, c + lim)
        ax.set_title(name)
        ax.view_init(elev=25, azim=-60)
        present.update(int(v) for v in np.unique(labels) if 0 <= v < len(class_names))
    handles = [Patch(color=np.asarray(colours[k]) / 255.0, label=class_names[k]) for k in sorted(present)]
    fig.legend(handles=handles, loc="lower center", ncol=max(1, len(handles)))
    if title:
        fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
