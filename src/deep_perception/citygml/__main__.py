"""``citygml2pc`` / ``python -m deep_perception.citygml``: CityGML files or folders → shards + manifest.

    python -m deep_perception.citygml IN... -o OUT [--points 2048] [--method uniform|poisson]
        [--lod N] [--workers N] [--split-parts] [--export obj,ply,cloud]
    mpirun -n K python -m mpi4py -m deep_perception.citygml IN... -o OUT   # units split across ranks

Exit status: 0 on success, 2 on a fatal error (the message names file and line; no manifest is
written and the previous output stays as it was), 1 on bad arguments. Under MPI every rank exits
with the same status: a failure on one rank becomes a reported error, never a rank left waiting.
(``-m mpi4py`` makes an unforeseen crash abort the whole job instead of hanging it.)
"""

import argparse
import logging
import os
import shutil
import sys
import time


def _mpi():
    """(comm, rank, size) when started by mpirun, else (None, 0, 1)."""
    if not any(k in os.environ for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")):
        return None, 0, 1
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    if comm.Get_size() == 1:
        return None, 0, 1
    return comm, comm.Get_rank(), comm.Get_size()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="citygml2pc", description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="CityGML files (.gml/.xml, optionally .gz) or folders")
    ap.add_argument("-o", "--output", required=True, help="output folder (shards/ + manifest.json)")
    ap.add_argument("--points", type=int, default=2048, help="points per sample (default 2048)")
    ap.add_argument("--method", choices=("uniform", "poisson"), default="uniform")
    ap.add_argument("--lod", type=int, default=None, help="LoD to use (default: highest per building)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes per rank (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard-size", type=int, default=512, help="samples per shard file")
    ap.add_argument("--split-parts", action="store_true",
                    help="one sample per BuildingPart instead of one per Building (parts aggregated)")
    ap.add_argument("--unlabeled", choices=("normals", "other"), default="normals",
                    help="label of faces without semantic surface: from their normal, or 'other'")
    ap.add_argument("--chunk-mb", type=float, default=64.0, help="plain files larger than this are split")
    ap.add_argument("--export", default="", help="comma list of obj,ply,cloud: per-building files in OUT/meshes")
    ap.add_argument("--export-max", type=int, default=20, help="exported samples per file")
    ap.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    args = ap.parse_args(argv)
    if args.points <= 0 or args.shard_size <= 0 or args.workers <= 0:
        ap.error("--points, --shard-size and --workers must be positive")
    export = tuple(x for x in args.export.split(",") if x)
    bad = set(export) - {"obj", "ply", "cloud"}
    if bad:
        ap.error(f"--export: unknown kinds {sorted(bad)}")
    args.export = export
    return args


def main(argv=None):
    from deep_perception.citygml import convert

    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING, format="%(levelname)s %(message)s")
    comm, rank, size = _mpi()
    opts = convert.Options(points=args.points, method=args.method, lod=args.lod, seed=args.seed,
                           shard_size=args.shard_size, split_parts=args.split_parts, unlabeled=args.unlabeled,
                           chunk_mb=args.chunk_mb, export=args.export, export_max=args.export_max)
    t0 = time.time()
    error = None
    files = units = staging = None
    if rank == 0:
        try:
            files = convert.find_inputs(args.inputs)
            if not files:
                error = f"no CityGML files in {args.inputs}"
            else:
                units = convert.plan_units(files, opts.chunk_mb)
                os.makedirs(args.output, exist_ok=True)
                staging = convert.new_staging(args.output)
        except Exception as exc:  # noqa: BLE001 - the other ranks wait in bcast: report, never raise
            error = str(exc) if isinstance(exc, (OSError, ValueError)) else f"{type(exc).__name__}: {exc}"
    if comm is not None:
        error, files, units, staging = comm.bcast((error, files, units, staging), root=0)
    if error:
        if rank == 0:
            if staging:
                shutil.rmtree(staging, ignore_errors=True)
            print(f"citygml2pc: error: {error}", file=sys.stderr)
        return 2
    try:
        return _convert_and_commit(args, opts, comm, rank, size, files, units, staging, t0)
    finally:
        if rank == 0:
            shutil.rmtree(staging, ignore_errors=True)  # gone already after a commit


def _convert_and_commit(args, opts, comm, rank, size, files, units, staging, t0):
    from deep_perception.citygml import convert

    mine = units[rank::size]
    try:
        summaries = convert.run_units(mine, opts, staging, workers=args.workers,
                                      progress=not args.quiet and rank == 0)
    except Exception as exc:  # noqa: BLE001 - must still reach gather, or the other ranks hang
        files_here = sorted({u["path"] for u in mine})
        summaries = [{"error": f"rank {rank} ({', '.join(files_here)}): {type(exc).__name__}: {exc}"}]
    if comm is not None:
        gathered = comm.gather(summaries, root=0)
        summaries = [s for part in gathered for s in part] if rank == 0 else None
    status = 0
    if rank == 0:
        try:
            status = _commit(args, opts, files, summaries, staging, size, t0)
        except Exception as exc:  # noqa: BLE001 - the other ranks wait in bcast
            print(f"citygml2pc: error: {args.output}: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 2
    if comm is not None:
        status = comm.bcast(status, root=0)
    return status


def _commit(args, opts, files, summaries, staging, size, t0):
    """Rank 0: report unit errors (exit 2, nothing written) or write the manifest; returns the status."""
    from deep_perception.citygml import convert

    errors = [s["error"] for s in summaries if "error" in s]
    if errors:
        for e in errors:
            print(f"citygml2pc: error: {e}", file=sys.stderr)
        print("citygml2pc: nothing written (fatal errors above)", file=sys.stderr)
        return 2
    manifest = convert.build_manifest(files, summaries, opts, input_args=args.inputs)
    manifest["elapsed_s"] = round(time.time() - t0, 3)
    manifest["workers"] = args.workers
    manifest["ranks"] = size
    convert.commit_staging(args.output, staging, manifest)
    if not args.quiet:
        print(convert.summary_table(manifest))
        print(f"wrote {len(manifest['shards'])} shards to {args.output} in {time.time() - t0:.1f} s")
    return 0

if __name__ == "__main__":
    sys.exit(main())
