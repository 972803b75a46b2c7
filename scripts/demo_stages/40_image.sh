#!/usr/bin/env bash
# Image perception: the shipped ResNet-18 roof-class model (data/models/resnet18_roof_images.pt, trained on
# rendered NRW/Hamburg buildings, see its model card) in the image_perception node, fed rendered views of
# held-back Berlin buildings (data/samples/roof_views_berlin.npz) as 32FC1 depth and mono8 shaded images by
# a client that prints each answer next to the ground truth and draws them into a PNG.
set -eo pipefail
OUT="${DP_DEMO_DIR:-cache/demo}/image"
mkdir -p "$OUT"
CKPT=data/models/resnet18_roof_images.pt
echo "model: $CKPT"
PORT=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export ROS_MASTER_URI="http://127.0.0.1:$PORT"
roslaunch -p "$PORT" deep_perception image_perception.launch input:=/demo/image device:=cpu \
  checkpoint:="$(pwd)/$CKPT" > "$OUT/roslaunch.log" 2>&1 &
LAUNCH=$!
trap 'kill $LAUNCH 2>/dev/null; wait $LAUNCH 2>/dev/null || true' EXIT
python scripts/demo_stages/image_client.py --out "$OUT" | tee "$OUT/per_view.txt"
