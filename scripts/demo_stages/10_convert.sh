#!/usr/bin/env bash
# CityGML → labelled point clouds: converts every bundled CityGML file in data/citygml (13 files, 11
# cities/sources, CityGML 1.0/2.0/3.0, gzip) with 2 workers into shards + manifest, prints the summary
# table, exports a few buildings as OBJ/PLY, and draws one real NRW tile coloured by label.
# Cached: skipped when the manifest exists. Outputs: $DP_DEMO_DIR/citygml/{manifest.json,shards/,meshes/,tile_nrw.png}
set -eo pipefail
DEMO="${DP_DEMO_DIR:-cache/demo}"
OUT="$DEMO/citygml"
if [ ! -f "$OUT/manifest.json" ]; then
  python -m deep_perception.citygml data/citygml -o "$OUT" --points 2048 --workers 2 \
    --export obj,ply,cloud --export-max 2
else
  echo "cached: $OUT/manifest.json"
fi
python -m deep_perception.viz.citygml_png "$OUT" --file LoD2_32_326_5726 -o "$OUT/tile_nrw.png"
python - "$OUT" <<'PY'
import json, sys
m = json.load(open(f"{sys.argv[1]}/manifest.json"))
c = m["counts"]
print(f"{len(m['files'])} files: {c['buildings']} buildings, {c['parts']} parts, {c['samples']} samples, "
      f"{c['triangles']} triangles, {c['points']} points in {len(m['shards'])} shards")
print("samples per city:", c["samples_per_city"])
print("point labels:", m["histograms"]["point_labels"])
print("roof classes:", m["histograms"]["roof_class"])
PY
