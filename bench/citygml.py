"""Benchmark: CityGML → labelled points, against raw lxml parsing, on a >= 1 GB file.

    .venv/bin/python bench/citygml.py [--size-mb 1024] [--points 2048] [--file PATH]

1. Builds (once, cached) a CityGML 1.0 file of ``--size-mb`` by repeating the city-object members of
   real NRW LoD2 tiles (../shared/data/citygml-nrw, else the bundled data/citygml/nrw), each copy with
   fresh gml:ids and matching xlink:hrefs.
2. Runs, each in its own child process (so peak RSS is per measurement), over the file cut into
   64 MB member-aligned chunks (the CLI's units):
   (a) baseline: lxml iterparse on the member tags + every posList/pos parsed with numpy, elements cleared;
   (b) ours: iter_buildings → triangulate_batch → sample_batch (``--points`` per building), labels;
   (c) ours with 2 worker processes over the same chunks.
   (a) and (b) run back to back on each chunk in one child (so load drift on a shared machine hits
   both alike); the peak RSS of that child covers both paths, (c)'s covers ours alone.
3. Area sampling alone in points/s on real meshes.
Every process first calls ``citygml.memory.keep_freed_memory()`` (as the CLI's ``convert_unit`` does),
for the raw baseline too; ``--no-malloc-tuning`` leaves glibc's defaults.
Prints medians over chunks, totals, ratios, and ONE final JSON line.
"""

import argparse
import glob
import gzip
import json
import multiprocessing as mp
import os
import re
import resource
import statistics
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "src"))

from lxml import etree  # noqa: E402

from deep_perception.citygml.geometry import triangulate_batch  # noqa: E402
from deep_perception.citygml.memory import keep_freed_memory  # noqa: E402
from deep_perception.citygml.reader import MEMBER_TAGS, iter_buildings, member_offsets, read_header  # noqa: E402
from deep_perception.sampling import sample_batch  # noqa: E402

POS_TAGS = ["{http://www.opengis.net/gml}posList", "{http://www.opengis.net/gml}pos",
            "{http://www.opengis.net/gml/3.2}posList", "{http://www.opengis.net/gml/3.2}pos"]
CHUNK = 64 << 20


def source_tiles():
    shared = sorted(glob.glob(os.path.join(REPO, "..", "shared", "data", "citygml-nrw", "*.gml.gz")))
    return shared or sorted(glob.glob(os.path.join(REPO, "data", "citygml", "nrw", "*.gml.gz")))


def build_file(path, size_mb):
    """Write the repeated-members file (atomically); returns its size in bytes."""
    target = size_mb << 20
    if os.path.exists(path) and os.path.getsize(path) >= target:
        return os.path.getsize(path)
    tiles = source_tiles()
    members = []
    header = None
    member_re = re.compile(rb"<core:cityObjectMember>.*?</core:cityObjectMember>", re.S)
    for t in tiles:
        data = gzip.open(t).read()
        if header is None:
            header = data[: data.index(b"<core:cityObjectMember>")]
        members.extend(member_re.findall(data))
    blob = b"\n".join(members)
    print(f"building {path}: {len(members)} real buildings from {len(tiles)} tiles, repeated with fresh ids",
          file=sys.stderr)
    ids = re.compile(rb'(gml:id="|xlink:href="#)([^"]+)"')
    tmp = path + ".tmp"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(header)
        written = len(header)
        k = 0
        while written < target:
            copy = ids.sub(lambda m, k=k: m.group(1) + m.group(2) + b"_r%d\"" % k, blob)
            if written + len(copy) > target:  # last round: only as many members as needed
                cut = copy.find(b"</core:cityObjectMember>", target - written)
                copy = copy[: cut + len(b"</core:cityObjectMember>")] if cut >= 0 else copy
            f.write(copy)
            f.write(b"\n")
            written += len(copy) + 1
            k += 1
        f.write(b"</core:CityModel>\n")
    os.replace(tmp, path)
    return os.path.getsize(path)


def _run_raw(path, rng):
    from io import BufferedReader
    from deep_perception.citygml.reader import _ChunkStream
    if rng is None:
        src = open(path, "rb")
    else:
        hdr, qname = read_header(path)
        src = BufferedReader(_ChunkStream(path, rng[0], rng[1], hdr, qname, rng[1] >= os.path.getsize(path)),
                             1 << 20)
    buildings = values = 0
    for _, elem in etree.iterparse(src, events=("end",), tag=MEMBER_TAGS, resolve_entities=False,
                                   no_network=True, huge_tree=False, load_dtd=False):
        for p in elem.iter(POS_TAGS):
            values += np.fromstring(p.text, dtype=np.float64, sep=" ").size
        buildings += 1
        elem.clear()
        parent = elem.getparent()
        while elem.getprevious() is not None:
            del parent[0]
    return buildings, values


def _run_ours(path, rng, points, batch=256):
    hdr = read_header(path)
    buildings = pts = 0
    pending = []
    seed = 0

    def flush():
        nonlocal pts, seed
        mb = triangulate_batch([b.all_polygons() for b in pending])
        p, n, lab, ok = sample_batch(mb, points, np.random.default_rng(seed))
        seed += 1
        pts += int(ok.sum()) * points
    for b in iter_buildings(path, byte_range=rng, header=hdr):
        buildings += 1
        pending.append(b)
        if len(pending) == batch:
            flush()
            pending = []
    if pending:
        flush()
    return buildings, pts


def _vm_hwm_mb():
    """Peak resident set of this process (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(job):
    kind, path, rng, points = job
    t0, c0 = time.perf_counter(), time.process_time()
    n, extra = _run_raw(path, rng) if kind == "raw" else _run_ours(path, rng, points)
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "buildings": n,
            "extra": extra, "bytes": os.path.getsize(path) if rng is None else rng[1] - rng[0],
            "rss_mb": _vm_hwm_mb()}


def _paired(job):
    """Raw then ours on the same chunk, back to back: load drift hits both alike."""
    path, rng, points = job
    return _timed(("raw", path, rng, 0)), _timed(("ours", path, rng, points))


def _measure(args):
    """In a child: run the jobs (sequentially, or with a pool of `workers`); report peak RSS."""
    fn, jobs, workers, conn, malloc_tuning = args
    if malloc_tuning:  # as convert_unit does; raw and ours alike (set before both, inherited by forks)
        keep_freed_memory()
    t0 = time.perf_counter()
    if workers == 1:
        results = [fn(j) for j in jobs]
    else:
        with mp.get_context("fork").Pool(workers) as pool:
            results = pool.map(fn, jobs, chunksize=1)
    wall = time.perf_counter() - t0
    flat = [r for res in results for r in (res if isinstance(res, tuple) else (res,))]
    conn.send({"results": results, "wall": wall,
               "peak_rss_mb": max([_vm_hwm_mb()] + [r["rss_mb"] for r in flat])})
    conn.close()


def measure(fn, jobs, workers=1, malloc_tuning=True):
    parent, child = mp.Pipe(duplex=False)
    # spawn: the child does not inherit this process's memory, so its peak RSS is its own
    proc = mp.get_context("spawn").Process(target=_measure, args=((fn, jobs, workers, child, malloc_tuning),))
    proc.start()
    out = parent.recv()
    proc.join()
    return out


def summarise(name, res, wall, rss, size):
    mbps = [r["bytes"] / 1e6 / r["wall"] for r in res]
    cpu = sum(r["cpu"] for r in res)
    buildings = sum(r["buildings"] for r in res)
    s = {"name": name, "wall_s": round(wall, 2), "mb_per_s": round(size / 1e6 / wall, 2),
         "median_chunk_mb_per_s": round(statistics.median(mbps), 2),
         "mb_per_cpu_s": round(size / 1e6 / cpu, 2), "buildings": buildings,
         "buildings_per_s": round(buildings / wall, 1), "peak_rss_mb": round(rss, 1)}
    print(f"{name:>14}: {s['mb_per_s']:7.2f} MB/s wall (median chunk {s['median_chunk_mb_per_s']:.2f}), "
          f"{s['mb_per_cpu_s']:7.2f} MB per CPU-s, {s['buildings_per_s']:8.1f} buildings/s, "
          f"peak RSS {s['peak_rss_mb']:.0f} MB, {s['wall_s']} s", file=sys.stderr)
    return s


def sampling_rate(path, points, seconds=3.0):
    """Points/s of sample_batch on batches of 64 real buildings (triangulation excluded)."""
    hdr = read_header(path)
    buildings = []
    for b in iter_buildings(path, byte_range=member_offsets(path, 8 << 20)[0], header=hdr):
        buildings.append(b)
        if len(buildings) == 640:
            break
    batches = [triangulate_batch([b.all_polygons() for b in buildings[i:i + 64]]) for i in range(0, 640, 64)]
    rates, cpu_rates = [], []
    t_end = time.perf_counter() + seconds
    k = 0
    while time.perf_counter() < t_end or len(rates) < 5:
        mb = batches[k % len(batches)]
        t0, c0 = time.perf_counter(), time.process_time()
        _, _, _, ok = sample_batch(mb, points, k)
        n = int(ok.sum()) * points
        rates.append(n / (time.perf_counter() - t0))
        cpu_rates.append(n / max(time.process_time() - c0, 1e-9))
        k += 1
    return statistics.median(rates), statistics.median(cpu_rates)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--points", type=int, default=2048)
    ap.add_argument("--file", default=os.path.join(REPO, "cache", "bench", "citygml_repeated.gml"))
    ap.add_argument("--skip-workers", action="store_true", help="skip the 2-worker run")
    ap.add_argument("--sampling-only", action="store_true", help="only the area-sampling rate")
    ap.add_argument("--no-malloc-tuning", action="store_true",
                    help="leave glibc's mmap/trim thresholds alone (citygml.memory.keep_freed_memory)")
    args = ap.parse_args()
    tuning = not args.no_malloc_tuning
    if tuning:
        keep_freed_memory()
    if args.sampling_only:
        src = os.path.join(REPO, "data", "citygml", "nrw", "LoD2_32_363_5650_1_NW.gml.gz")
        wall, cpu = sampling_rate(args.file if os.path.exists(args.file) else src, args.points)
        print(f"sampling: {wall / 1e6:.1f} M points/s wall, {cpu / 1e6:.1f} M points/s CPU", file=sys.stderr)
        print(json.dumps({"bench": "citygml_sampling", "points_per_building": args.points, "malloc_tuning": tuning,
                          "sampling_points_per_s": round(wall), "sampling_points_per_cpu_s": round(cpu),
                          "load_avg_1min": round(os.getloadavg()[0], 2)}))
        return
    size = build_file(args.file, args.size_mb)
    ranges = member_offsets(args.file, CHUNK)
    print(f"file {args.file}: {size / 1e6:.0f} MB in {len(ranges)} chunks; machine load "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", file=sys.stderr)
    paired = measure(_paired, [(args.file, r, args.points) for r in ranges], malloc_tuning=tuning)
    raw_res = [a for a, _ in paired["results"]]
    ours_res = [b for _, b in paired["results"]]
    raw = summarise("raw lxml", raw_res, sum(r["wall"] for r in raw_res), paired["peak_rss_mb"], size)
    ours = summarise("ours", ours_res, sum(r["wall"] for r in ours_res), paired["peak_rss_mb"], size)
    ratios = [b["cpu"] and a["cpu"] / b["cpu"] for a, b in paired["results"]]
    result = {"bench": "citygml", "file_mb": round(size / 1e6, 1), "chunks": len(ranges), "malloc_tuning": tuning,
              "points_per_building": args.points, "raw": raw, "ours": ours,
              "ours_vs_raw": round(ours["mb_per_s"] / raw["mb_per_s"], 3),
              "ours_vs_raw_cpu": round(ours["mb_per_cpu_s"] / raw["mb_per_cpu_s"], 3),
              "ours_vs_raw_cpu_median_chunk": round(statistics.median(ratios), 3)}
    if not args.skip_workers:
        two_m = measure(_timed, [("ours", args.file, r, args.points) for r in ranges], 2, malloc_tuning=tuning)
        two = summarise("ours 2 workers", two_m["results"], two_m["wall"], two_m["peak_rss_mb"], size)
        result["ours_2_workers"] = two
        result["speedup_2_workers"] = round(two["mb_per_s"] / ours["mb_per_s"], 3)
    wall, cpu = sampling_rate(args.file, args.points)
    result["sampling_points_per_s"] = round(wall)
    result["sampling_points_per_cpu_s"] = round(cpu)
    result["load_avg_1min"] = round(os.getloadavg()[0], 2)
    print(f"ratio ours/raw: {result['ours_vs_raw']:.2f} (wall), {result['ours_vs_raw_cpu']:.2f} (CPU), "
          f"{result['ours_vs_raw_cpu_median_chunk']:.2f} (median over chunks, CPU); "
          f"2 workers: {result.get('speedup_2_workers', float('nan')):.2f}x; "
          f"sampling {result['sampling_points_per_s'] / 1e6:.1f} M points/s", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
