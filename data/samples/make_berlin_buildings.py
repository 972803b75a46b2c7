"""Write data/samples/berlin_buildings.npz: held-out Berlin building clouds for the perception rostest,
the node bench and the demo (Berlin is the test city of the shipped models, never trained on).

    python data/samples/make_berlin_buildings.py cache/citygml/train
(after ``python -m deep_perception.citygml /work/shared/data/citygml-train -o cache/citygml/train --points 1024``)
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src"))
from deep_perception.data.dataset import load_buildings  # noqa: E402
from deep_perception.fileio import atomic_path  # noqa: E402


def main(manifest, out=os.path.join(os.path.dirname(os.path.abspath(__file__)), "berlin_buildings.npz"), n=16):
    data, _files = load_buildings(manifest, ["berlin"])
    rng = np.random.default_rng(0)
    known = np.flatnonzero(data["roof_class"] >= 0)
    pick = np.sort(rng.choice(known, n, replace=False))
    arrays = {"points": data["points"][pick], "normals": data["normals"][pick].astype(np.float16),
              "labels": data["labels"][pick], "roof_class": data["roof_class"][pick],
              "building_ids": np.array([data["building_ids"][i] for i in pick]),
              "files": np.array([os.path.basename(data["file"][i].split("::")[1]) for i in pick])}
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    print(out, {k: v.shape for k, v in arrays.items()})


if __name__ == "__main__":
    main(*sys.argv[1:])
