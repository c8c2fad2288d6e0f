"""`visionyard datasets check|convert` — local commands over adapters.datasets (no daemon needed)."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

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


def add_parser(sub, common) -> None:
    p = sub.add_parser("datasets", parents=[common], help="check a dataset, or convert it to another format",
                       description="Check a dataset the way a job submit does (all images), or convert it.")
    p.set_defaults(func=cmd_datasets)
    datasets_sub = p.add_subparsers(dest="datasets_command", required=True)
    check = datasets_sub.add_parser("check", help="summary and every problem, with the file to fix")
    check.add_argument("path")
    check.add_argument("--format", required=True, choices=format_names())
    check.add_argument("--task", required=True, choices=TASKS)
    check.add_argument("--json", action="store_true")
    check.add_argument("--sample", action="store_true", help="decode only a sample of images, as a submit does")
    check.add_argument("--strict", action="store_true",
                       help="coordinates must lie on the image (1 px, or 1e-6 normalized) and boxes have an area: "
                            "errors instead of clipping rounding overshoots and dropping zero-area boxes")
    convert = datasets_sub.add_parser("convert", help="write the dataset in another format (never touches the source)")
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


def cmd_datasets(args) -> int:
    console = Console()
    split = SplitOptions(strategy=args.split, val_ratio=args.val_ratio, split_file=args.split_file, seed=args.seed)
    if args.datasets_command == "convert":
        try:
            result = convert_dataset(args.path, args.from_format, args.to_format, args.task, args.output, split=split)
        except DatasetError as exc:
            console.print(f"[red]cannot convert {args.path}:[/]\n{exc}", highlight=False)
            return 1
        console.print(f"wrote {result.format} dataset to [bold]{result.path}[/] ({_counts(result)})", highlight=False)
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False)
        return 0
    dataset, problems = inspect_dataset(args.path, args.format, args.task, split=split,
                                        decode="sample" if args.sample else "all", strict=args.strict)
    summary = summarize(dataset, problems)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        render(summary, console)
    return 0 if summary["ok"] else 1


def render(summary: dict, console: Console) -> None:
    if "format" in summary:
        images = summary["images"]
        val = "on disk" if summary["val_source"] == "disk" else f"made by the {summary['val_source']} split"
        console.print(f"[bold]{summary['root']}[/] — {summary['format']} for {summary['task']}: "
                      f"{images['train']} train / {images['val']} val images (val {val})", highlight=False,
                      soft_wrap=True)
        if summary["classes"]:
            table = Table("id", "class", f"train {summary['counted']}", f"val {summary['counted']}")
            for c in summary["classes"]:
                table.add_row(str(c["id"]), c["name"], str(c["train"]), str(c["val"]))
            console.print(table)
        details = [f"{n} {k.replace('_', ' ')}" for k, n in summary["annotations"].items()]
        if details:
            console.print("annotations: " + ", ".join(details), highlight=False)
        sizes = summary["image_sizes"]
        if sizes:
            console.print(f"image sizes: {sizes['distinct']} distinct, min {_wh(sizes['min'])}, median "
                          f"{_wh(sizes['median'])}, max {_wh(sizes['max'])}", highlight=False)
        for key in ("kpt_shape", "scale", "text"):
            if key in summary:
                console.print(f"{key}: {summary[key]}", highlight=False)
    for severity, colour in (("errors", "red"), ("warnings", "yellow")):
        for p in summary[severity]:
            where = f"{p['file']}:{p['where']}" if p["where"] else p["file"]
            console.print(f"[{colour}]{severity[:-1]}:[/] {where}: {p['message']}", highlight=False, soft_wrap=True)
        if summary[f"more_{severity}"]:
            console.print(f"[{colour}]... and {summary[f'more_{severity}']} more {severity} of the same kinds[/]")
    verdict = "[green]ok[/]" if summary["ok"] else f"[red]{len(summary['errors']) + summary['more_errors']} error(s)[/]"
    console.print(f"{verdict}, {len(summary['warnings']) + summary['more_warnings']} warning(s)")


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
