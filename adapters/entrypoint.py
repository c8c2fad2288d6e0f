"""The child process the daemon starts: ``python -m adapters.entrypoint --spec job.json``.

Training: load the job, pick the adapter named by the framework's catalog, ``fit()`` (which
reports every epoch and the result), flush the reporter, exit 0. Any exception: traceback on
stderr, an ``ErrorReport``, flush, exit 1.

Predict: ``--predict IMAGE --checkpoint PATH [--top-k K]`` prints one JSON line
``{"predictions": [{"label", "score", "index"}, ...]}`` as the last line of stdout, exit 0;
on failure the message goes to stderr, exit 1. No reporter is used.

Reporter address, job id and token come from the environment (see ``adapters.reporter``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
import traceback

from adapters.catalog import resolve_advanced
from adapters.frameworks import get_catalog
from adapters.job import Job
from adapters.reporter import Reporter

log = logging.getLogger("visionyard.entrypoint")

CLOSE_TIMEOUT = 10.0  # seconds to flush reports before exiting


def load_adapter_class(ref: str) -> type:
    """Import ``"package.module:ClassName"``."""
    module_name, _, class_name = ref.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_adapter(job: Job, reporter: Reporter):
    catalog = get_catalog(job.spec.framework)
    if job.spec.task not in catalog.tasks:
        raise ValueError(
            f"{catalog.name} does not do task '{job.spec.task}'. Valid: {', '.join(catalog.tasks)}"
        )
    # Fill and normalise `advanced` once more, so a hand-written job.json gets the same defaults.
    job = job.with_advanced(resolve_advanced(catalog, job.spec.advanced))
    return load_adapter_class(catalog.adapter)(job, reporter)


def train(spec_path: str) -> int:
    reporter = Reporter.from_env()
    try:
        adapter = build_adapter(Job.from_file(spec_path), reporter)
        adapter.fit()
        code = 0
    except Exception as exc:
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        reporter.error(type(exc).__name__, str(exc) or type(exc).__name__, tb)
        code = 1
    reporter.close(CLOSE_TIMEOUT)
    return code


def predict(spec_path: str, image: str, checkpoint: str, top_k: int) -> int:
    try:
        adapter = build_adapter(Job.from_file(spec_path), Reporter(None))
        adapter.load_checkpoint(checkpoint)
        predictions = adapter.predict(image, top_k)
    except Exception as exc:
        log.debug("predict failed", exc_info=True)
        print(f"predict failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    print(json.dumps({"predictions": predictions}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m adapters.entrypoint", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--spec", required=True, help="job.json written by the daemon")
    parser.add_argument("--predict", metavar="IMAGE", help="predict one image instead of training")
    parser.add_argument("--checkpoint", help="checkpoint to predict with (with --predict)")
    parser.add_argument("--top-k", type=int, default=5, help="number of predictions (with --predict)")
    args = parser.parse_args(argv)

    # Cancel is SIGTERM to the process group: die at once (the reporter thread is a daemon
    # thread), even if whoever started us ignored the signal.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.predict:
        if not args.checkpoint:
            parser.error("--predict needs --checkpoint")
        return predict(args.spec, args.predict, args.checkpoint, max(1, args.top_k))
    return train(args.spec)


if __name__ == "__main__":
    sys.exit(main())
