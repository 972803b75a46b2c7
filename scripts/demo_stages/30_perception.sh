#!/usr/bin/env bash
# Perception: the shipped PointNet models (data/models, trained on NRW, see their model cards) in the
# pointcloud_perception nodes, fed held-out Berlin buildings (data/samples) by a client that prints
# per-building roof class and segmentation accuracy against the ground truth.
# A demo-trained model replaces the shipped one when the training stage left one in $DP_DEMO_DIR/models.
set -eo pipefail
OUT="${DP_DEMO_DIR:-cache/demo}/perception"
mkdir -p "$OUT"
SEG=data/models/pointnet_seg.pt; CLS=data/models/pointnet_cls.pt
[ -f "${DP_DEMO_DIR:-cache/demo}/models/pointnet_seg.pt" ] && SEG="${DP_DEMO_DIR:-cache/demo}/models/pointnet_seg.pt"
[ -f "${DP_DEMO_DIR:-cache/demo}/models/pointnet_cls.pt" ] && CLS="${DP_DEMO_DIR:-cache/demo}/models/pointnet_cls.pt"
echo "models: $SEG, $CLS"
PORT=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export ROS_MASTER_URI="http://127.0.0.1:$PORT"
roslaunch -p "$PORT" deep_perception perception.launch input:=/demo/points device:=cpu \
  seg_checkpoint:="$(pwd)/$SEG" cls_checkpoint:="$(pwd)/$CLS" > "$OUT/roslaunch.log" 2>&1 &
LAUNCH=$!
trap 'kill $LAUNCH 2>/dev/null; wait $LAUNCH 2>/dev/null || true' EXIT
python scripts/demo_stages/perception_client.py --out "$OUT" | tee "$OUT/per_building.txt"
