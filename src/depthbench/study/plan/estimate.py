"""A study's plan: its design, what it costs (per model and in total) and the alternatives
beside it (`plan_study`, what `depthbench plan` prints); and the few lines `run` prints before
it starts, with its refusal when the disk cannot hold what the study will write (`announce`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from depthbench.cpus import usable_cpu_count
from depthbench.engine.config import TrainConfig
from depthbench.engine.devices import device_type, resolve_precision
from depthbench.errors import ConfigError, DepthbenchError
from depthbench.models.complexity import count_params, macs_224, meta_model, model_macs
from depthbench.names import family_of
from depthbench.study import packing
from depthbench.study.folder import preflight
from depthbench.study.grid import plan_runs
from depthbench.study.plan import costs, decide, design, timing
from depthbench.study.plan.costs import RunCost
from depthbench.study.plan.decide import Detectable, Planned, Variance
from depthbench.study.plan.design import Design, Sizes
from depthbench.study.records import status_of
from depthbench.study.schema import StudySpec

DAY_S = 86400.0


@dataclass
class Machine:
    """Where and how the runs train here: device, precision, runs at once, threads of each."""

    device: str  # cpu | cuda
    name: str  # the CPU model or GPU name
    precision: str
    at_once: int
    threads: int

    @property
    def key(self) -> str:
        return timing.machine_key(self.name, self.precision, self.threads)

    def describe(self) -> str:
        what = self.name if self.device == "cuda" else f"{self.name} CPU"
        return (f"{what}, {self.precision}, {self.at_once} run(s) at a time, "
                f"{self.threads} thread(s) each")


@dataclass
class DesignCost:
    """One design's runs and what they cost together."""

    design: Design
    sizes: Sizes
    runs: list[RunCost]  # one per run (model x variant x seed x cell)
    wall_seconds: float  # on this machine, with its runs at once, analysis and report included
    detectable: Detectable | None = None

    @property
    def gpu_seconds(self) -> float:
        return sum(r.gpu_seconds for r in self.runs)

    @property
    def disk_bytes(self) -> int:
        return sum(r.disk_bytes for r in self.runs) + costs.REPORT_BYTES

    @property
    def train_flops(self) -> float:
        return sum(r.train_flops + r.eval_flops for r in self.runs)


@dataclass
class StudyPlan:
    spec: StudySpec
    machine: Machine
    classes: int
    images: int
    study: DesignCost
    alternatives: list[DesignCost]
    timing_source: dict[str, str]  # model -> how its seconds were obtained
    worker_start_s: float
    target: float
    gpu: costs.GpuBasis
    points: list[tuple[str, str]] = field(default_factory=list)  # (model, variant)
    variance: Variance = field(default_factory=decide.defaults)
    comparisons: list[Planned] = field(default_factory=list)

    def cheapest(self) -> Design | None:
        rows = [(a.design, a.detectable, a.wall_seconds) for a in self.alternatives]
        return decide.cheapest_reaching(rows, self.target)

    def per_model(self) -> list[dict]:
        """The study's cost by model (its variants, seeds and cells together)."""
        out: dict[str, dict] = {}
        for r in self.study.runs:
            m = out.setdefault(r.model, {
                "model": r.model, "variants": [], "runs": 0, "params": r.params, "macs": r.macs,
                "train_flops": 0.0, "eval_flops": 0.0, "seconds": 0.0, "gpu_seconds": 0.0,
                "peak_bytes": r.peak_bytes, "disk_bytes": 0,
                "timing": self.timing_source.get(r.model, "")})
            if r.variant not in m["variants"]:
                m["variants"].append(r.variant)
            m["runs"] += 1
            m["train_flops"] += r.train_flops
            m["eval_flops"] += r.eval_flops
            m["seconds"] += r.seconds + r.analysis_seconds
            m["gpu_seconds"] += r.gpu_seconds
            m["disk_bytes"] += r.disk_bytes
            m["peak_bytes"] = max(m["peak_bytes"], r.peak_bytes)
        return list(out.values())

    def per_point(self) -> list[dict]:
        """One run of each (model, variant) of the study's design: its own costs, and how many
        such runs the design trains."""
        out: dict[tuple[str, str], dict] = {}
        for r in self.study.runs:
            row = out.get((r.model, r.variant))
            if row is None:
                row = out[r.model, r.variant] = {k: v for k, v in vars(r).items()}
                row["runs"] = 0
            row["runs"] += 1
        return list(out.values())

    def longer_than_a_day(self) -> bool:
        return self.study.wall_seconds > DAY_S

    def to_dict(self) -> dict:
        def design_row(c: DesignCost) -> dict:
            det = c.detectable
            return {"design": c.design.label, "seeds": c.design.seeds, "folds": c.design.folds,
                    "repeats": c.design.repeats, "runs": len(c.runs),
                    "images": vars(c.sizes), "hours_this_machine": c.wall_seconds / 3600,
                    "gpu_hours_estimate": c.gpu_seconds / 3600, "disk_bytes": c.disk_bytes,
                    "detectable_median": det.median if det else None,
                    "detectable_worst": det.worst if det else None,
                    "detectable": list(det.each) if det else None,
                    "reaches_target": (det.worst <= self.target) if det else None}

        cheapest = self.cheapest()
        s = self.study
        return {
            "study": self.spec.name, "data": self.spec.data, "images": self.images,
            "classes": self.classes,
            "design": {"label": s.design.label, "seeds": s.design.seeds,
                       "folds": s.design.folds, "repeats": s.design.repeats,
                       "runs": len(s.runs), "images_per_run": vars(s.sizes),
                       "runs_by_model": _runs_by_model(s.runs)},
            "machine": {"device": self.machine.device, "name": self.machine.name,
                        "precision": self.machine.precision,
                        "runs_at_once": self.machine.at_once,
                        "threads_per_run": self.machine.threads},
            "costs": {
                "models": self.per_model(),
                "runs": self.per_point(),
                "total": {"runs": len(s.runs), "train_flops": sum(r.train_flops for r in s.runs),
                          "eval_flops": sum(r.eval_flops for r in s.runs),
                          "seconds_this_machine": s.wall_seconds,
                          "worker_start_seconds": self.worker_start_s,
                          "gpu_seconds_estimate": s.gpu_seconds,
                          "gpu_basis": self.gpu.describe(),
                          "peak_bytes_per_run": max((r.peak_bytes for r in s.runs), default=0),
                          "disk_bytes": s.disk_bytes},
                "longer_than_a_day": self.longer_than_a_day()},
            "variance": {"source": self.variance.source, "text": self.variance.text,
                         **self.variance.numbers},
            "comparisons": [
                {"section": c.pair.section, "a": list(c.pair.a), "b": list(c.pair.b),
                 "name": c.name, "m": c.m, "variance": c.source,
                 "detectable": s.detectable.each[i] if s.detectable else None}
                for i, c in enumerate(self.comparisons)],
            "alternatives": [design_row(a) for a in self.alternatives],
            "target_points": self.target,
            "cheapest_reaching_target": cheapest.label if cheapest else None,
        }


def plan_study(spec: StudySpec, study_dir: Path, *, folds: int | None = None,
               repeats: int | None = None, target: float = 3.0, remeasure: bool = False,
               measured_in: Path | None = None, progress=None) -> StudyPlan:
    """Everything `depthbench plan` prints: the study's design at the split `run` would use
    (its folder's split.json, else a new one; nothing is written there), its costs with each
    model timed on this machine (or as timed before under the same machine key, unless
    `remeasure`), what each comparison can decide (its variance from the study folder
    `measured_in`, else the stated defaults: `decide`), and the alternatives.
    `progress(model)` is called as each model is timed."""
    study_dir = Path(study_dir)
    start = preflight(spec, study_dir)  # the checks `run` makes first; writes nothing
    study_design = design.protocol(spec, folds, repeats)
    c = _Costing(spec, start.images)
    source = {m: f"timed before ({t.measured})" for m, t in c.timings.items() if t}
    todo = {m for m, t in c.timings.items() if remeasure or t is None}
    if todo:
        entry = c.entry()
        measured, worker_start = timing.measure(
            {c.keys[m]: c.bases[m] for m in todo}, num_classes=c.num_classes,
            threads=c.machine.threads, at_once=c.machine.at_once,
            flops_per_image={c.keys[m]: costs.TRAIN_PASSES * 2.0 * c.counts(c.bases[m])["macs"]
                             for m in todo},
            device=c.machine.device, progress=progress)
        write = entry.get("write_bytes_per_s")
        if remeasure or not write:
            write = timing.write_rate(_existing_parent(study_dir))
        c.store.update(c.machine.key, c.machine.device, measured, worker_start_s=worker_start,
                       write_bytes_per_s=write)
        for m in todo:
            c.timings[m] = measured[c.keys[m]]
            source[m] = "timed now"

    variance, comparisons = decide.planned(list(c.configs), lambda k: family_of(k[0]),
                                           c.gmacs_224, measured_in)
    images = len(c.manifest.entries("all"))

    def cost_of(d: Design, peak: bool = True) -> DesignCost:
        sz = design.sizes(c.manifest, d, spec.split.val, spec.split.seed)
        runs = [r for r in c.run_costs(sz, peak).values() for _ in range(d.seeds * d.cells)]
        return DesignCost(d, sz, runs, c.wall(runs),
                          decide.detectable(comparisons, d, sz, images))

    study_cost = cost_of(study_design)
    alternatives = [study_cost if d == study_design else cost_of(d, peak=False)
                    for d in design.alternatives(study_design)]
    return StudyPlan(spec, c.machine, c.num_classes, len(c.manifest), study_cost, alternatives,
                     source, c.entry().get("worker_start_s", 0.0), target, c.gpu,
                     list(c.configs), variance, comparisons)


@dataclass
class Announcement:
    """What `run` says before it starts: runs (to go), the time and the disk the study needs."""

    lines: list[str]
    need_bytes: int
    free_bytes: int


def announce(spec: StudySpec, study_dir: Path, manifest, *, retry_failed: bool = False
             ) -> Announcement:
    """The lines `run` prints first, from what is kept (no step is timed here): each model's
    timing measured by `plan` on this machine, else its FLOPs at this machine's measured rate,
    else a rough rate, said so. Refuses with one line (`DepthbenchError`) when the disk the study
    writes to has less free space than what is still to be written (finished runs, and failed
    ones kept, count as written)."""
    c = _Costing(spec, manifest, estimate_peaks=False)
    d = design.protocol(spec)
    by_point = c.run_costs(design.sizes(manifest, d, spec.split.val, spec.split.seed), False)
    plans = plan_runs(spec)
    todo = [p for p in plans if _to_train(study_dir / p.name, retry_failed)]
    runs = [by_point[p.model, p.variant] for p in todo]
    seconds = c.wall(runs)
    need = sum(max(0, r.disk_bytes - _folder_bytes(study_dir / p.name))
               for p, r in zip(todo, runs)) + costs.REPORT_BYTES
    need += max((r.checkpoint_bytes for r in runs), default=0)  # a checkpoint's atomic rewrite
    free = free_bytes(study_dir)
    measured = c.entry().get("flops_per_s")
    if all(c.timings.values()):
        how = f"as `depthbench plan` timed its models on this machine ({c.entry().get('measured')})"
    elif measured:
        how = (f"from FLOPs at this machine's measured {measured / 1e9:.3g} GFLOP/s; "
               "`depthbench plan` times each model")
    else:
        how = (f"rough: FLOPs at an assumed {c.rate() / 1e9:.3g} GFLOP/s, nothing measured on "
               "this machine yet; `depthbench plan` measures it")
    left = f" ({len(todo)} left to train)" if len(todo) != len(plans) else ""
    lines = [f"{study_dir}: {len(plans)} runs{left}: {_grid_words(c.configs, d)}"]
    gpu = sum(r.gpu_seconds for r in runs)
    if spec.executor.kind == "slurm":
        lines.append(f"time: about {duration(gpu)} of GPU time (estimate: {c.gpu.describe()})")
    else:
        lines.append(f"time: about {duration(seconds)} on this machine ({c.machine.describe()}; "
                     f"{how})")
        if seconds > DAY_S:
            lines.append("this study would take more than a day here: train it on a cluster "
                         f"(--executor slurm) or on a GPU (about {duration(gpu)} of GPU time, "
                         "estimated)")
    lines.append(f"disk: {size(need)} to write into {study_dir}, {size(free)} free")
    if need > free:
        raise DepthbenchError(
            f"{study_dir}: the study needs {size(need)} of disk (checkpoints and records of "
            f"{len(todo)} runs) and {_existing_parent(study_dir)} has {size(free)} free; free "
            "some space, pass --out on a larger disk, or train fewer runs (--seeds, models)")
    return Announcement(lines, need, free)


class _Costing:
    """What the plan and `run`'s first lines cost runs from: the grid's configs (one per model
    and variant), this machine, and what its rate file keeps (timings, counts, rates)."""

    def __init__(self, spec: StudySpec, manifest, estimate_peaks: bool = True):
        self.manifest = manifest
        self.configs = _grid_configs(spec)
        self.machine = _machine(spec, self.configs, len(manifest), estimate_peaks)
        self.num_classes = len(manifest.classes)
        self.store = timing.RateStore()
        self.bases: dict[str, TrainConfig] = {}  # one timing per model: its variants differ
        for (model, _), config in self.configs.items():  # only by a dropout's cost
            self.bases.setdefault(model, config)
        self.keys = {m: timing.timing_key(c) for m, c in self.bases.items()}
        self.timings = {m: self.store.timing(self.machine.key, k) for m, k in self.keys.items()}
        self._counts = _counts(self.store, self.configs, self.num_classes)
        self.manifest_bytes = len(json.dumps(manifest.to_dict(), indent=2))
        kept = self.store.gpu_record()  # a GPU's rate measured by `plan` there, named
        self.gpu = (costs.GpuBasis(kept[1], f"{kept[0]}, as `depthbench plan` measured it "
                                            f"({self.store.machine(kept[0]).get('measured')})")
                    if kept else costs.GpuBasis())

    def entry(self) -> dict:
        return self.store.machine(self.machine.key)

    def rate(self) -> float:
        """Training FLOP/s here: measured, else the rough rate."""
        return (self.entry().get("flops_per_s")
                or timing.rough_rate(self.machine.device, self.machine.threads))

    def counts(self, config: TrainConfig) -> dict:
        return self._counts[_count_key(config)]

    def gmacs_224(self, point: tuple[str, str]) -> float | None:
        """GMACs of one 224 px image of the point's model (`models.complexity.macs_224`, as a
        run records it; the report's matched cost), counted once and kept with the counts."""
        config = self.configs[point]
        key = f"{_count_key(config)}|{self.num_classes}|224"
        kept = self.store.counts(key)
        if kept is None:
            kept = {"macs_224": macs_224(config.model, self.num_classes,
                                         **config.model_kwargs())}
            self.store.keep_counts(key, kept)
        return kept["macs_224"] / 1e9

    def run_costs(self, sizes: Sizes, peak: bool) -> dict[tuple[str, str], RunCost]:
        write_rate = self.entry().get("write_bytes_per_s") or _ROUGH_WRITE_RATE
        return {(model, variant): costs.run_cost(
                    c, variant, sizes, **self.counts(c), timing=self.timings[model],
                    rate=self.rate(), manifest_bytes=self.manifest_bytes,
                    write_rate=write_rate, gpu=self.gpu, peak=peak)
                for (model, variant), c in self.configs.items()}

    def wall(self, runs: list[RunCost]) -> float:
        """The study's wall time: its worker server's start, its runs `at_once` at a time,
        then the analysis of each run and the report (one after another in the runner)."""
        if not runs:
            return costs.REPORT_S
        return (self.entry().get("worker_start_s", 0.0)
                + costs.wall_seconds([r.seconds for r in runs], self.machine.at_once)
                + sum(r.analysis_seconds for r in runs) + costs.REPORT_S)


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem that `path` (or its nearest existing parent) is on."""
    return shutil.disk_usage(_existing_parent(path)).free


# --------------------------------------------------------------------------------------------


# When this machine's disk was never timed: a write rate for the checkpoints' seconds.
_ROUGH_WRITE_RATE = 200e6


def _grid_configs(spec: StudySpec) -> dict[tuple[str, str], TrainConfig]:
    """Each (model, variant) of the grid and its resolved config (the first seed's)."""
    out: dict[tuple[str, str], TrainConfig] = {}
    for p in plan_runs(spec):
        out.setdefault((p.model, p.variant), p.train_config())
    return out


def _machine(spec: StudySpec, configs: dict[tuple[str, str], TrainConfig], images: int,
             estimate_peaks: bool = True) -> Machine:
    """The device, precision, runs at once and threads of each, as the local executor decides
    them (`study.local`): on the CPU `jobs` runs (auto: one) with the cores divided; on GPUs
    `auto` packs runs by their estimated peak memory."""
    first = next(iter(configs.values()))
    try:
        device = device_type(first.accelerator)
    except ConfigError:  # `accelerator: gpu` of a SLURM study planned on a machine without one
        device = "cpu"
    precision = resolve_precision(first.precision, device)
    cpus = usable_cpu_count()
    runs = len(plan_runs(spec))
    if device == "cuda" and spec.jobs == "auto" and estimate_peaks and first.devices == 1:
        gpus = packing.visible_gpus()
        peaks = [packing.run_peak(c, images) for c in configs.values()]
        at_once = min(runs, packing.slots(peaks, [g.budget for g in gpus], cpus))
    elif spec.jobs == "auto":
        at_once = 1
    else:
        at_once = min(spec.jobs, runs)
    return Machine(device, timing.processor_name(device), precision, at_once,
                   max(1, cpus // at_once))


def _count_key(config: TrainConfig) -> str:
    return json.dumps([config.model, config.model_kwargs(), config.img_size], sort_keys=True)


def _counts(store: timing.RateStore, configs, num_classes: int) -> dict[str, dict]:
    """Parameters and MACs of each model as the grid builds it (meta device; kept with the
    rates, since counting takes seconds a model)."""
    out = {}
    for c in configs.values():
        key = _count_key(c)
        if key in out:
            continue
        kept = store.counts(f"{key}|{num_classes}")
        if kept is None:
            options = {k: v for k, v in c.model_kwargs().items() if k != "img_size"}
            kept = {"params": count_params(meta_model(c.model, num_classes,
                                                      **c.model_kwargs())),
                    "macs": model_macs(c.model, c.img_size, num_classes, **options)}
            store.keep_counts(f"{key}|{num_classes}", kept)
        out[key] = kept
    return out


def _runs_by_model(runs: list[RunCost]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in runs:
        out.setdefault(r.model, {}).setdefault(r.variant, 0)
        out[r.model][r.variant] += 1
    return out


def _grid_words(configs, d: Design) -> str:
    models = len({m for m, _ in configs})
    return f"{models} models, {len(configs)} model x variant, {d.label}"


def _to_train(run_dir: Path, retry_failed: bool) -> bool:
    state = status_of(run_dir)
    return not (state == "finished" or (state == "failed" and not retry_failed))


def _folder_bytes(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _existing_parent(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def duration(seconds: float) -> str:
    """Seconds as s, min or h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def size(n: float) -> str:
    """Bytes in decimal units (as `df -H` shows them)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"
