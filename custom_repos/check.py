"""`visionyard repos check`: a repo spec tried end to end, without training and without a daemon.

    report = check_repo(Path("myrepo.yaml"), home=home, job_path=..., log_path=..., validate_job=...)
    report["ok"]                  # False when any step failed
    report["steps"]               # spec, checkout, env, job, launch, log: each ok / failed / skipped
    report["problems"]            # every problem, each naming its file and field

Each step is what a job does, run for real where it can be: the spec is loaded as ``repos add``
loads it; the repo is checked out at its pinned commit as a job's preparation does (into the
home's repo cache when the home exists, so a later job reuses the checkout; else a temporary one);
the env is resolved by ``uv pip install --dry-run`` into an empty venv with the files the env
manager installs (nothing built: ``custom_repos/check_env.py``); the job (``--job``, or one made from the spec's defaults with a
generated placeholder dataset) is translated by ``prepare_launch`` into a temporary job dir, whose
command and written files are shown; and the spec's parser reads a sample log
(``custom_repos/check_log.py``). A step that cannot run because an earlier one failed is skipped.

It runs client-side: a repo is checked before it is added, from local files, so no daemon (which
knows only added specs) is needed, and the daemon's state is never touched.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.devices import ASSIGNED_DEVICE_RE
from custom_repos.check_env import check_env
from custom_repos.check_log import check_log
from custom_repos.datasets import FORMAT_TASKS, accepted_formats
from custom_repos.git import RepoCache, RepoError
from custom_repos.spec import RepoSpec, RepoSpecError, load_repo_spec, load_yaml
from custom_repos.translate import WORK_TREE, prepare_launch, resolve_job

#: A written file's content is shown up to this many bytes.
SHOW_BYTES = 64 * 1024
#: How the temporary job dir and a generated dataset appear in what is shown.
JOB_DIR, DATASET = "<job_dir>", "<dataset>"

#: ``validate_job(raw job dict, spec) -> the job dict a launch gets``; raises an error with ``.problems``
#: ([(field, message)]). The CLI passes the daemon's own submit check; the default is the repo's part of it.
JobValidator = Callable[[dict[str, Any], RepoSpec], dict[str, Any]]


def check_repo(spec_path: Path, *, home: Path, job_path: Path | None = None, log_path: Path | None = None,
               device: str | None = None, validate_job: JobValidator | None = None) -> dict[str, Any]:
    """The report of every step (see the module's docstring); never raises for a problem it can name.

    ``device`` is what the launch renders (``cpu``, ``cuda:0``); default: the job's ``training.device``
    when it names one, else ``cpu``.
    """
    report = _Report(Path(spec_path))
    source = str(spec_path)
    with tempfile.TemporaryDirectory(prefix="visionyard-check-") as scratch:
        scratch_dir = Path(scratch)
        spec = report.run("spec", lambda step: _spec_step(step, Path(spec_path)))
        if spec is not None:
            checkout = report.run("checkout", lambda step: _checkout_step(step, source, spec, home, scratch_dir))
            if checkout is not None:
                report.run("env", lambda step: check_env(step, source, spec, checkout, home, scratch_dir))
            else:
                report.skip("env", "needs the checkout")
            job = report.run("job", lambda step: _job_step(step, source, spec, job_path, scratch_dir,
                                                           validate_job or _repo_part_of_submit))
            if checkout is not None and job is not None:
                python = report.step("env").get("python") or \
                    str(Path(home) / "envs" / f"repo-{spec.name}-KEY" / "bin" / "python")
                report.run("launch", lambda step: _launch_step(
                    step, source, spec, job, checkout, Path(python), device or _job_device(job), scratch_dir))
            else:
                report.skip("launch", "needs the checkout and a valid job")
        else:
            for name in ("checkout", "env", "job", "launch"):
                report.skip(name, "needs a valid spec")
        if log_path is not None:
            parser = spec.parser if spec is not None else _parser_of_broken_spec(Path(spec_path), report)
            if parser is None:
                report.skip("log", "needs a valid parser: field")
            else:
                from_files = {m.name: f.path for f in getattr(spec, "metric_files", ()) for m in f.metrics.values()}
                report.run("log", lambda step: check_log(step, parser, Path(log_path), from_files))
    return report.done()


# ------------------------------------------------------------------ the steps


class Step(dict):
    """One step's record: ``status`` (ok, failed, skipped), ``summary``, ``seconds``, its details, ``problems``."""

    def __init__(self, name: str):
        super().__init__(name=name, status="ok", summary="", seconds=0.0, problems=[])

    def problem(self, file: str, field: str, message: str, severity: str = "error") -> None:
        """A problem in ``file`` (the spec, the job spec, the sample log) at ``field`` (a field path, or "")."""
        self["problems"].append({"file": file, "field": field, "message": message, "severity": severity})
        if severity == "error":
            self["status"] = "failed"


class _Report:
    def __init__(self, spec_path: Path):
        self.spec_path = spec_path
        self.steps: list[Step] = []

    def run(self, name: str, body: Callable[[Step], Any]) -> Any:
        """``body(step)``'s result, or None when the step failed."""
        step = Step(name)
        self.steps.append(step)
        started = time.monotonic()
        try:
            result = body(step)
        except Exception as exc:  # noqa: BLE001 (a step's own bug or an error it does not name: shown, not a traceback)
            step.problem(str(self.spec_path), "", f"{name}: unexpected error: {exc!r}")
            result = None
        finally:
            step["seconds"] = round(time.monotonic() - started, 3)
        if step["status"] == "failed" and not step["summary"]:
            errors = sum(1 for p in step["problems"] if p["severity"] == "error")
            step["summary"] = f"{errors} problem(s)"
        return None if step["status"] == "failed" else result

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s["name"] == name)

    def skip(self, name: str, why: str) -> None:
        step = Step(name)
        step.update(status="skipped", summary=why)
        self.steps.append(step)

    def done(self) -> dict[str, Any]:
        problems = [{"step": s["name"], **p} for s in self.steps for p in s["problems"]]
        return {"spec": str(self.spec_path), "ok": all(s["status"] != "failed" for s in self.steps),
                "steps": list(self.steps), "problems": problems}


def _spec_step(step: Step, path: Path) -> RepoSpec | None:
    try:
        spec = load_repo_spec(path)
    except RepoSpecError as exc:
        for where, message in exc.problems:
            step.problem(exc.source, where, message)
        step["summary"] = f"{len(exc.problems)} problem(s)"
        return None
    parser = spec.parser if isinstance(spec.parser, str) else (
        spec.parser.get("builtin") or f"{len(spec.parser.get('patterns') or [])} regex pattern(s)")
    step.update(summary=f"{spec.name}: {spec.url} @ {spec.commit}", repo=spec.name, url=spec.url,
                commit=spec.commit, tasks=list(spec.tasks), models=list(spec.models),
                dataset_format=spec.dataset_format, parser=parser)
    return spec


def _checkout_step(step: Step, source: str, spec: RepoSpec, home: Path, scratch: Path) -> Path | None:
    cached = Path(home).is_dir()
    cache = RepoCache(Path(home) / "repos" if cached else scratch / "repos")
    try:
        checkout = cache.checkout(spec)
    except RepoError as exc:
        text = str(exc)
        field = "exclude" if "is incomplete" in text else "commit" if text.startswith(("Commit", "Checkout")) else "url"
        step.problem(source, field, text)
        step["summary"] = f"cannot get {spec.url} @ {spec.commit}"
        return None
    files = sum(len(names) for _, _, names in os.walk(checkout))
    step.update(summary=f"{spec.commit[:12]}: {files} files in {checkout}" + ("" if cached else " (temporary)"),
                path=str(checkout), files=files, temporary=not cached)
    return checkout


def _job_step(step: Step, spec_source: str, spec: RepoSpec, job_path: Path | None, scratch: Path,
              validate: JobValidator) -> dict[str, Any] | None:
    if job_path is None:
        source = "default job"
        raw = _default_job(step, spec_source, spec, scratch)
        if raw is None:
            return None
    else:
        source = str(job_path)
        try:
            data = load_yaml(Path(job_path).read_text(encoding="utf-8"), source)
        except OSError as exc:
            step.problem(source, "", f"cannot read the job spec: {exc.strerror or exc}")
            return None
        except RepoSpecError as exc:
            for where, message in exc.problems:
                step.problem(source, where, message)
            return None
        if not isinstance(data, dict):
            step.problem(source, "", "must hold a mapping (framework:, task:, model:, dataset: ...)")
            return None
        raw = _relative_to(data, Path(job_path).absolute().parent)
        raw.setdefault("framework", "custom")
        raw.setdefault("repo", spec.name)
        if raw["framework"] != "custom" or raw["repo"] != spec.name:
            step.problem(source, "repo", f"names framework '{raw['framework']}', repo '{raw['repo']}'; this "
                                         f"check is of repo '{spec.name}' (framework: custom)")
            return None
    try:
        job = validate(raw, spec)
    except ValueError as exc:
        for where, message in getattr(exc, "problems", None) or [("", str(exc))]:
            step.problem(source, where, message)
        return None
    resolved = resolve_job(spec, job)
    classes = resolved.get("class_names", [])
    step.update(source=source, task=job["task"], model=job["model"], dataset=_shown(job["dataset"]["path"], scratch),
                epochs=resolved["training"]["epochs"], batch_size=resolved["training"]["batch_size"],
                image_size=resolved["image_size"], classes=classes,
                summary=f"{source}: task {job['task']}, model {job['model']}, {len(classes)} classes")
    if job_path is None:
        step["summary"] += (f" (the spec's first task and {'model' if spec.models else 'a placeholder model'}, "
                            f"training defaults, a generated {job['dataset']['format']} dataset: "
                            "give --job for yours)")
    return job


def _launch_step(step: Step, source: str, spec: RepoSpec, job: dict[str, Any], checkout: Path, python: Path,
                 device: str, scratch: Path) -> None:
    job_dir = scratch / "job"
    try:
        launch = prepare_launch(spec, job, job_dir, checkout, python, device)
    except (OSError, ValueError) as exc:
        step.problem(source, "command", f"the job's launch failed: {exc}")
        return
    def shown(text: Any) -> str:
        return _shown(str(text), scratch)

    step.update(argv=[shown(a) for a in launch.argv], cwd=shown(launch.cwd),
                env={k: shown(v) for k, v in launch.env.items()}, pythonpath=[shown(p) for p in launch.pythonpath],
                unset_env=list(launch.unset_env), device=device, files=_written_files(job_dir, checkout, scratch),
                notes=list(launch.notes))
    step["summary"] = f"{len(step['files'])} file(s) written into the job dir; device {device}"


# ------------------------------------------------------------------ pieces


def _default_job(step: Step, source: str, spec: RepoSpec, scratch: Path) -> dict[str, Any] | None:
    """A job from the spec's defaults: its first task and model, and a generated placeholder dataset."""
    fmt = spec.dataset_format if spec.dataset_format in ("yolo", "imagefolder") else next(
        (f for f in ("yolo", "imagefolder") if f in accepted_formats(spec.dataset_format)
         and FORMAT_TASKS.get(f) == FORMAT_TASKS.get(spec.dataset_format)), None)
    if fmt is None:
        step.problem(source, "dataset_format", f"no placeholder dataset can be made for format "
                                               f"'{spec.dataset_format}': give a job spec with your dataset (--job)")
        return None
    classes = max(2, spec.min_classes or 0)
    _placeholder_dataset(scratch / "dataset", fmt, classes)
    return {"framework": "custom", "repo": spec.name, "task": spec.tasks[0],
            "model": spec.models[0] if spec.models else "MODEL",
            "dataset": {"path": str(scratch / "dataset"), "format": fmt}}


def _placeholder_dataset(root: Path, fmt: str, classes: int) -> None:
    """A tiny dataset in ``fmt`` (2 train and 1 val image per class), so the launch runs for real."""
    from PIL import Image

    for c in range(classes):
        for split, count in (("train", 2), ("val", 1)):
            for i in range(count):
                image = Image.new("RGB", (32, 32), ((60 * c) % 256, 40 * i, 120))
                if fmt == "yolo":
                    (root / "images" / split).mkdir(parents=True, exist_ok=True)
                    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
                    image.save(root / "images" / split / f"{c}_{i}.png")
                    (root / "labels" / split / f"{c}_{i}.txt").write_text(f"{c} 0.5 0.5 0.5 0.5\n")
                else:
                    (root / split / f"class{c}").mkdir(parents=True, exist_ok=True)
                    image.save(root / split / f"class{c}" / f"{i}.png")
    if fmt == "yolo":
        (root / "classes.txt").write_text("".join(f"class{c}\n" for c in range(classes)))


def _repo_part_of_submit(raw: dict[str, Any], spec: RepoSpec) -> dict[str, Any]:
    resolve_job(spec, raw)  # RepoJobError (.problems) when the repo cannot run it
    return raw


def _relative_to(job: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Relative paths of a job file are relative to its folder, as `visionyard submit` reads them."""
    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and not value.startswith("~") and not Path(value).is_absolute():
            return str(folder / value)
        return value

    job = dict(job)
    if isinstance(job.get("dataset"), dict):
        job["dataset"] = {**job["dataset"], "path": fix(job["dataset"].get("path"))}
    for key in ("weights", "resume"):
        if key in job:
            job[key] = fix(job[key])
    return job


def _written_files(job_dir: Path, checkout: Path, scratch: Path) -> list[dict[str, Any]]:
    """Every file the launch wrote into the job dir (the staged dataset as one entry; in the working tree,
    only files the checkout lacks), with its content when it is short text."""
    files: list[dict[str, Any]] = []
    data = job_dir / "data"
    for path in sorted(p for p in job_dir.rglob("*") if not p.is_dir()):
        relative = path.relative_to(job_dir)
        if relative.parts[0] == WORK_TREE and (checkout / Path(*relative.parts[1:])).exists():
            continue
        if relative.parts[0] == "data" and data.is_dir():
            continue
        entry: dict[str, Any] = {"path": str(relative), "bytes": path.stat().st_size}
        try:
            raw = path.read_bytes()
            entry["content"] = _shown(raw[:SHOW_BYTES].decode("utf-8"), scratch) if b"\0" not in raw[:SHOW_BYTES] \
                else None
            entry["truncated"] = len(raw) > SHOW_BYTES
        except (OSError, UnicodeDecodeError):
            entry["content"] = None
        files.append(entry)
    if data.is_dir():
        count = sum(1 for p in data.rglob("*") if not p.is_dir())
        files.append({"path": "data/", "bytes": None, "content": None, "truncated": False,
                      "note": f"the dataset as the repo reads it: {count} file(s) and link(s)"})
    return files


def _parser_of_broken_spec(path: Path, report: _Report) -> Any:
    """A broken spec's ``parser:`` when that field itself is fine: the log can still be checked."""
    spec_step = report.step("spec")
    if any(p["field"].startswith("parser") for p in spec_step["problems"]):
        return None
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except (OSError, RepoSpecError):
        return None
    return data.get("parser") if isinstance(data, dict) else None


def _shown(text: str, scratch: Path) -> str:
    """``text`` with the temporary job dir and the placeholder dataset named as such."""
    return text.replace(str(scratch / "job"), JOB_DIR).replace(str(scratch / "dataset"), DATASET)


def _job_device(job: dict[str, Any]) -> str:
    device = str((job.get("training") or {}).get("device") or "")
    return device if ASSIGNED_DEVICE_RE.match(device) else "cpu"
