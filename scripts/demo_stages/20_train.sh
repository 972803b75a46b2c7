#!/usr/bin/env bash
# Training through MPI: PointNet surface segmentation on the bundled real CityGML buildings, first with
# synchronous all-reduce SGD (mpirun -n 2), then with the asynchronous parameter server (mpirun -n 3:
# 1 server + 2 workers). Cached: a finished run is skipped, an interrupted one continues from its
# last epoch checkpoint (--resume auto); DP_DEMO_FRESH=1 (demo.sh) starts over. Outputs: $DP_DEMO_DIR/train/*/{metrics.json,curves.png,best.pt}.
set -eo pipefail
DEMO="${DP_DEMO_DIR:-cache/demo}"
OUT="$DEMO/train"
mkdir -p "$OUT"
if [ ! -f "$OUT/shards/manifest.json" ]; then
  python -m deep_perception.citygml data/citygml/nrw data/citygml/citygml-osm data/citygml/citygml-to-3dtiles \
    data/citygml/vienna data/citygml/nyc-buildings data/citygml/CityGML-3.0Encodings \
    -o "$OUT/shards" --points 256 --quiet
fi
MPIRUN="$(dirname "$(command -v python)")/mpirun"
train() {  # mode np output
  if [ -f "$3/metrics.json" ] && grep -q '"test_model"' "$3/metrics.json"; then
    echo "$3: finished earlier (cached)"; return 0
  fi
  "$MPIRUN" -n "$2" python -m mpi4py -m deep_perception.train --config config/train_demo_seg.yaml \
    --distributed "$1" --output "$3" --resume auto --set data.manifest="$OUT/shards" --set train.progress=false
}
train sync 2 "$OUT/pointnet_seg_sync"
train async 3 "$OUT/pointnet_seg_async"
python - "$OUT" <<'PY'
import json, sys
for run in ("pointnet_seg_sync", "pointnet_seg_async"):
    m = json.load(open(f"{sys.argv[1]}/{run}/metrics.json"))
    last, test = m["epochs"][-1], m.get("test", {})
    extra = ""
    if "async" in m:
        a = m["async"]
        extra = f", staleness mean {a['staleness_mean']:.2f} max {a['staleness_max']}, dropped {a['pushes_dropped']}"
    print(f"{run}: {m['world_size']} ranks, {len(m['epochs'])} epochs, train loss {last['train_loss']:.3f}, "
          f"val mIoU {last['val_miou']:.3f} (best {m['best']['score']:.3f} @ epoch {m['best']['epoch']}), "
          f"test OA {test.get('oa', float('nan')):.3f} mIoU {test.get('miou', float('nan')):.3f}{extra}")
    print(f"  curves: {sys.argv[1]}/{run}/curves.png")
PY
