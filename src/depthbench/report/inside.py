"""The report's "Inside the networks" section, from the runs' `analysis.json` files alone (written
by `depthbench analyze`; no torch here), and the per-run figures `depthbench analyze` draws.

`inside_section(run_dirs, fig_dir, written=None) -> list of report blocks`. Every reading states
what was measured on which images and what the measurement cannot show: these are descriptions of
the trained weights of single runs on a few hundred images, with no test behind them.
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import Rectangle

from depthbench.analysisrecord import read_analysis
from depthbench.names import display_name, model_order
from depthbench.report.document import Bullets, Figure, Heading, Para, Table
from depthbench.report.figures import _save
from depthbench.runrecord import BASE_VARIANT

# SE gates whose class-specificity stays below this in every block barely depend on the class
FLAT_SPECIFICITY = 0.01
# attention whose entropy is above this share of the uniform maximum is close to uniform
NEAR_UNIFORM_ENTROPY = 0.95

def load_analyses(run_dirs: list[Path]) -> list[dict]:
    """The readable analysis.json records of `run_dirs`, in the report's model order."""
    out = [rec for d in run_dirs if (rec := read_analysis(d)) is not None]
    return sorted(out, key=lambda r: (model_order(r["model"]), r["variant"], r["seed"]))


def _label(rec: dict, seeds: bool = False) -> str:
    s = display_name(rec["model"])
    if rec["variant"] != BASE_VARIANT:
        s += f" {rec['variant']}"
    return s + (f" s{rec['seed']}" if seeds else "")


def _rel(n: int) -> np.ndarray:
    return np.linspace(0, 1, n) if n > 1 else np.zeros(n)


# ---------------------------------------------------------------------------- figures

def _thumb(rec_img: dict) -> np.ndarray:
    from PIL import Image

    raw = base64.b64decode(rec_img["thumbnail_png"])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def _overlay(ax, img: dict) -> None:
    thumb = _thumb(img)
    cam = np.asarray(img["cam"], dtype=float)
    h, w = thumb.shape[:2]
    ax.imshow(thumb, extent=(0, w, h, 0))
    ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1, extent=(0, w, h, 0))
    color = "tab:green" if img["correct"] else "tab:red"
    ax.add_patch(Rectangle((0, 0), w, h, fill=False, edgecolor=color, linewidth=4))
    ax.set_xticks([])
    ax.set_yticks([])


def gradcam_grid(recs: list[dict], classes: list[str], path: Path, seeds: bool) -> None:
    """Rows: runs; columns: the shared images; frame green = correct, red = wrong."""
    n = max(len(r["gradcam"]["images"]) for r in recs)
    fig = MplFigure(figsize=(1.3 * n + 2.2, 1.35 * len(recs) + 0.9), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(recs), n, squeeze=False))
    for i, rec in enumerate(recs):
        for j in range(n):
            ax = axes[i, j]
            ims = rec["gradcam"]["images"]
            if j >= len(ims):
                ax.axis("off")
                continue
            _overlay(ax, ims[j])
            mark = "✓" if ims[j]["correct"] else "✗"
            ax.set_title(f"{mark} {_short(classes, ims[j]['pred'])}", fontsize=7,
                         color="tab:green" if ims[j]["correct"] else "tab:red")
            if i == 0:
                ax.set_xlabel(f"true {_short(classes, ims[j]['label'])}", fontsize=7)
                ax.xaxis.set_label_position("top")
        axes[i, 0].set_ylabel(f"{_label(rec, seeds)}\n{rec['gradcam']['layer']}", fontsize=7)
    fig.suptitle("Grad-CAM of the predicted class (green frame: correct, red: wrong)", fontsize=9)
    _save(fig, path)


def _short(classes: list[str], k: int) -> str:
    name = classes[k] if 0 <= k < len(classes) else str(k)
    return name if len(name) <= 12 else name[:11] + "…"


def cka_heatmaps(recs: list[dict], path: Path, seeds: bool) -> None:
    """One linear-CKA heatmap (block x block) per run."""
    cols = min(4, len(recs))
    rows = -(-len(recs) // cols)
    fig = MplFigure(figsize=(3.2 * cols + 0.8, 3.0 * rows), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False)).ravel()
    im = None
    for ax, rec in zip(axes, recs):
        m = np.asarray(rec["cka"]["matrix"], dtype=float)
        im = ax.imshow(m, cmap="magma", vmin=0, vmax=1, origin="lower")
        ax.set_title(f"{_label(rec, seeds)} (tail {rec['cka']['near_identical_tail']})",
                     fontsize=8)
        ax.set_xlabel("block", fontsize=7)
        ax.set_ylabel("block", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes[len(recs):]:
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=list(axes[:len(recs)]), shrink=0.8, label="linear CKA")
    _save(fig, path)


def _depth_lines(recs: list[dict], path: Path, seeds: bool, part: str, x_of, panels,
                 reference=None) -> None:
    """Two panels of one line per run against depth: `panels` is [(key, title, xlabel, ylabel,
    ylim)], read from `rec[part]["blocks"]`; `reference(blocks)` -> a grey dotted line per panel
    (drawn once), or None."""
    fig = MplFigure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels))
    for i, rec in enumerate(recs):
        blocks = rec[part]["blocks"]
        x = x_of(len(blocks))
        style = "-" if rec["variant"] == BASE_VARIANT else "--"
        for ax, (key, *_rest) in zip(axes, panels):
            ax.plot(x, [b[key] for b in blocks], style, marker=".", color=f"C{i % 10}",
                    label=_label(rec, seeds))
        if i == 0 and reference is not None:
            for ax, (values, label) in zip(axes, reference(blocks)):
                ax.plot(x, values, ":", color="grey", label=label)
    for ax, (_key, title, xlabel, ylabel, ylim) in zip(axes, panels):
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        if ylim:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path)


def se_figure(recs: list[dict], path: Path, seeds: bool) -> None:
    thr = recs[0]["se"]["saturation_threshold"]
    depth = "relative depth (SE block)"
    _depth_lines(recs, path, seeds, "se", _rel, [
        ("class_specificity", "class-specificity of the SE gates", depth,
         "mean over channels of sd over classes", None),
        ("fraction_saturated", f"fraction of gates >= {thr:g}", depth, "fraction", (-0.02, 1.02))])


def attention_figure(recs: list[dict], path: Path, seeds: bool) -> None:
    def uniform(blocks):
        return [([b["uniform_distance_px"] for b in blocks], "uniform over allowed keys"),
                ([b["max_entropy"] for b in blocks], "uniform (maximum)")]

    _depth_lines(recs, path, seeds, "attention", np.arange, [
        ("mean_distance_px", "mean attention distance (mean over heads)", "Swin block",
         "input pixels", None),
        ("mean_entropy", "attention entropy (mean over heads)", "Swin block", "nats", None)],
        reference=uniform)


def draw_run_figures(rec: dict, run_dir: Path) -> list[Path]:
    """A run's own figures beside its analysis.json: the CKA heatmap and the Grad-CAM strip."""
    run_dir = Path(run_dir)
    cka, cam = run_dir / "analysis_cka.png", run_dir / "analysis_gradcam.png"
    cka_heatmaps([rec], cka, seeds=False)
    gradcam_grid([rec], rec["classes"], cam, seeds=False)
    return [cka, cam]


# ---------------------------------------------------------------------------- the section

def _cams_agreement(recs: list[dict]) -> float | None:
    """Mean Pearson correlation between the maps of two runs on the same image (all pairs)."""
    rs = []
    for i, a in enumerate(recs):
        for b in recs[i + 1:]:
            for ia, ib in zip(a["gradcam"]["images"], b["gradcam"]["images"]):
                ca, cb = np.ravel(ia["cam"]), np.ravel(ib["cam"])
                if ia["index"] != ib["index"] or ca.shape != cb.shape:
                    continue
                if ca.std() > 0 and cb.std() > 0:
                    rs.append(float(np.corrcoef(ca, cb)[0, 1]))
    return float(np.mean(rs)) if rs else None


def _se_blocks(recs: list[dict], fig_dir: Path, seeds: bool) -> list:
    se = [r for r in recs if r["se"]]
    out: list = [Heading("SE excitation by depth", 3)]
    if not se:
        return out + [Para("No SE-ResNet run was analyzed.")]
    se_figure(se, fig_dir / "inside_se.png", seeds)
    rows, rising, flat = [], 0, 0
    for r in se:
        b = r["se"]["blocks"]
        first = [x for x in b if x["stage"] == b[0]["stage"]]
        last = [x for x in b if x["stage"] == b[-1]["stage"]]
        f = float(np.mean([x["class_specificity"] for x in first]))
        la = float(np.mean([x["class_specificity"] for x in last]))
        sat = float(np.mean([x["fraction_saturated"] for x in last]))
        rising += la > f
        flat += max(x["class_specificity"] for x in b) < FLAT_SPECIFICITY
        rows.append([_label(r, seeds), str(len(b)), f"{f:.4f}", f"{la:.4f}",
                     f"{np.mean([x['mean_gate'] for x in last]):.3f}", f"{sat:.3f}"])
    thr = se[0]["se"]["saturation_threshold"]
    reading = (f"In {rising} of {len(se)} SE runs the last stage's gates are more class-specific "
               f"than the first stage's, as Hu et al. report for ImageNet")
    if flat:
        reading += (f"; in {flat} of them no block's class-specificity reaches "
                    f"{FLAT_SPECIFICITY:g}, i.e. the gates barely depend on the class at this "
                    "budget")
    reading += (". These are the gates of one trained model per row on "
                f"{se[0]['subset']['images']} {se[0]['split']} images, with no test across seeds: "
                "they describe these weights and cannot show that depth or SE dropout causes a "
                "difference.")
    return out + [
        Para("For every SE block, the mean gate per channel for each class and over all images; "
             "class-specificity is the mean over channels of the standard deviation, over "
             f"classes, of the class-mean gate; saturated gates are >= {thr:g}."),
        Figure(f"{fig_dir.name}/inside_se.png", "SE class-specificity and saturation against "
               "relative depth, one line per SE-ResNet run (dashed: SE-dropout variants)."),
        Table(["run", "SE blocks", "specificity, first stage", "specificity, last stage",
               "mean gate, last stage", "saturated, last stage"], rows,
              caption="SE gate statistics (eval mode, best checkpoint)"),
        Para(reading),
    ]


def _attention_blocks(recs: list[dict], fig_dir: Path, seeds: bool) -> list:
    sw = [r for r in recs if r["attention"]]
    out: list = [Heading("Swin attention by depth", 3)]
    if not sw:
        return out + [Para("No Swin run was analyzed.")]
    attention_figure(sw, fig_dir / "inside_attention.png", seeds)
    rows, ratios = [], []
    for r in sw:
        b = [x for x in r["attention"]["blocks"] if x["window"] > 1]
        d = float(np.mean([x["mean_distance_px"] / x["uniform_distance_px"] for x in b]))
        e = float(np.mean([x["mean_entropy"] / x["max_entropy"] for x in b]))
        ratios.append((r, d, e))
        rows.append([_label(r, seeds), str(len(r["attention"]["blocks"])), str(len(b)),
                     f"{d:.3f}", f"{e:.3f}"])
    mean_e = float(np.mean([e for _, _, e in ratios]))
    reading = (f"Averaged over blocks with a window larger than one token, attention entropy is "
               f"{mean_e:.0%} of the uniform maximum")
    if mean_e > NEAR_UNIFORM_ENTROPY:
        reading += (", so attention is close to uniform and its distance mostly reflects the "
                    "window's geometry, not learned preferences")
    pairs = [(a, b) for a in ratios for b in ratios if a[0]["model"] == b[0]["model"]
             and a[0]["seed"] == b[0]["seed"] and a[0]["variant"] == BASE_VARIANT
             and b[0]["variant"] != BASE_VARIANT]
    for (_, da, ea), (b, db, eb) in pairs:
        reading += (f"; {_label(b, seeds)} against its base: distance ratio {db:.3f} vs "
                    f"{da:.3f}, entropy ratio {eb:.3f} vs {ea:.3f}")
    reading += (". One trained model per line and no test across seeds: a difference here "
                "describes these weights, it cannot show that key dropout spreads attention.")
    return out + [
        Para("Per block and head, the attention-weighted distance between a query and its keys "
             "(input pixels; in shifted windows only the pairs the shift mask allows) and the "
             "attention entropy, averaged over queries, windows and images; the model runs its "
             "explicit (non-fused) attention so the probabilities can be read."),
        Figure(f"{fig_dir.name}/inside_attention.png", "Mean attention distance and entropy per "
               "Swin block (mean over heads); dotted: uniform attention over the keys each "
               "query may see (fewer in shifted windows)."),
        Table(["run", "blocks", "blocks with window > 1", "distance / uniform",
               "entropy / maximum"], rows, caption="Swin attention, relative to uniform "
              "attention (means over blocks with a window larger than one token)"),
        Para(reading),
    ]


def _cka_blocks(recs: list[dict], fig_dir: Path, seeds: bool) -> list:
    cka_heatmaps(recs, fig_dir / "inside_cka.png", seeds)
    thr = recs[0]["cka"]["threshold"]
    rows = [[_label(r, seeds), str(len(r["cka"]["blocks"])),
             str(r["cka"]["near_identical_tail"])] for r in recs]
    cross = []
    for r in recs:
        for other, c in r["cross_cka"].items():
            o = next((x for x in recs if x["run"] == other), None)
            if o is None or model_order(o["model"]) <= model_order(r["model"]):
                continue
            cross.append([f"{_label(r, seeds)} vs {_label(o, seeds)}"]
                         + [f"{c['stage_output'].get(str(s), float('nan')):.3f}"
                            for s in (1, 2, 3, 4)])
    with_tail = [r for r in recs if r["cka"]["near_identical_tail"] > 0]
    reading = (f"{len(with_tail)} of {len(recs)} models end with at least one block whose output "
               f"has CKA >= {thr:g} with the last block's")
    if with_tail:
        top = max(with_tail, key=lambda r: r["cka"]["near_identical_tail"])
        reading += (f" (most: {_label(top, seeds)}, {top['cka']['near_identical_tail']} "
                    "blocks)")
    reading += (f". Measured on {recs[0]['subset']['images']} {recs[0]['split']} images of one "
                "seed: a high CKA says two blocks' outputs are linearly alike on these images, not "
                "that removing the blocks would keep the accuracy.")
    out = [
        Heading("Representation similarity across depth", 3),
        Para("Linear CKA between the outputs of every residual or Swin block, estimated with the "
             f"minibatch unbiased HSIC (minibatches of {recs[0]['cka']['minibatch']}); the tail "
             f"counts the blocks just before the last whose CKA with it stays >= {thr:g}."),
        Figure(f"{fig_dir.name}/inside_cka.png", "Linear CKA between block outputs, one heatmap "
               "per run (block 0 = first block of stage 1)."),
        Table(["run", "blocks", f"near-identical late blocks (CKA >= {thr:g})"], rows,
              caption="Blocks at the end of each network that change its representation little"),
    ]
    if cross:
        out.append(Table(["pair (same family, variant, seed)", "stage 1", "stage 2", "stage 3",
                          "stage 4"], cross, caption="Linear CKA between the outputs of the same "
                         "stage in models of different depth"))
    return out + [Para(reading)]


def _gradcam_blocks(recs: list[dict], fig_dir: Path, seeds: bool) -> list:
    classes = recs[0]["classes"]
    gradcam_grid(recs, classes, fig_dir / "inside_gradcam.png", seeds)
    layers = sorted({f"{r['gradcam']['layer']} ({'x'.join(map(str, r['gradcam']['grid']))})"
                     for r in recs})
    agree = _cams_agreement(recs)
    right = sum(i["correct"] for r in recs for i in r["gradcam"]["images"])
    total = sum(len(r["gradcam"]["images"]) for r in recs)
    reading = f"{right} of {total} model-image cells are correct predictions"
    if agree is not None:
        reading += (f"; the maps of two models on the same image correlate by {agree:.2f} on "
                    "average (Pearson, over all pairs)")
    reading += (". A map shows where the predicted class's gradient concentrates at one coarse "
                "layer, not why the model decided; eight images are examples, not a sample "
                "large enough to compare models.")
    return [
        Heading("Where the models look", 3),
        Para(f"{recs[0]['gradcam']['method']} of the predicted class on the same "
             f"{len(recs[0]['gradcam']['images'])} {recs[0]['split']} images for every run, at "
             f"the last block whose grid is at least 4x4: {', '.join(layers)}."),
        Figure(f"{fig_dir.name}/inside_gradcam.png", "Grad-CAM: rows are runs, columns the same "
               "images; title = predicted class (✓ correct, ✗ wrong), green/red frame."),
        Para(reading),
    ]


def _analysed_alike(recs: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the largest set of records analysed on the same images, the rest): a run analysed alone
    with another `--images` has another seeded subset, and its numbers and Grad-CAM columns do
    not line up with the others'."""
    def key(r):
        return r["split"], tuple(r["subset"]["indices"])

    counts = Counter(key(r) for r in recs)
    main = max(counts, key=lambda k: (counts[k], len(k[1])))
    return [r for r in recs if key(r) == main], [r for r in recs if key(r) != main]


def inside_section(run_dirs: list[Path], fig_dir: Path, written: set | None = None) -> list:
    """The section's blocks; its figures go into `fig_dir` (referenced as `figures/<name>`) and
    their names into `written` when given."""
    fig_dir = Path(fig_dir)
    recs = load_analyses(run_dirs)
    head = Heading("Inside the networks", 2)
    if not recs:
        return [head, Para("No run has an analysis.json: run `depthbench analyze` on the study "
                           "folder (or `depthbench run` without --no-analyze) to add this "
                           "section.", css="note")]
    fig_dir.mkdir(parents=True, exist_ok=True)
    recs, apart = _analysed_alike(recs)
    seeds = len({r["seed"] for r in recs}) > 1
    notes = sorted({r["note"] for r in recs if r["note"]})
    blocks: list = [head, Para(
        f"Measured by `depthbench analyze` on the best checkpoint of {len(recs)} runs, in eval "
        f"mode, on the same seeded subset of {recs[0]['subset']['images']} {recs[0]['split']} "
        "images. Each number describes one trained model; none is a statistical comparison.")]
    if apart:
        blocks.append(Para(
            "Not shown here, because they were analysed on other images: " + "; ".join(
                f"{r['run']} ({r['subset']['images']} {r['split']} images)" for r in apart)
            + ". Run `depthbench analyze` on the study folder to analyse every run on one "
            "subset.", css="note"))
    if notes:
        blocks.append(Bullets(notes))
    blocks += _se_blocks(recs, fig_dir, seeds)
    blocks += _attention_blocks(recs, fig_dir, seeds)
    blocks += _cka_blocks(recs, fig_dir, seeds)
    blocks += _gradcam_blocks(recs, fig_dir, seeds)
    if written is not None:
        written.update(Path(b.path).name for b in blocks if isinstance(b, Figure))
    return blocks
