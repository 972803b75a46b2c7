"""CityGML files → training shards + manifest (the engine behind ``citygml2pc``).

Work is cut into *units*: one per input file, and large plain files are cut further into ~64 MB
pieces at city-object boundaries. Units depend only on the inputs, so the output bytes are the same
whatever the number of worker processes (``--workers``) or MPI ranks (``mpirun -n K``): unit u
writes the shards ``shards/fFFFFF-cCCC-sSSS.npz`` and samples its buildings in batches whose random
generator is seeded with (seed, file index, chunk index, batch index).

A *sample* is one Building with its BuildingParts aggregated (roof class: the building's roofType,
else the parts' common class, else ``mixed`` when parts differ); with ``split_parts`` each part
(and the building's own geometry, if any) is a sample of its own with its own roofType.

Output folder: ``shards/*.npz`` (see ``deep_perception.data.shards``), ``shards/*.attrs.json``
(per-sample attributes: ids, original roofType codes, function, triangles, area) and
``manifest.json``, written last. Shards are first written under a staging folder and moved in place
only when every unit succeeded; a fatal error leaves the previous output untouched (or none).
"""

import collections
import contextlib
import dataclasses
import logging
import os
import shutil
import uuid

import numpy as np

from deep_perception.citygml.cities import city_of
from deep_perception.citygml.geometry import triangulate_batch
from deep_perception.citygml.memory import keep_freed_memory
from deep_perception.citygml.reader import CityGMLError, ReadStats, iter_buildings, member_offsets, read_header
from deep_perception.data.shards import MANIFEST_NAME, write_manifest, write_shard
from deep_perception.fileio import file_sha256, write_json
from deep_perception.sampling import sample_batch
from deep_perception.vocab import ROOF_CLASSES, SURFACE_CLASSES

log = logging.getLogger(__name__)

CITYGML_SUFFIXES = (".gml", ".xml", ".citygml", ".gml.gz", ".xml.gz", ".citygml.gz")


@dataclasses.dataclass
class Options:
    points: int = 2048
    method: str = "uniform"
    lod: int = None
    seed: int = 0
    shard_size: int = 512
    batch: int = 256
    split_parts: bool = False
    unlabeled: str = "normals"
    chunk_mb: float = 64.0
    export: tuple = ()          # any of "obj", "ply", "cloud"
    export_max: int = 20        # exported samples per file

    def manifest_dict(self):
        d = dataclasses.asdict(self)
        d["export"] = list(self.export)
        return d


def find_inputs(paths):
    """Expand files and folders into a sorted list of CityGML files (plain or gzip)."""
    found = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                found.extend(os.path.join(root, f) for f in files if f.lower().endswith(CITYGML_SUFFIXES))
        elif os.path.exists(p):
            found.append(p)
        else:
            raise FileNotFoundError(f"input {p} does not exist")
    return sorted(dict.fromkeys(os.path.abspath(f) for f in found))


def plan_units(files, chunk_mb=64.0):
    """Units of work: dicts (file_index, path, chunk, byte_range)."""
    units = []
    for fi, path in enumerate(files):
        ranges = member_offsets(path, int(chunk_mb * (1 << 20)))
        for ci, rng in enumerate(ranges):
            units.append({"file_index": fi, "path": path, "chunk": ci, "byte_range": rng,
                          "chunks": len(ranges)})
    return units


def _samples_of(building, split_parts):
    """(sample Building, polygons, roof class, parent id) for one read Building."""
    if not split_parts:
        return [(building, building.all_polygons(), building.roof_class, None)]
    out = []
    if building.polygons or not building.parts:
        out.append((building, list(building.polygons), building.own_roof_class
                    if building.parts else building.roof_class, None))
    stack = list(building.parts)
    while stack:
        part = stack.pop(0)
        out.append((part, list(part.polygons), part.own_roof_class, building.id))
        stack.extend(part.parts)
    return out


class _ShardWriter:
    """Accumulates sampled rows and writes shards of ``size`` rows into ``folder``."""

    def __init__(self, folder, prefix, size):
        self.folder = folder
        self.prefix = prefix
        self.size = size
        self.rows = collections.defaultdict(list)
        self.attrs = []
        self.count = 0
        self.written = []   # manifest entries
        self.paths = []

    def add(self, arrays, attrs):
        for k, v in arrays.items():
            self.rows[k].append(v)
        self.attrs.extend(attrs)
        self.count += len(attrs)
        while self.count >= self.size:
            self._flush(self.size)

    def close(self):
        if self.count:
            self._flush(self.count)

    def _flush(self, n):
        cat = {k: np.concatenate(v) for k, v in self.rows.items()}
        out = {k: v[:n] for k, v in cat.items()}
        self.rows = collections.defaultdict(list)
        if self.count > n:
            for k, v in cat.items():
                self.rows[k].append(v[n:])
        attrs, self.attrs = self.attrs[:n], self.attrs[n:]
        self.count -= n
        name = f"{self.prefix}-s{len(self.written):03d}.npz"
        path = os.path.join(self.folder, name)
        write_shard(path, out)
        self.paths.append(path)
        write_json(path[:-4] + ".attrs.json", attrs)
        self.paths.append(path[:-4] + ".attrs.json")
        self.written.append({"file": f"shards/{name}", "count": int(n),
                             "attributes": f"shards/{name[:-4]}.attrs.json"})


def convert_unit(unit, opts, staging):
    """Convert one unit into shards under ``staging/shards``; returns its summary dict.

    Fatal errors are returned as ``summary["error"]`` (the unit's shards are removed).
    """
    keep_freed_memory()  # per process, once: batches reuse freed memory instead of page-faulting
    path = unit["path"]
    fi, ci = unit["file_index"], unit["chunk"]
    summary = {"unit": (fi, ci), "file_index": fi, "chunk": ci, "path": path, "shards": [],
               "buildings": 0, "parts": 0, "samples": 0, "polygons": 0, "triangles": 0, "points": 0,
               "skipped": collections.Counter(), "objects": collections.Counter(), "warnings": [],
               "crs": [], "label_hist": [0] * len(SURFACE_CLASSES), "roof_hist": collections.Counter(),
               "roof_codes": collections.Counter(), "repairs": collections.Counter(), "crs_out": set()}
    folder = os.path.join(staging, "shards")
    writer = _ShardWriter(folder, f"f{fi:05d}-c{ci:03d}", opts.shard_size)
    stats = ReadStats()
    exported = 0
    try:
        header = read_header(path)
        pending = []
        batch_index = 0

        def run_batch(pending, batch_index):
            nonlocal exported
            mb = triangulate_batch([p[1] for p in pending], unlabeled=opts.unlabeled)
            rng = np.random.default_rng([opts.seed, fi, ci, batch_index])
            if opts.method == "uniform":
                pts, nrm, lab, ok = sample_batch(mb, opts.points, rng)
            else:
                pts, nrm, lab, ok = _poisson_batch(mb, opts.points, rng)
            faces_per = np.diff(mb.fstart)
            meshes = mb.meshes() if opts.export else None
            attrs = []
            keep = np.flatnonzero(ok)
            for i, (b, polys, roof, parent) in enumerate(pending):
                summary["repairs"].update(mb.stats[i])
                if not ok[i]:
                    summary["skipped"]["samples without triangles" if not polys
                                       else "samples without area"] += 1
                    continue
                area = float(np.sum(_face_areas(mb, i)))
                codes = ([b.roof_type_code] if b.roof_type_code else []) if opts.split_parts \
                    else b.roof_type_codes
                attrs.append({"id": b.id, "parent": parent, "roof_class": int(roof), "roof_type_codes": codes,
                              "function": b.function,
                              "parts": [] if opts.split_parts else [p.id for p in b.parts],
                              "triangles": int(faces_per[i]), "area_m2": round(area, 3), "crs": b.crs,
                              "line": b.line})
                summary["roof_hist"][ROOF_CLASSES[roof] if roof >= 0 else "unknown"] += 1
                summary["crs_out"].add(b.crs)
                if meshes is not None and exported < opts.export_max:
                    _export(meshes[i], b, pts[i], nrm[i], lab[i], opts, staging, unit)
                    exported += 1
            if len(keep):
                summary["label_hist"] = (np.asarray(summary["label_hist"]) + np.bincount(
                    lab[keep].ravel(), minlength=len(SURFACE_CLASSES))).tolist()
                ids = np.array([a["id"] for a in attrs], dtype=np.str_)
                writer.add({"points": pts[keep], "normals": nrm[keep], "labels": lab[keep],
                            "roof_class": np.array([pending[i][2] for i in keep], np.int16),
                            "offsets": mb.offsets[keep], "building_ids": ids,
                            "file_index": np.full(len(keep), fi, np.int32)}, attrs)
            summary["samples"] += len(keep)
            summary["triangles"] += int(faces_per[keep].sum())
            summary["points"] += len(keep) * opts.points

        for b in iter_buildings(path, lod=opts.lod, stats=stats, byte_range=unit["byte_range"], header=header):
            summary["buildings"] += 1
            summary["parts"] += b.count_parts()
            summary["roof_codes"].update(b.roof_type_codes or ["(none)"])
            for sample in _samples_of(b, opts.split_parts):
                summary["polygons"] += len(sample[1])
                if not sample[1]:
                    summary["skipped"]["samples without geometry" + (
                        f" at LoD {opts.lod}" if opts.lod is not None else "")] += 1
                    continue
                pending.append(sample)
                if len(pending) >= opts.batch:
                    run_batch(pending, batch_index)
                    pending = []
                    batch_index += 1
        if pending:
            run_batch(pending, batch_index)
        writer.close()
    except Exception as exc:  # noqa: BLE001 - any failure is this unit's reported error, never a hung MPI job
        for p in writer.paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
        summary["error"] = unit_error(path, exc)
        if not isinstance(exc, (CityGMLError, OSError, ValueError)):
            log.error("%s: unexpected %s while converting", path, type(exc).__name__, exc_info=True)
        return _plain(summary, stats)
    summary["shards"] = writer.written
    return _plain(summary, stats)


def unit_error(path, exc):
    """One-line message for a failed unit: CityGMLError already names file:line, others get the file."""
    if isinstance(exc, CityGMLError):
        return str(exc)
    if isinstance(exc, (OSError, ValueError)):
        return f"{path}: {exc}"
    return f"{path}: {type(exc).__name__}: {exc}"


def _face_areas(mb, i):
    f = mb.faces[mb.fstart[i]:mb.fstart[i + 1]]
    v = mb.vertices
    return 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)


def _poisson_batch(mb, n, rng):
    from deep_perception.sampling import SamplingError, sample_points
    meshes = mb.meshes()
    pts = np.zeros((len(meshes), n, 3), np.float32)
    nrm = np.zeros_like(pts)
    lab = np.zeros((len(meshes), n), np.uint8)
    ok = np.zeros(len(meshes), bool)
    for i, m in enumerate(meshes):
        try:
            pts[i], nrm[i], lab[i] = sample_points(m, n, rng, method="poisson")
            ok[i] = True
        except SamplingError:
            pass
    return pts, nrm, lab, ok


def _export(mesh, b, pts, nrm, lab, opts, staging, unit):
    from deep_perception.citygml import export
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in b.id)
    base = os.path.join(staging, "meshes", f"f{unit['file_index']:05d}", safe)
    mesh.crs = b.crs
    mesh.building_id = b.id
    if "obj" in opts.export:
        export.write_obj(mesh, base + ".obj")
    if "ply" in opts.export:
        export.write_ply_mesh(mesh, base + ".ply")
    if "cloud" in opts.export:
        export.write_ply_cloud(pts, nrm, lab, base + ".cloud.ply", offset=mesh.offset,
                               comment=f"building {b.id} crs {b.crs}")


def _plain(summary, stats):
    summary["skipped"] = dict(collections.Counter(summary["skipped"]) + stats.skipped)
    summary["objects"] = dict(stats.objects)
    summary["warnings"] = stats.warnings
    summary["crs"] = sorted(stats.crs)
    summary["roof_hist"] = dict(summary["roof_hist"])
    summary["roof_codes"] = dict(summary["roof_codes"])
    summary["repairs"] = dict(summary["repairs"])
    summary["crs_out"] = sorted(summary["crs_out"])
    return summary


def _convert_unit_star(args):
    return convert_unit(*args)


def run_units(units, opts, staging, workers=1, progress=True):
    """Convert units (in order) with a process pool; returns their summaries in unit order."""
    from tqdm import tqdm
    jobs = [(u, opts, staging) for u in units]
    bar = tqdm(total=len(jobs), desc="citygml units", unit="unit", disable=not progress, leave=False)
    out = []
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            out.append(convert_unit(*job))
            bar.update()
    else:
        import multiprocessing as mp
        ctx = mp.get_context("fork")
        with ctx.Pool(min(workers, len(jobs))) as pool:
            for summary in pool.imap(_convert_unit_star, jobs, chunksize=1):
                out.append(summary)
                bar.update()
    bar.close()
    return out


def build_manifest(files, summaries, opts, input_args=()):
    """Manifest dict from the unit summaries (ordered by unit)."""
    summaries = sorted(summaries, key=lambda s: tuple(s["unit"]))
    per_file = collections.OrderedDict()
    for fi, path in enumerate(files):
        per_file[fi] = {"path": path, "city": city_of(path), "bytes": os.path.getsize(path),
                        "buildings": 0, "parts": 0, "samples": 0, "polygons": 0, "triangles": 0,
                        "points": 0, "skipped": collections.Counter(), "repairs": collections.Counter(),
                        "crs": set(), "crs_out": set(), "objects": collections.Counter(),
                        "roof_codes": collections.Counter(),
                        "warnings": []}
    shards = []
    label_hist = np.zeros(len(SURFACE_CLASSES), np.int64)
    roof_hist = collections.Counter()
    for s in summaries:
        f = per_file[s["file_index"]]
        for k in ("buildings", "parts", "samples", "polygons", "triangles", "points"):
            f[k] += s[k]
        for k in ("skipped", "repairs", "objects", "roof_codes"):
            f[k].update(s[k])
        f["crs"].update(s["crs"])
        f["crs_out"].update(s["crs_out"])
        f["warnings"].extend(s["warnings"][:10])
        shards.extend(s["shards"])
        label_hist += np.asarray(s["label_hist"], np.int64)
        roof_hist.update(s["roof_hist"])
    file_entries = []
    for fi, f in per_file.items():
        f["sha256"] = file_sha256(f["path"])
        f["srs_names"] = sorted(f.pop("crs"))
        f["crs"] = sorted(f.pop("crs_out")) or ["LOCAL"]  # output CRS of the file's samples
        for k in ("skipped", "repairs", "objects", "roof_codes"):
            f[k] = dict(sorted(f[k].items()))
        file_entries.append(f)
    totals = {k: int(sum(f[k] for f in file_entries))
              for k in ("buildings", "parts", "samples", "polygons", "triangles", "points")}
    skipped = collections.Counter()
    cities = collections.Counter()
    for f in file_entries:
        skipped.update(f["skipped"])
        cities[f["city"]] += f["samples"]
    return {
        "format": "deep_perception citygml shards v1",
        "inputs": list(input_args),
        "options": opts.manifest_dict(),
        "points_per_building": opts.points,
        "surface_classes": list(SURFACE_CLASSES),
        "roof_classes": list(ROOF_CLASSES),
        "files": file_entries,
        "shards": shards,
        "counts": dict(totals, skipped=dict(sorted(skipped.items())), samples_per_city=dict(sorted(cities.items()))),
        "histograms": {"point_labels": dict(zip(SURFACE_CLASSES, label_hist.tolist())),
                       "roof_class": dict(sorted(roof_hist.items()))},
        "offsets": "per building in shards['offsets'] (metres in each file's output CRS)",
    }


def new_staging(out_dir):
    path = os.path.join(out_dir, f".staging-{uuid.uuid4().hex[:12]}")
    os.makedirs(os.path.join(path, "shards"), exist_ok=True)
    return path


def commit_staging(out_dir, staging, manifest):
    """Move staged shards (and meshes) into ``out_dir`` and write the manifest last."""
    man = os.path.join(out_dir, MANIFEST_NAME)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(man)      # from here on, no manifest describes a half-replaced folder
    for sub in ("shards", "meshes"):
        target = os.path.join(out_dir, sub)
        if os.path.isdir(os.path.join(staging, sub)):
            if os.path.isdir(target):
                shutil.rmtree(target)
            os.replace(os.path.join(staging, sub), target)
        elif os.path.isdir(target) and sub == "meshes":
            shutil.rmtree(target)
    shutil.rmtree(staging, ignore_errors=True)
    write_manifest(out_dir, manifest)


def summary_table(manifest):
    """Plain-text table: one row per file plus totals."""
    rows = [("file", "city", "bldg", "parts", "samples", "triangles", "points", "skipped")]
    for f in manifest["files"]:
        sk = sum(v for k, v in f["skipped"].items() if not k.startswith("other LoD"))
        rows.append((_short(f["path"]), f["city"], f["buildings"], f["parts"], f["samples"],
                     f["triangles"], f["points"], sk))
    c = manifest["counts"]
    rows.append(("TOTAL", f"{len(manifest['files'])} files", c["buildings"], c["parts"], c["samples"],
                 c["triangles"], c["points"], sum(v for k, v in c["skipped"].items()
                                                  if not k.startswith("other LoD"))))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(v).rjust(w) if i >= 2 else str(v).ljust(w) for i, (v, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    if c["skipped"]:
        lines.append("skipped / repaired: " + ", ".join(f"{k}: {v}" for k, v in c["skipped"].items()))
    return "\n".join(lines)


def _short(path, n=48):
    return path if len(path) <= n else "…" + path[-(n - 1):]


class ConversionError(RuntimeError):
    """A conversion failed; the message lists the fatal errors (file:line)."""


def convert_all(inputs, output, opts, workers=1, progress=False):
    """Convert ``inputs`` (files/folders) into ``output`` in this process; returns the manifest.

    Raises ConversionError (nothing written) on fatal errors.
    """
    files = find_inputs(inputs)
    if not files:
        raise ConversionError(f"no CityGML files in {list(inputs)}")
    units = plan_units(files, opts.chunk_mb)
    os.makedirs(output, exist_ok=True)
    staging = new_staging(output)
    try:
        summaries = run_units(units, opts, staging, workers=workers, progress=progress)
        errors = [s["error"] for s in summaries if "error" in s]
        if errors:
            raise ConversionError("; ".join(errors))
        manifest = build_manifest(files, summaries, opts, input_args=[os.fspath(i) for i in inputs])
        manifest["workers"] = workers
        manifest["ranks"] = 1
        commit_staging(output, staging, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a commit
    return manifest
