"""Classification metrics of one split, from all its logits at once (torchmetrics)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import (
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)


def summarize(logits: torch.Tensor, targets: torch.Tensor, classes: list[str],
              with_predictions: bool = True) -> dict:
    """A split's record (`runrecord.SplitEval`): accuracy with correct/total counts, mean
    cross-entropy (no label smoothing, so recipes compare), per-class precision/recall/F1/support,
    confusion matrix (rows = true class, columns = predicted), and per-sample predictions and
    targets."""
    logits, targets = logits.float().cpu(), targets.long().cpu()
    n, k = len(targets), len(classes)
    if n == 0:
        return {"accuracy": None, "correct": 0, "total": 0, "loss": None, "per_class": {},
                "confusion": [[0] * k for _ in range(k)]}
    preds = logits.argmax(1)
    correct = int((preds == targets).sum())
    kw = dict(num_classes=k, average="none", zero_division=0)
    prec = multiclass_precision(preds, targets, **kw).tolist()
    rec = multiclass_recall(preds, targets, **kw).tolist()
    f1 = multiclass_f1_score(preds, targets, **kw).tolist()
    support = torch.bincount(targets, minlength=k).tolist()
    out = {
        "accuracy": correct / n,
        "correct": correct,
        "total": n,
        "loss": float(F.cross_entropy(logits, targets)),
        "per_class": {c: {"precision": prec[i], "recall": rec[i], "f1": f1[i], "support": support[i]}
                      for i, c in enumerate(classes)},
        "confusion": multiclass_confusion_matrix(preds, targets, num_classes=k).tolist(),
    }
    if with_predictions:
        out["predictions"] = preds.tolist()
        out["targets"] = targets.tolist()
    return out
