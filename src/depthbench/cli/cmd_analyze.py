"""Look inside trained models: SE excitation by depth, Swin attention distance and entropy,
linear CKA between block outputs (and between models of one family), Grad-CAM on 8 test images.

Give a run folder (from `depthbench train` or `depthbench run`) or a study folder (every finished
run in it). Each run gets `analysis.json` and its figures (`analysis_*.png`), computed on a fixed,
seeded subset of its test images (validation images when there is no test split; it says so).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from depthbench.analysisrecord import summarize
from depthbench.errors import ConfigError


def add_arguments(p) -> None:
    p.add_argument("path", metavar="RUN_DIR|STUDY_DIR")
    p.add_argument("--images", type=int, default=256, metavar="N",
                   help="test images to analyze, a fixed seeded subset (default 256)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N",
                   help="minibatch of the CKA estimate and the forward passes (default 64)")
    p.add_argument("--accelerator", choices=["auto", "cpu", "gpu"], default="auto",
                   help="where to run, as for training (auto: a CUDA GPU when one is visible)")
    # the old torch-device option: refused with the new spelling (`cuda:1` meant a GPU that
    # --accelerator cannot pick; CUDA_VISIBLE_DEVICES does)
    p.add_argument("--device", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    # on use: `--help` stays free of torch and matplotlib
    from depthbench.analysis import analyze_path
    from depthbench.report.inside import draw_run_figures

    def progress(name):
        if not args.json:
            print(f"analyzing {name} ...", file=sys.stderr, flush=True)

    if args.device is not None:
        raise ConfigError(_renamed_device(args.device))
    out = analyze_path(args.path, args.images, batch_size=args.batch_size,
                       accelerator=args.accelerator, progress=progress)
    root = Path(args.path)
    for name, rec in out.items():  # each run's own figures beside its analysis.json
        if isinstance(rec, dict):
            draw_run_figures(rec, root if (root / "result.json").is_file() else root / name)
    if args.json:
        print(json.dumps({name: ({"status": "analyzed", **summarize(rec)} if isinstance(rec, dict)
                                 else {"status": "skipped", "reason": rec})
                          for name, rec in out.items()}, indent=2))
        return 0
    for name, rec in out.items():
        if isinstance(rec, str):
            print(f"{name}: skipped: {rec}")
            continue
        s = summarize(rec)
        line = (f"{name}: {s['images']} {s['split']} images, {s['seconds']:.1f} s; "
                f"near-identical late blocks (CKA >= {s['cka_threshold']:g}): {s['near_identical_tail']}")
        if s.get("se_class_specificity") is not None:
            line += f"; last SE block class-specificity {s['se_class_specificity']:.3f}"
        if s.get("attention_distance_px") is not None:
            line += f"; mean attention distance {s['attention_distance_px']:.1f} px"
        print(line)
        if s["note"]:
            print(f"  note: {s['note']}")
    return 0


def _renamed_device(device: str) -> str:
    kind = "gpu" if device.startswith(("cuda", "gpu")) else "cpu" if device == "cpu" else None
    use = f"--accelerator {kind}" if kind else "--accelerator auto, cpu or gpu"
    pick = " (pick the GPU with CUDA_VISIBLE_DEVICES)" if ":" in device else ""
    return f"--device {device}: renamed --accelerator, as in every command; use {use}{pick}"
