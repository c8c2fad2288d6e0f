"""Regenerate or check ``model_names.txt``, the timm model names the host accepts.

The host has no timm, so the names live in a data file generated from the timm env:

    PYTHONPATH=. <timm env>/bin/python -m adapters.timm.model_names          # rewrite
    PYTHONPATH=. <timm env>/bin/python -m adapters.timm.model_names --check  # exit 1 if stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAMES_FILE = Path(__file__).with_name("model_names.txt")


def read_names(path: Path = NAMES_FILE) -> list[str]:
    """The names in the data file (comment lines start with ``#``)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def render(names: list[str], version: str) -> str:
    header = f"# timm=={version}: timm.list_models(); regenerate with python -m adapters.timm.model_names\n"
    return header + "".join(f"{name}\n" for name in sorted(names))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)

    import timm  # child env only

    expected = render(timm.list_models(), timm.__version__)
    if args.check:
        current = NAMES_FILE.read_text(encoding="utf-8") if NAMES_FILE.exists() else ""
        if current != expected:
            have, want = set(read_names()) if current else set(), set(timm.list_models())
            print(
                f"{NAMES_FILE} is stale for timm {timm.__version__}: "
                f"{len(want - have)} missing, {len(have - want)} extra; regenerate it",
                file=sys.stderr,
            )
            return 1
        return 0
    NAMES_FILE.write_text(expected, encoding="utf-8")
    print(f"wrote {len(timm.list_models())} names to {NAMES_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
