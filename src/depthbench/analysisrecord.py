"""The analysis record: what a run folder's `analysis.json` holds, defined once.

`depthbench analyze` (`analysis.run`) writes it through `write_analysis`; the command line's
summary (`summarize`) and the report (`report.inside`) read it through `read_analysis`. The
pydantic models below are the schema. No torch here: the report imports it.

`format` says which schema wrote a record; a file of another format (or none) is not read.
Unknown keys are kept, so a rewrite (the cross-model CKA added afterwards) loses nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from depthbench._io import atomic_write_text

FORMAT = "depthbench-analysis/1"
FILE = "analysis.json"

Matrix = list[list[float | None]]  # rounded; None where a value was not finite


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")


class Subset(_Part):
    """The seeded subset of the run's test (or validation) images the analysis used."""

    seed: int
    images: int
    indices: list[int]
    correct: int


class CkaBlock(_Part):
    name: str
    stage: int
    grid: list[int]


class Cka(_Part):
    """Linear CKA between the block outputs of the run (minibatch unbiased HSIC)."""

    method: str
    minibatch: int
    batches: int
    blocks: list[CkaBlock]
    matrix: Matrix
    threshold: float
    near_identical_tail: int


class SeBlock(_Part):
    name: str
    stage: int
    channels: int
    mean_gate: float | None
    class_specificity: float | None
    fraction_saturated: float | None
    mean_per_channel: list[float | None]
    per_class_mean: dict[str, list[float | None]]


class Se(_Part):
    """The SE gates by block (SE-ResNet runs only)."""

    saturation_threshold: float
    class_specificity: str  # how it is computed, in words
    blocks: list[SeBlock]


class AttentionBlock(_Part):
    name: str
    stage: int
    window: int
    pitch_px: float | int  # input pixels per token
    shifted: bool
    distance_px: list[float | None]  # per head
    entropy: list[float | None]  # per head
    mean_distance_px: float | None
    mean_entropy: float | None
    uniform_distance_px: float | None
    max_entropy: float | None


class Attention(_Part):
    """Swin's attention distance and entropy by block (Swin runs only)."""

    units: str
    reference: str
    blocks: list[AttentionBlock]


class CamImage(_Part):
    index: int
    path: str
    label: int
    pred: int
    correct: bool
    cam: Matrix  # at most 32 x 32, in [0, 1]
    thumbnail_png: str  # base64: the input as the model saw it


class GradCam(_Part):
    method: str
    layer: str
    grid: list[int]
    target: str
    images: list[CamImage]


class CrossCka(_Part):
    """The CKA between this run's blocks and those of another run of its family, variant, seed."""

    model: str
    matrix: Matrix
    stage_output: dict[str, float | None]


class AnalysisRecord(_Part):
    """analysis.json."""

    format: str = FORMAT
    run: str
    model: str
    family: str
    variant: str
    seed: int | None
    img_size: int
    classes: list[str]
    split: str
    note: str | None = None
    subset: Subset
    cka: Cka
    se: Se | None = None
    attention: Attention | None = None
    gradcam: GradCam
    cross_cka: dict[str, CrossCka] = {}
    device: str
    seconds: float


def write_analysis(run_dir: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    """Validate `record` against `AnalysisRecord` and write `run_dir/analysis.json` (compact:
    its matrices and maps would take one line per number indented); returns the dict written."""
    data = AnalysisRecord.model_validate({**record, "format": FORMAT}).model_dump()
    atomic_write_text(Path(run_dir) / FILE, json.dumps(data, separators=(",", ":")) + "\n")
    return data


def read_analysis(run_dir: str | Path) -> dict[str, Any] | None:
    """`run_dir/analysis.json` validated against `AnalysisRecord`, or None when there is none,
    it cannot be read, or it is of another format (an older or newer depthbench's)."""
    try:
        raw = json.loads((Path(run_dir) / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        return None
    try:
        return AnalysisRecord.model_validate(raw).model_dump()
    except ValidationError:
        return None


def summarize(record: dict[str, Any]) -> dict[str, Any]:
    """The record in a few numbers (what `depthbench analyze` prints, and its --json)."""
    rec = AnalysisRecord.model_validate(record)
    attn = rec.attention
    return {
        "analysis": f"{rec.run}/{FILE}", "model": rec.model, "variant": rec.variant,
        "seed": rec.seed, "split": rec.split, "note": rec.note, "images": rec.subset.images,
        "seconds": rec.seconds, "near_identical_tail": rec.cka.near_identical_tail,
        "cka_threshold": rec.cka.threshold,
        "se_class_specificity": rec.se.blocks[-1].class_specificity if rec.se else None,
        "attention_distance_px": (sum(b.mean_distance_px for b in attn.blocks) / len(attn.blocks)
                                  if attn else None),
        "gradcam_layer": rec.gradcam.layer,
    }
