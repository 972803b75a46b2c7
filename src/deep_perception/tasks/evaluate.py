"""Evaluate a PointNet checkpoint on a split of its config: full metrics JSON, confusion PNG, labelled
cloud PNGs, and optionally a model card and a compact (fp16) copy of the weights.

    python -m deep_perception.tasks.evaluate --config config/pointnet_seg.yaml \
        --checkpoint out/train/pointnet_seg/best.pt --split test -o out/eval/pointnet_seg \
        [--export data/models/pointnet_seg.pt --card data/models/pointnet_seg.md]
"""

import argparse
import json
import os
import shlex
import sys

import numpy as np
import torch

from deep_perception.fileio import atomic_open, write_json
from deep_perception.train.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from deep_perception.train.config import load_config
from deep_perception.train.task import build_task


def evaluate_checkpoint(config, checkpoint, split="test", batch_size=32, threads=2):
    """(task, model, dataset, report) for ``checkpoint`` on ``split`` of ``config``."""
    torch.set_num_threads(threads)
    task = build_task(config)
    model = task.build_model()
    state = load_checkpoint(checkpoint)["state_dict"]
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.eval()
    ds = task.datasets()[split]
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False)
    return task, model, ds, task.report(model, loader)


def export_compact(checkpoint, out_path, half=True, metrics=None):
    """Copy a training checkpoint without optimiser state (weights fp16 when ``half``, ``metrics`` added
    to the metadata); returns the largest absolute change of the weights."""
    ckpt = load_checkpoint(checkpoint)
    state = ckpt["state_dict"]
    if half:
        state = {k: (v.half() if v.is_floating_point() and not k.endswith(("running_var", "running_mean")) else v)
                 for k, v in state.items()}
    meta = dict(ckpt["metadata"])
    meta["weights_dtype"] = "float16" if half else "float32"
    meta["source_checkpoint"] = {"path": str(checkpoint), "sha256": file_sha256(checkpoint)}
    if "manifest_sha256" not in meta and "manifest" in meta:  # checkpoints from before the field existed
        paths = meta["manifest"] if isinstance(meta["manifest"], list) else [meta["manifest"]]
        meta["manifest_sha256"] = {str(m): file_sha256(os.path.join(m, "manifest.json"))
                                   for m in paths if os.path.isfile(os.path.join(m, "manifest.json"))}
    if metrics is not None:
        meta["metrics"] = metrics
    save_checkpoint(out_path, state, meta, epoch=ckpt.get("epoch", 0), step=ckpt.get("step", 0))
    return max(float((state[k].float() - v.float()).abs().max()) for k, v in ckpt["state_dict"].items()
               if v.is_floating_point())


def _fmt(x):
    return f"{x:.3f}"


def _conversion_commands(manifests):
    """The CityGML conversion that produced each manifest, from its recorded inputs and options."""
    out = []
    for m in manifests if isinstance(manifests, list) else [manifests]:
        f = os.path.join(m, "manifest.json") if os.path.isdir(m) else m
        try:
            with open(f, encoding="utf-8") as fh:
                man = json.load(fh)
        except (OSError, ValueError):
            continue
        if man.get("inputs"):
            out.append(f"python -m deep_perception.citygml {' '.join(man['inputs'])} -o {m} "
                       f"--points {man.get('points_per_building')}")
    return out


def model_card(name, config, report, checkpoint, command, extra=None, eval_command=None):
    """Markdown model card: data, split, command, metrics incl. per-class IoU, confusion, baseline."""
    ckpt = load_checkpoint(checkpoint)
    meta = ckpt["metadata"]
    classes = meta["classes"]
    cm = np.asarray(report["confusion"])
    present = [i for i in range(len(classes)) if cm[i].sum() + cm[:, i].sum() > 0]
    lines = [f"# Model card: {name}", "",
             f"- task: `{meta['task']}` ({'per-point surface class' if meta['kind'] == 'seg' else 'per-building roof class'})",
             f"- weights: `{os.path.basename(checkpoint)}` sha256 `{file_sha256(checkpoint)}` ({meta.get('weights_dtype', 'float32')})",
             f"- input: {meta['channels']}, {meta['points']} points, {meta['sampling']} sampling, {meta['normalisation']} normalisation",
             f"- model: PointNet, T-Nets {'on' if meta['model']['use_tnets'] else 'off'}, dropout keep {meta['model']['dropout_keep']}",
             f"- data: `{config['data']['manifest']}` (CityGML converted by `python -m deep_perception.citygml`)",
             f"- split (by city/file, never by building): train {config['data']['splits']['train']}, "
             f"val {config['data']['splits']['val']}, test {config['data']['splits'].get('test')}",
             f"- best epoch on validation: {ckpt.get('epoch', '?')} (kept checkpoint chosen on val, never test)",
             "", "## Command", "", "```bash", *_conversion_commands(config["data"]["manifest"]), command,
             *([eval_command] if eval_command else []), "```", "",
             f"## Test metrics ({report['count']} {'points' if meta['kind'] == 'seg' else 'buildings'})", "",
             f"- overall accuracy: {_fmt(report['oa'])} (majority-class baseline {_fmt(report['majority_baseline'])})",
             f"- mIoU (classes present): {_fmt(report['miou'])}"]
    if "miou_main" in report:
        lines.append(f"- mIoU ground/wall/roof: {_fmt(report['miou_main'])}")
    lines.append(f"- mean class accuracy: {_fmt(report['mean_class_accuracy'])}")
    lines += ["", "| class | support | IoU | accuracy |", "|---|---|---|---|"]
    for i in present:
        c = classes[i]
        lines.append(f"| {c} | {report['support'][c]} | {_fmt(report['iou'].get(c, 0.0))} | "
                     f"{_fmt(report['class_accuracy'].get(c, 0.0))} |")
    lines += ["", "Confusion (rows truth, columns prediction):", "",
              "| | " + " | ".join(classes[i] for i in present) + " |",
              "|---" * (len(present) + 1) + "|"]
    for i in present:
        lines.append(f"| {classes[i]} | " + " | ".join(str(int(cm[i, j])) for j in present) + " |")
    if extra:
        lines += ["", extra]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    ap.add_argument("--export", help="write a compact fp16 copy of the weights here")
    ap.add_argument("--card", help="write a markdown model card here")
    ap.add_argument("--command", default="", help="training command quoted in the card")
    ap.add_argument("--notes", help="markdown file appended to the card (findings, caveats)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clouds", type=int, default=3, help="labelled cloud PNGs to draw (seg)")
    args = ap.parse_args(argv)
    config = load_config(args.config, args.set)
    config["train"]["progress"] = False
    checkpoint = args.checkpoint
    if args.export:
        change = export_compact(args.checkpoint, args.export)
        print(f"exported {args.export} (max weight change {change:.2e})")
        checkpoint = args.export
    task, model, ds, report = evaluate_checkpoint(config, checkpoint, args.split, threads=args.threads)
    os.makedirs(args.output, exist_ok=True)
    report["split"] = args.split
    report["checkpoint"] = checkpoint
    write_json(os.path.join(args.output, f"report_{args.split}.json"), report)
    from deep_perception.viz.confusion import plot_confusion
    plot_confusion(report["confusion"], list(task.class_names), os.path.join(args.output, f"confusion_{args.split}.png"),
                   title=f"{task.name} {args.split}")
    if task.kind == "seg":
        from deep_perception.viz.clouds import plot_labelled_clouds
        for i in np.linspace(0, len(ds) - 1, min(args.clouds, len(ds))).astype(int):
            sample = ds[int(i)]
            with torch.no_grad():
                pred = model(sample["points"][None])[0].argmax(-1)[0].numpy()
            plot_labelled_clouds(sample["points"][:, :3].numpy(), [("truth", sample["label"].numpy()),
                                                                   ("prediction", pred)],
                                 os.path.join(args.output, f"cloud_{args.split}_{i}.png"),
                                 title=f"{ds.building_ids[i]} ({os.path.basename(ds.building_files[i])})")
    summary = {k: report[k] for k in ("oa", "miou", "mean_class_accuracy", "majority_baseline", "count")}
    summary.update({"iou": report["iou"]} if task.kind == "seg" else {"class_accuracy": report["class_accuracy"]})
    if "miou_main" in report:
        summary["miou_main"] = report["miou_main"]
    summary["split"] = {args.split: config["data"]["splits"].get(args.split)}
    if args.export:  # the same weights again, now with the metrics they scored in the metadata
        export_compact(args.checkpoint, args.export, metrics={**summary, "confusion": report["confusion"]})
    if args.card:
        with atomic_open(args.card) as f:
            f.write(model_card(os.path.splitext(os.path.basename(args.card))[0], config, report, checkpoint,
                               args.command or f"python -m deep_perception.train --config {args.config}",
                               extra=open(args.notes, encoding="utf-8").read() if args.notes else None,
                               eval_command="python -m deep_perception.tasks.evaluate " + " ".join(
                                   shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
