"""Store records and catalog data as protobuf messages: converted once, at the edge."""

from __future__ import annotations

import json

from google.protobuf import struct_pb2

from adapters.catalog import FrameworkCatalog, ModelEntry
from adapters.controls import describe
from protos import visionyard_pb2 as pb
from runner.spec.wire import spec_to_proto
from runner.core.failures import cause_to_proto
from runner.core.store import JobRecord


def job_to_proto(record: JobRecord) -> pb.Job:
    job = pb.Job(
        id=record.id, name=record.name, state=record.state.to_proto(), spec=spec_to_proto(record.spec),
        created_at=record.created_at, started_at=record.started_at or 0, finished_at=record.finished_at or 0,
        error=record.error, metrics=record.metrics, epoch=record.epoch, total_epochs=record.total_epochs,
        best_checkpoint=record.best_checkpoint, last_checkpoint=record.last_checkpoint, job_dir=record.job_dir,
        env_name=record.env_name, mlflow_run_id=record.mlflow_run_id, device=record.device,
        placement=record.placement, cause=cause_to_proto(record.cause), warnings=record.warnings,
    )
    if record.exit_code is not None:
        job.exit_code = record.exit_code
    return job


def history_to_proto(points) -> list[pb.EpochMetrics]:
    """``store.metric_points`` (key, step, value, time), ordered by step, as one entry per epoch."""
    epochs: dict[int, pb.EpochMetrics] = {}
    for key, step, value, _ in points:
        epochs.setdefault(step, pb.EpochMetrics(epoch=step)).metrics[key] = value
    return [epochs[step] for step in sorted(epochs)]


def model_to_proto(framework: str, entry: ModelEntry) -> pb.ModelInfo:
    return pb.ModelInfo(
        framework=framework, name=entry.name, display_name=entry.display_name, tasks=list(entry.tasks),
        params_millions=entry.params_millions, input_size=entry.input_size,
        recommended_batch_size=entry.recommended_batch_size,
        recommended_learning_rate=entry.recommended_learning_rate, tags=list(entry.tags),
    )


def schema_to_proto(catalog: FrameworkCatalog) -> pb.ConfigSchema:
    schema = pb.ConfigSchema(framework=catalog.name, tasks=list(catalog.tasks),
                             dataset_formats=list(catalog.dataset_formats))
    for f in catalog.fields:
        field = schema.fields.add(path=f.path, type=f.type, default_json=json.dumps(f.default),
                                  description=f.description, choices=[str(c) for c in f.choices])
        if f.minimum is not None:
            field.minimum = f.minimum
        if f.maximum is not None:
            field.maximum = f.maximum
        field.replaced_by = f.replaced_by
    for control in describe(catalog.controls):
        schema.controls.add(**control)
    for preset in catalog.presets:
        values = struct_pb2.Struct()
        values.update(preset.values)
        schema.presets.add(name=preset.name, description=preset.description, values=values)
    return schema


def env_to_proto(record) -> pb.EnvInfo:
    """An envs.manager.EnvRecord on the wire."""
    return pb.EnvInfo(name=record.name, spec_name=record.spec_name, key=record.key, path=str(record.path),
                      size_bytes=record.size_bytes, created_at=record.created_at,
                      last_used_at=record.last_used_at, requirements=list(record.requirements))
