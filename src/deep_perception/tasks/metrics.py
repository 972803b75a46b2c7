"""Confusion-matrix metrics for classification and segmentation (numpy; JSON-able results)."""

import numpy as np


def confusion_matrix(target, pred, num_classes):
    """(k, k) int64 counts, rows = ground truth, columns = prediction."""
    target = np.asarray(target, dtype=np.int64).reshape(-1)
    pred = np.asarray(pred, dtype=np.int64).reshape(-1)
    ok = (target >= 0) & (target < num_classes)
    return np.bincount(num_classes * target[ok] + pred[ok], minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


def metrics_from_confusion(cm, class_names, main_classes=None):
    """Overall accuracy, per-class IoU/accuracy, mIoU and mean class accuracy over classes present in
    the ground truth; ``miou_main`` over ``main_classes`` (names) when given."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    gt = cm.sum(axis=1).astype(np.float64)
    pr = cm.sum(axis=0).astype(np.float64)
    present = gt > 0
    union = gt + pr - tp
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=union > 0)
    acc = np.divide(tp, gt, out=np.zeros_like(tp), where=gt > 0)
    total = cm.sum()
    out = {
        "oa": float(tp.sum() / total) if total else 0.0,
        "miou": float(iou[present].mean()) if present.any() else 0.0,
        "mean_class_accuracy": float(acc[present].mean()) if present.any() else 0.0,
        "iou": {n: float(iou[i]) for i, n in enumerate(class_names) if present[i]},
        "class_accuracy": {n: float(acc[i]) for i, n in enumerate(class_names) if present[i]},
        "support": {n: int(gt[i]) for i, n in enumerate(class_names)},
        "majority_baseline": float(gt.max() / total) if total else 0.0,
        "confusion": cm.tolist(),
        "count": int(total),
    }
    if main_classes:
        idx = [class_names.index(n) for n in main_classes if present[class_names.index(n)]]
        out["miou_main"] = float(iou[idx].mean()) if idx else 0.0
    return out
