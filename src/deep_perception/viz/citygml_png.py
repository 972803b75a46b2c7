"""PNG of a converted CityGML tile: every building's labelled points, top-down and oblique views.

    python -m deep_perception.viz.citygml_png OUT_DIR [--file 0] [-o tile.png] [--per-building 256]

``OUT_DIR`` is a ``citygml2pc`` output (manifest + shards); ``--file`` picks the input file (index
in the manifest's ``files``, or a substring of its path).
"""

import argparse
import os

import numpy as np

from deep_perception.data.shards import read_manifest, read_shard
from deep_perception.fileio import atomic_path
from deep_perception.viz.clouds import label_colours
from deep_perception.vocab import SURFACE_CLASSES, SURFACE_COLOURS


def tile_points(out_dir, file_index, per_building=256):
    """Absolute points (float64, metres) and labels of all samples of one input file."""
    man = read_manifest(out_dir)
    pts, labs = [], []
    for entry in man["shards"]:
        arrays = read_shard(os.path.join(out_dir, entry["file"]))
        sel = arrays["file_index"] == file_index
        if not sel.any():
            continue
        p = arrays["points"][sel][:, :per_building].astype(np.float64) + arrays["offsets"][sel][:, None, :]
        pts.append(p.reshape(-1, 3))
        labs.append(arrays["labels"][sel][:, :per_building].reshape(-1))
    if not pts:
        raise ValueError(f"{out_dir}: no samples of file index {file_index}")
    return np.concatenate(pts), np.concatenate(labs), man["files"][file_index]


def plot_tile(points, labels, path, title=""):
    """Two panels (top-down, oblique) of labelled points; written atomically as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    origin = np.floor(points.min(axis=0))
    p = points - origin
    colours = label_colours(labels)
    order = np.argsort(p[:, 2])  # draw low points first so roofs stay visible from above
    fig = plt.figure(figsize=(14, 7))
    ax = fig.add_subplot(1, 2, 1)
    ax.scatter(p[order, 0], p[order, 1], c=colours[order], s=0.5, linewidths=0)
    ax.set_aspect("equal")
    ax.set_xlabel(f"x - {origin[0]:.0f} m")
    ax.set_ylabel(f"y - {origin[1]:.0f} m")
    ax.set_title("top-down")
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")
    ax3.scatter(p[:, 0], p[:, 1], p[:, 2], c=colours, s=0.3, depthshade=False, linewidths=0)
    span = np.ptp(p, axis=0)
    ax3.set_box_aspect((span[0], span[1], max(3 * span[2], 0.05 * max(span[0], span[1]))))
    ax3.view_init(elev=35, azim=-60)
    ax3.set_zticks([])
    ax3.set_title(f"oblique (heights x3, 0-{span[2]:.0f} m)")
    present = sorted(int(v) for v in np.unique(labels) if v < len(SURFACE_CLASSES))
    fig.legend(handles=[Patch(color=np.asarray(SURFACE_COLOURS[k]) / 255.0, label=SURFACE_CLASSES[k])
                        for k in present], loc="lower center", ncol=len(present))
    if title:
        fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description="PNG of a converted CityGML tile coloured by label")
    ap.add_argument("out_dir")
    ap.add_argument("--file", default="0", help="file index in the manifest, or a substring of its path")
    ap.add_argument("-o", "--output", default=None, help="PNG path (default OUT_DIR/tile_<index>.png)")
    ap.add_argument("--per-building", type=int, default=256)
    args = ap.parse_args(argv)
    man = read_manifest(args.out_dir)
    if args.file.isdigit():
        index = int(args.file)
    else:
        matches = [i for i, f in enumerate(man["files"]) if args.file in f["path"]]
        if not matches:
            ap.error(f"no input file matching {args.file!r}")
        index = matches[0]
    pts, labs, info = tile_points(args.out_dir, index, args.per_building)
    path = args.output or os.path.join(args.out_dir, f"tile_{index}.png")
    plot_tile(pts, labs, path, title=f"{os.path.basename(info['path'])} ({info['city']}, {info['samples']} "
                                     f"buildings, {info['crs'][0]})")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
