"""`visionyard results JOB`: a validation's per-class metrics and confusion matrix, in the terminal or as JSON."""

from __future__ import annotations

from protos import visionyard_pb2 as pb
from runner.cli.output import Column, Output

#: A confusion matrix is drawn in the terminal up to this many labels; above, its most confused pairs.
MATRIX_IN_TERMINAL = 12
CONFUSED_PAIRS = 10
#: The per-class value a table sorts by when it shows only some classes (the worst first), per task.
RANKED_BY = ("f1", "iou", "AP50-95", "accuracy")
#: The order of the per-class columns (a value not named here comes after these, by name).
COLUMN_ORDER = ("precision", "recall", "f1", "AP50", "AP50-95", "iou", "accuracy")
#: What an evaluation's count (``EvalResponse.images``: the records evaluated) counts, where a record is no image:
#: a visual QA record is one question, and an image has several.
RECORDS_ARE = {"visual_qa": "questions"}


def counted(task: str) -> str:
    """What an evaluation of ``task`` counts: ``images``, or ``questions`` for visual QA."""
    return RECORDS_ARE.get(task, "images")


def matrix_rows(matrix: pb.ConfusionMatrix) -> list[list[int]]:
    n = len(matrix.labels)
    counts = list(matrix.counts)
    return [counts[i * n:(i + 1) * n] for i in range(n)] if n and len(counts) == n * n else []


def results_json(reply: pb.GetResultsResponse) -> dict:
    """One object: ``job, task, epoch, best, source, evaluator, classes, metrics, per_class (one
    {"class", ...} per class), confusion_matrix (rows ground truth, columns prediction; null when the
    evaluator has none), confusion_labels, per_image`` (the record's rows: values, OCR's texts, an eval's
    gallery of ``predicted`` and ``truth``), ``curves`` (the record's precision–recall curves, null when
    none) and ``epochs`` (every validation's metrics)."""
    result = reply.result
    per_class = [{"class": row.name, **dict(sorted(row.values.items())), "support": row.support}
                 for row in result.per_class]
    has_matrix = result.HasField("confusion_matrix")
    return {"job": result.job_id, "task": result.task, "epoch": result.epoch, "best": result.best,
            "source": result.source, "evaluator": result.evaluator, "classes": list(result.classes),
            "metrics": dict(sorted(result.metrics.items())), "per_class": per_class,
            "confusion_matrix": matrix_rows(result.confusion_matrix) if has_matrix else None,
            "confusion_labels": list(result.confusion_matrix.labels) if has_matrix else [],
            "per_image": [image_json(row) for row in result.per_image],
            "curves": curves_json(result),
            "epochs": [{"epoch": e.epoch, "step": e.step, "best": e.best, "kept": e.kept,
                        "metrics": dict(sorted(e.metrics.items()))} for e in reply.epochs]}


def image_json(row: pb.ImageResult) -> dict:
    """A per-image row in the record's shape (``adapters.evaluation.record``, ``adapters.evaluation.scoring``)."""
    out: dict = {"image": row.image}
    if row.target or row.prediction:
        out.update(target=row.target, prediction=row.prediction)
    if row.true_label:
        out.update(predicted=row.predicted_label or None, truth=row.true_label)
    elif row.predicted_boxes or row.true_boxes:
        out.update(predicted=[_box_json(b) for b in row.predicted_boxes],
                   truth=[_box_json(b, truth=True) for b in row.true_boxes])
    return {**out, **dict(sorted(row.values.items()))}


def _box_json(found: pb.ImageBox, truth: bool = False) -> dict:
    box = [found.box.x1, found.box.y1, found.box.x2, found.box.y2]
    if truth:
        return {"label": found.label, "box": box, **({"crowd": True} if found.crowd else {})}
    return {"label": found.label, "score": found.score, "box": box}


def curves_json(result: pb.ValidationResult) -> dict | None:
    """The result's curves in the record's shape: ``{kind: {"iou", "recall", "mean", "per_class": {class:
    precisions}}}``, NaN as null; None when it has none."""
    out: dict = {}
    for curve in result.curves:
        kind = out.setdefault(curve.kind, {"iou": curve.iou, "recall": list(curve.recall), "mean": None,
                                           "per_class": {}})
        values = [None if v != v else v for v in curve.precision]
        if curve.mean:
            kind["mean"] = values
        else:
            kind["per_class"][curve.name] = values
    return out or None


def _number(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.0f}"


def show_results(reply: pb.GetResultsResponse, out: Output, top: int = 25) -> None:
    """The epoch's metrics, its per-class table (the `top` worst classes when there are more), and
    its confusion matrix (counts, then normalised by row) or, for many classes, the most confused pairs."""
    result = reply.result
    which = "best" if result.best else ("last" if reply.epochs and result.epoch == reply.epochs[-1].epoch else "")
    out.line(f"job {result.job_id} ({result.task}): epoch {result.epoch}{f' ({which})' if which else ''} of "
             f"{len(reply.epochs)} validated, by {result.evaluator}")
    out.pairs([(name, _number(value)) for name, value in sorted(result.metrics.items())])
    _per_class(result, out, top)
    _per_image(result, out, top)
    if result.HasField("confusion_matrix"):
        _confusion(result.confusion_matrix, out)


def eval_json(reply: pb.EvalResponse) -> dict:
    """``results --json``'s shape for the evaluation, plus where and on what it ran: ``name``, ``dataset``,
    ``dataset_hash``, ``checkpoint``, ``split``, ``images``, ``seconds``, ``path``. A visual QA evaluation counts
    ``questions`` instead; its ``images`` is null (the reply does not say how many images they were about)."""
    data = results_json(pb.GetResultsResponse(result=reply.result))
    data.pop("epochs")
    data.pop("best")
    count = {"images": reply.images} if counted(reply.result.task) == "images" else \
        {"images": None, counted(reply.result.task): reply.images}
    return {**data, "name": reply.name, "dataset": reply.dataset, "dataset_hash": reply.dataset_hash,
            "checkpoint": reply.checkpoint, "split": reply.split, **count, "seconds": reply.seconds,
            "path": reply.path}


def show_eval(reply: pb.EvalResponse, out: Output, top: int = 25) -> None:
    result = reply.result
    out.line(f"job {result.job_id} ({result.task}): {reply.checkpoint} on {reply.dataset} ({reply.split}, "
             f"{reply.images} {counted(result.task)}) by {result.evaluator}, in {reply.seconds:.1f} s")
    out.line(f"dataset hash {reply.dataset_hash}; kept in {reply.path}")
    out.pairs([(name, _number(value)) for name, value in sorted(result.metrics.items())])
    _per_class(result, out, top)
    _per_image(result, out, top)
    if result.HasField("confusion_matrix"):
        _confusion(result.confusion_matrix, out)


def show_evals(job: str, evals: list[pb.EvalResponse], out: Output) -> None:
    if not evals:
        out.line(f"job {job} has no evaluations (visionyard eval {job})")
        return
    keys = sorted({k for e in evals for k in e.result.metrics})[:4]
    columns = ([Column("name", wrap=True), Column("dataset", wrap=True, drop=3), Column("split", drop=2),
                Column(counted(evals[0].result.task), right=True, drop=1)] + [Column(k, right=True) for k in keys]
               + [Column("hash", drop=4)])
    out.table(columns, [[e.name, e.dataset, e.split, str(e.images)]
                        + [_number(e.result.metrics[k]) if k in e.result.metrics else "-" for k in keys]
                        + [e.dataset_hash.split(":")[-1][:12]] for e in evals],
              title=f"evaluations of job {job} (newest first), by {evals[0].result.evaluator}")


def _per_class(result: pb.ValidationResult, out: Output, top: int) -> None:
    rows = list(result.per_class)
    if not rows:
        return
    keys = sorted({k for row in rows for k in row.values},
                  key=lambda k: (COLUMN_ORDER.index(k) if k in COLUMN_ORDER else len(COLUMN_ORDER), k))
    shown = rows
    if len(rows) > top:
        rank = next((k for k in RANKED_BY if k in keys), keys[0] if keys else "")
        shown = sorted(rows, key=lambda row: row.values.get(rank, float("-inf")))[:top]
        title = f"per class: the {top} lowest {rank} of {len(rows)} classes"
    else:
        title = "per class"
    columns = [Column("class", wrap=True)] + [Column(k, right=True, drop=len(keys) - i) for i, k in enumerate(keys)]
    columns.append(Column("support", right=True))
    out.table(columns, [[row.name] + [_number(row.values[k]) if k in row.values else "-" for k in keys]
                        + [str(row.support)] for row in shown], title=title)
    if len(rows) > top:
        out.line(f"  {len(rows) - top} more classes: --top N shows more, --json all of them")


#: The tasks an eval keeps a gallery of (``adapters.evaluation.scoring``: classification and the object tasks,
#: zero-shot ones included). The others' evals keep each image's scores, the worst first, which the tables list.
GALLERY_TASKS = ("image_classification", "object_detection", "instance_segmentation", "pose_estimation",
                 "obb_detection", "zero_shot_classification", "zero_shot_detection")


def write_plots(reply: pb.GetResultsResponse, folder: str, note=None) -> list[str]:
    """The result's confusion matrix (counts and normalised by row), its per-class bars of the value the
    table ranks by, the training curves (losses and the epoch metrics), its precision–recall curves
    (``pr_curves.png``; ``mask_``/``pose_`` twins) and a gallery of images with their predictions
    (``gallery.png``: an eval's own rows, or for a training's results the newest eval of the job's val split,
    ``reply.gallery``) as PNGs in `folder`; their paths. ``note`` (default: a line on stderr) is told when a
    task that has a gallery has no eval to draw it from."""
    from pathlib import Path

    from runner import plots

    result, folder_path, written = reply.result, Path(folder), []
    title = f"job {result.job_id}, " + ("eval" if result.source == "eval" else f"epoch {result.epoch}")
    if result.HasField("confusion_matrix") and (rows := matrix_rows(result.confusion_matrix)):
        labels = list(result.confusion_matrix.labels)
        written.append(plots.confusion_matrix(labels, rows, folder_path / "confusion_matrix.png", title=title))
        written.append(plots.confusion_matrix(labels, rows, folder_path / "confusion_matrix_normalised.png",
                                              normalise=True, title=f"{title}, normalised by row"))
    keys = {k for row in result.per_class for k in row.values}
    if rank := next((k for k in RANKED_BY if k in keys), None):
        written.append(plots.per_class_bars([row.name for row in result.per_class],
                                            [row.values[rank] if rank in row.values else None
                                             for row in result.per_class],
                                            rank, folder_path / f"per_class_{rank}.png", title=f"{title}: {rank}"))
    epochs = [{"epoch": e.epoch, "metrics": dict(e.metrics)} for e in reply.epochs]
    if epochs:  # an evaluation has none
        names = sorted({k for e in epochs for k in e["metrics"]})
        losses = [k for k in ("train/loss", "val/loss") if k in names]
        others = [k for k in names if k.startswith("val/") and k not in losses]
        written.append(plots.curves(epochs, losses + others, folder_path / "curves.png", title=f"job {result.job_id}"))
    written += write_pr_curves(result, folder_path, title)
    evaluated = result if result.source == "eval" else reply.gallery.result if reply.HasField("gallery") else None
    rows = plots.gallery_rows([image_json(row) for row in evaluated.per_image]) if evaluated is not None else []
    if rows:
        which = f"eval {reply.gallery.name}" if evaluated is not result else "eval"
        written.append(plots.gallery(rows, evaluated.dataset, folder_path / "gallery.png",
                                     title=f"job {result.job_id}, {which}: predictions, mistakes first"))
    elif result.source != "eval" and result.task in GALLERY_TASKS:
        (note or _stderr)(f"no gallery.png: training keeps no predictions; `visionyard eval {result.job_id}` "
                          "evaluates its val split and keeps one, which results --plots then draws")
    elif result.source == "eval" and result.task not in GALLERY_TASKS:
        (note or _stderr)(f"no gallery.png: an eval of {result.task} keeps no boxes or labels to draw, only each "
                          "image's scores, which `visionyard eval` lists (the worst first; all with --json)")
    return [str(p) for p in written]


def write_pr_curves(result: pb.ValidationResult, folder, title: str) -> list:
    """``pr_curves.png`` (boxes), ``mask_pr_curves.png``, ``pose_pr_curves.png``: each kind of the result's
    curves, the legend's APs from its per-class rows and metrics; [] when it has none."""
    from runner import plots

    rows = [{"class": row.name, **row.values} for row in result.per_class]
    return plots.pr_curve_figures(curves_json(result) or {}, rows, dict(result.metrics), folder, title)


def _stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr)


def _per_image(result: pb.ValidationResult, out: Output, top: int) -> None:
    """The worst-scored images, or questions (the record keeps them worst first)."""
    rows = list(result.per_image)[:top]
    if not rows:
        return
    keys = sorted({k for row in rows for k in row.values})
    texts = any(row.target or row.prediction for row in rows)
    columns = ([Column("image", wrap=True)] + [Column(k, right=True) for k in keys]
               + ([Column("target", wrap=True, drop=2), Column("read", wrap=True, drop=1)] if texts else []))
    out.table(columns, [[row.image] + [_number(row.values[k]) if k in row.values else "-" for k in keys]
                        + ([row.target, row.prediction] if texts else []) for row in rows],
              title=f"the {len(rows)} worst {counted(result.task)}"
              + (f" of {len(result.per_image)} kept" if len(result.per_image) > top else ""))


def _confusion(matrix: pb.ConfusionMatrix, out: Output) -> None:
    labels, rows = list(matrix.labels), matrix_rows(matrix)
    if not rows:
        return
    total = sum(map(sum, rows))
    if len(labels) <= MATRIX_IN_TERMINAL:
        columns = [Column("true \\ predicted", wrap=True)] + [Column(name, right=True) for name in labels]
        out.table(columns, [[name] + [str(v) for v in row] for name, row in zip(labels, rows, strict=True)],
                  title=f"confusion matrix: {total} counted (rows: ground truth)")
        out.table(columns, [[name] + [f"{v / sum(row):.2f}" if sum(row) else "-" for v in row]
                            for name, row in zip(labels, rows, strict=True)],
                  title="normalised by row (the diagonal is each class's recall)")
        return
    pairs = sorted(((v, t, p) for t, row in enumerate(rows) for p, v in enumerate(row) if t != p and v),
                   reverse=True)[:CONFUSED_PAIRS]
    out.line(f"confusion matrix: {len(labels)} x {len(labels)}, {total} counted; in full with --json")
    if pairs:
        out.table([Column("true", wrap=True), Column("predicted as", wrap=True), Column("count", right=True),
                   Column("of the class", right=True)],
                  [[labels[t], labels[p], str(v), f"{v / max(sum(rows[t]), 1):.0%}"] for v, t, p in pairs],
                  title="most confused")


# ---------------------------------------------------------------- compare


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def compare_json(reply: pb.CompareResponse) -> list[dict]:
    """One row per job: its id, framework, model, best epoch, the best epoch's metrics and where they
    come from (``source``), its training time, parameters and training images/s (null where its adapter
    reports none), and its per-class values (``per_class``: class → value of
    ``per_class_key``) when every job recorded them."""
    rows = []
    for job in reply.jobs:
        per_class = {name: (None if value != value else value) for name, value in zip(reply.classes, job.per_class)}
        rows.append({"job": job.job_id, "name": job.name, "framework": job.framework, "model": job.model,
                     "task": reply.task, "state": job.state, "best_epoch": job.best_epoch, "epochs": job.epochs,
                     "primary_metric": reply.primary_metric, "metrics": dict(sorted(job.metrics.items())),
                     "source": job.source, "comparable": reply.comparable, "train_seconds": job.train_seconds,
                     "parameters": job.parameters or None, "images_per_second": job.images_per_second or None,
                     "per_class_key": reply.per_class_key, "per_class": per_class})
    return rows


def show_compare(reply: pb.CompareResponse, out: Output, top: int = 25) -> None:
    """The jobs' table (primary metric first, the best marked), the per-class values with each job's
    difference to the first, and the note on where the numbers come from."""
    primary = reply.primary_metric
    arrow = "↑" if reply.higher_is_better else "↓"
    values = [job.metrics.get(primary) for job in reply.jobs]
    known = [v for v in values if v is not None]
    best = (max if reply.higher_is_better else min)(known) if known else None
    others = sorted({k for job in reply.jobs for k in job.metrics
                     if k.startswith("val/") and k != primary})[:4]
    columns = ([Column("job"), Column("framework", drop=6), Column("model", wrap=True, drop=5),
                Column("best epoch", right=True, drop=4), Column(f"{primary} {arrow}", right=True)]
               + [Column(k, right=True, drop=3) for k in others] + [Column("params", right=True, drop=2),
                                                                     Column("img/s", right=True, drop=2),
                                                                     Column("trained", right=True, drop=2)])
    rows = []
    for job, value in zip(reply.jobs, values):
        shown = "-" if value is None else _number(value) + (" *" if value == best and len(known) > 1 else "")
        rows.append([job.job_id, job.framework, job.model, f"{job.best_epoch or '-'}/{job.epochs}", shown]
                    + [_number(job.metrics[k]) if k in job.metrics else "-" for k in others]
                    + [_millions(job.parameters) if job.parameters else "-",
                       f"{job.images_per_second:.1f}" if job.images_per_second else "-",
                       _minutes(job.train_seconds) if job.train_seconds else "-"])
    out.table(columns, rows, title=f"{reply.task}: {len(reply.jobs)} jobs (* the best {primary})")
    if reply.classes:
        _per_class_deltas(reply, out, top)
    out.line(f"note: {reply.note}")


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f}M" if count >= 100_000 else f"{count:,}"


def _per_class_deltas(reply: pb.CompareResponse, out: Output, top: int) -> None:
    jobs, key = list(reply.jobs), reply.per_class_key
    first = list(jobs[0].per_class)
    order = list(range(len(reply.classes)))

    def spread(i: int) -> float:
        vals = [job.per_class[i] for job in jobs if job.per_class[i] == job.per_class[i]]
        return max(vals) - min(vals) if vals else -1.0

    title = f"{key} per class (Δ: against {jobs[0].job_id})"
    if len(order) > top:
        order = sorted(order, key=spread, reverse=True)[:top]
        title = f"{key} per class, the {top} of {len(reply.classes)} the jobs differ most on (Δ: against {jobs[0].job_id})"
    columns = [Column("class", wrap=True), Column(jobs[0].job_id, right=True)]
    for job in jobs[1:]:
        columns += [Column(job.job_id, right=True), Column("Δ", right=True)]
    rows = []
    for i in order:
        row = [reply.classes[i], "-" if first[i] != first[i] else f"{first[i]:.4f}"]
        for job in jobs[1:]:
            value = job.per_class[i]
            row += ["-" if value != value else f"{value:.4f}",
                    "-" if value != value or first[i] != first[i] else f"{value - first[i]:+.4f}"]
        rows.append(row)
    out.table(columns, rows, title=title)
    if len(reply.classes) > top:
        out.line(f"  {len(reply.classes) - top} more classes: --top N shows more, --json all of them")


def write_compare_plot(reply: pb.CompareResponse, path: str) -> str:
    """The primary metric of each job per epoch and per minute of training, overlaid, as a PNG."""
    from runner import plots

    series = {f"{job.job_id} {job.framework} {job.model}":
              [(c.epoch, c.seconds / 60, c.metrics[reply.primary_metric]) for c in job.curve
               if reply.primary_metric in c.metrics] for job in reply.jobs}
    return str(plots.overlaid(series, reply.primary_metric, path, title=f"{reply.task}: {reply.primary_metric}"))
