"""`visionyard datasets check|convert` — local commands over adapters.datasets (no daemon needed)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from adapters.datasets import (
    STRATEGIES,
    TASKS,
    DatasetError,
    SplitOptions,
    convert_dataset,
    format_names,
    inspect_dataset,
)
from adapters.datasets.summary import summarize
from runner.cli.output import Column, Output


def add_parser(sub, common, as_json) -> None:
    p = sub.add_parser("datasets", parents=[common], help="check a dataset, or convert it to another format",
                       description="Check a dataset the way a job submit does (all images), or convert it.")
    p.set_defaults(func=cmd_datasets)
    datasets_sub = p.add_subparsers(dest="datasets_command", required=True)
    check = datasets_sub.add_parser("check", parents=[as_json], help="summary and every problem, with the file to fix")
    check.add_argument("path")
    check.add_argument("--format", required=True, choices=format_names())
    check.add_argument("--task", required=True, choices=TASKS)
    check.add_argument("--sample", action="store_true", help="decode only a sample of images, as a submit does")
    check.add_argument("--strict", action="store_true",
                       help="coordinates must lie on the image (1 px, or 1e-6 normalized) and boxes have an area: "
                            "errors instead of clipping rounding overshoots and dropping zero-area boxes")
    convert = datasets_sub.add_parser("convert", parents=[as_json],
                                      help="write the dataset in another format (never touches the source)")
    convert.add_argument("path")
    convert.add_argument("--from", dest="from_format", required=True, choices=format_names())
    convert.add_argument("--to", dest="to_format", required=True, choices=format_names())
    convert.add_argument("--task", required=True, choices=TASKS)
    convert.add_argument("-o", "--output", required=True, help="a new (or empty) folder")
    for q in (check, convert):
        q.add_argument("--split", choices=STRATEGIES, help="how val is made when the dataset has none on disk")
        q.add_argument("--val-ratio", type=_ratio, default=0.2)
        q.add_argument("--split-file", help="with --split file: train images, one per line")
        q.add_argument("--seed", type=int, default=0)


def cmd_datasets(args, out: Output) -> int:
    split = SplitOptions(strategy=args.split, val_ratio=args.val_ratio, split_file=args.split_file, seed=args.seed)
    if args.datasets_command == "convert":
        try:
            result = convert_dataset(args.path, args.from_format, args.to_format, args.task, args.output, split=split)
        except DatasetError as exc:
            out.error(f"cannot convert {args.path}:\n{exc}")
            return 1
        if args.json:
            print(json.dumps(asdict(result), indent=2, ensure_ascii=False))
            return 0
        out.line(f"wrote {result.format} dataset to {result.path} ({_counts(result)})")
        for warning in result.warnings:
            out.line(f"warning: {warning}", style="yellow")
        return 0
    dataset, problems = inspect_dataset(args.path, args.format, args.task, split=split,
                                        decode="sample" if args.sample else "all", strict=args.strict)
    summary = summarize(dataset, problems)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        render(summary, out)
    return 0 if summary["ok"] else 1


def render(summary: dict, out: Output) -> None:
    if "format" in summary:
        images = summary["images"]
        val = "on disk" if summary["val_source"] == "disk" else f"made by the {summary['val_source']} split"
        out.line(f"{summary['root']} — {summary['format']} for {summary['task']}: "
                 f"{images['train']} train / {images['val']} val images (val {val})")
        if summary["classes"]:
            columns = (Column("id", right=True), Column("class"), Column(f"train {summary['counted']}", right=True),
                       Column(f"val {summary['counted']}", right=True))
            out.table(columns, [[str(c["id"]), c["name"], str(c["train"]), str(c["val"])] for c in summary["classes"]])
        details = [f"{n} {k.replace('_', ' ')}" for k, n in summary["annotations"].items()]
        if details:
            out.line("annotations: " + ", ".join(details))
        sizes = summary["image_sizes"]
        if sizes:
            out.line(f"image sizes: {sizes['distinct']} distinct, min {_wh(sizes['min'])}, median "
                     f"{_wh(sizes['median'])}, max {_wh(sizes['max'])}")
        for key in ("kpt_shape", "scale", "text"):
            if key in summary:
                out.line(f"{key}: {summary[key]}")
    for severity, colour in (("errors", "red"), ("warnings", "yellow")):
        for p in summary[severity]:
            where = f"{p['file']}:{p['where']}" if p["where"] else p["file"]
            out.line(f"{severity[:-1]}: {where}: {p['message']}", style=colour)
        if summary[f"more_{severity}"]:
            out.line(f"... and {summary[f'more_{severity}']} more {severity} of the same kinds", style=colour)
    errors = len(summary["errors"]) + summary["more_errors"]
    verdict = "ok" if summary["ok"] else f"{errors} error(s)"
    out.line(f"{verdict}, {len(summary['warnings']) + summary['more_warnings']} warning(s)",
             style="green" if summary["ok"] else "red")


def _wh(size) -> str:
    return f"{size[0]}x{size[1]}"


def _counts(result) -> str:
    return ", ".join(f"{split}: {n} images" for split, n in result.images.items())


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value
