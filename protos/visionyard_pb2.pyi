from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    QUEUED: _ClassVar[JobState]
    PREPARING: _ClassVar[JobState]
    RUNNING: _ClassVar[JobState]
    SUCCEEDED: _ClassVar[JobState]
    FAILED: _ClassVar[JobState]
    CANCELLED: _ClassVar[JobState]

class FailureCause(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAUSE_UNSPECIFIED: _ClassVar[FailureCause]
    CAUSE_DATASET: _ClassVar[FailureCause]
    CAUSE_ENV_BUILD: _ClassVar[FailureCause]
    CAUSE_REPO: _ClassVar[FailureCause]
    CAUSE_OUT_OF_MEMORY: _ClassVar[FailureCause]
    CAUSE_DISK_FULL: _ClassVar[FailureCause]
    CAUSE_DIVERGED: _ClassVar[FailureCause]
    CAUSE_TRAINING: _ClassVar[FailureCause]
    CAUSE_KILLED: _ClassVar[FailureCause]
    CAUSE_LOST: _ClassVar[FailureCause]
    CAUSE_CANCELLED: _ClassVar[FailureCause]
    CAUSE_RUNNER: _ClassVar[FailureCause]
    CAUSE_DEVICE: _ClassVar[FailureCause]
    CAUSE_PRUNED: _ClassVar[FailureCause]
JOB_STATE_UNSPECIFIED: JobState
QUEUED: JobState
PREPARING: JobState
RUNNING: JobState
SUCCEEDED: JobState
FAILED: JobState
CANCELLED: JobState
CAUSE_UNSPECIFIED: FailureCause
CAUSE_DATASET: FailureCause
CAUSE_ENV_BUILD: FailureCause
CAUSE_REPO: FailureCause
CAUSE_OUT_OF_MEMORY: FailureCause
CAUSE_DISK_FULL: FailureCause
CAUSE_DIVERGED: FailureCause
CAUSE_TRAINING: FailureCause
CAUSE_KILLED: FailureCause
CAUSE_LOST: FailureCause
CAUSE_CANCELLED: FailureCause
CAUSE_RUNNER: FailureCause
CAUSE_DEVICE: FailureCause
CAUSE_PRUNED: FailureCause

class DatasetSpec(_message.Message):
    __slots__ = ("path", "format", "split", "val_ratio", "split_file")
    PATH_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    VAL_RATIO_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FILE_FIELD_NUMBER: _ClassVar[int]
    path: str
    format: str
    split: str
    val_ratio: float
    split_file: str
    def __init__(self, path: _Optional[str] = ..., format: _Optional[str] = ..., split: _Optional[str] = ..., val_ratio: _Optional[float] = ..., split_file: _Optional[str] = ...) -> None: ...

class TrainingSpec(_message.Message):
    __slots__ = ("epochs", "batch_size", "learning_rate", "device", "num_workers", "seed", "image_size", "mixed_precision", "gradient_accumulation", "gradient_clip", "early_stopping", "warmup_epochs", "ema")
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MIXED_PRECISION_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_ACCUMULATION_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_CLIP_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_FIELD_NUMBER: _ClassVar[int]
    WARMUP_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    EMA_FIELD_NUMBER: _ClassVar[int]
    epochs: int
    batch_size: int
    learning_rate: float
    device: str
    num_workers: int
    seed: int
    image_size: int
    mixed_precision: str
    gradient_accumulation: int
    gradient_clip: float
    early_stopping: EarlyStopping
    warmup_epochs: float
    ema: bool
    def __init__(self, epochs: _Optional[int] = ..., batch_size: _Optional[int] = ..., learning_rate: _Optional[float] = ..., device: _Optional[str] = ..., num_workers: _Optional[int] = ..., seed: _Optional[int] = ..., image_size: _Optional[int] = ..., mixed_precision: _Optional[str] = ..., gradient_accumulation: _Optional[int] = ..., gradient_clip: _Optional[float] = ..., early_stopping: _Optional[_Union[EarlyStopping, _Mapping]] = ..., warmup_epochs: _Optional[float] = ..., ema: _Optional[bool] = ...) -> None: ...

class EarlyStopping(_message.Message):
    __slots__ = ("patience", "min_delta")
    PATIENCE_FIELD_NUMBER: _ClassVar[int]
    MIN_DELTA_FIELD_NUMBER: _ClassVar[int]
    patience: int
    min_delta: float
    def __init__(self, patience: _Optional[int] = ..., min_delta: _Optional[float] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("name", "framework", "task", "model", "pretrained", "image_size", "num_classes", "dataset", "training", "advanced", "preset", "weights", "resume", "repo")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRETRAINED_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TRAINING_FIELD_NUMBER: _ClassVar[int]
    ADVANCED_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    REPO_FIELD_NUMBER: _ClassVar[int]
    name: str
    framework: str
    task: str
    model: str
    pretrained: bool
    image_size: int
    num_classes: int
    dataset: DatasetSpec
    training: TrainingSpec
    advanced: _struct_pb2.Struct
    preset: str
    weights: str
    resume: str
    repo: str
    def __init__(self, name: _Optional[str] = ..., framework: _Optional[str] = ..., task: _Optional[str] = ..., model: _Optional[str] = ..., pretrained: _Optional[bool] = ..., image_size: _Optional[int] = ..., num_classes: _Optional[int] = ..., dataset: _Optional[_Union[DatasetSpec, _Mapping]] = ..., training: _Optional[_Union[TrainingSpec, _Mapping]] = ..., advanced: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., preset: _Optional[str] = ..., weights: _Optional[str] = ..., resume: _Optional[str] = ..., repo: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "name", "state", "spec", "created_at", "started_at", "finished_at", "exit_code", "error", "metrics", "epoch", "total_epochs", "best_checkpoint", "last_checkpoint", "job_dir", "env_name", "mlflow_run_id", "device", "placement", "cause", "warnings", "history")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    TOTAL_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BEST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    JOB_DIR_FIELD_NUMBER: _ClassVar[int]
    ENV_NAME_FIELD_NUMBER: _ClassVar[int]
    MLFLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    state: JobState
    spec: JobSpec
    created_at: float
    started_at: float
    finished_at: float
    exit_code: int
    error: str
    metrics: _containers.ScalarMap[str, float]
    epoch: int
    total_epochs: int
    best_checkpoint: str
    last_checkpoint: str
    job_dir: str
    env_name: str
    mlflow_run_id: str
    device: str
    placement: str
    cause: FailureCause
    warnings: _containers.RepeatedScalarFieldContainer[str]
    history: _containers.RepeatedCompositeFieldContainer[EpochMetrics]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., exit_code: _Optional[int] = ..., error: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., epoch: _Optional[int] = ..., total_epochs: _Optional[int] = ..., best_checkpoint: _Optional[str] = ..., last_checkpoint: _Optional[str] = ..., job_dir: _Optional[str] = ..., env_name: _Optional[str] = ..., mlflow_run_id: _Optional[str] = ..., device: _Optional[str] = ..., placement: _Optional[str] = ..., cause: _Optional[_Union[FailureCause, str]] = ..., warnings: _Optional[_Iterable[str]] = ..., history: _Optional[_Iterable[_Union[EpochMetrics, _Mapping]]] = ...) -> None: ...

class EpochMetrics(_message.Message):
    __slots__ = ("epoch", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, epoch: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class StatusChange(_message.Message):
    __slots__ = ("state", "message")
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    message: str
    def __init__(self, state: _Optional[_Union[JobState, str]] = ..., message: _Optional[str] = ...) -> None: ...

class MetricsEvent(_message.Message):
    __slots__ = ("step", "values")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    step: int
    values: _containers.ScalarMap[str, float]
    def __init__(self, step: _Optional[int] = ..., values: _Optional[_Mapping[str, float]] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class CheckpointEvent(_message.Message):
    __slots__ = ("path", "kind", "epoch")
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    path: str
    kind: str
    epoch: int
    def __init__(self, path: _Optional[str] = ..., kind: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class ProgressEvent(_message.Message):
    __slots__ = ("epoch", "total_epochs", "step", "total_steps")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    TOTAL_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    total_epochs: int
    step: int
    total_steps: int
    def __init__(self, epoch: _Optional[int] = ..., total_epochs: _Optional[int] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "seq", "time", "status", "metrics", "log", "checkpoint", "progress")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    seq: int
    time: float
    status: StatusChange
    metrics: MetricsEvent
    log: LogLine
    checkpoint: CheckpointEvent
    progress: ProgressEvent
    def __init__(self, job_id: _Optional[str] = ..., seq: _Optional[int] = ..., time: _Optional[float] = ..., status: _Optional[_Union[StatusChange, _Mapping]] = ..., metrics: _Optional[_Union[MetricsEvent, _Mapping]] = ..., log: _Optional[_Union[LogLine, _Mapping]] = ..., checkpoint: _Optional[_Union[CheckpointEvent, _Mapping]] = ..., progress: _Optional[_Union[ProgressEvent, _Mapping]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("framework", "name", "display_name", "tasks", "params_millions", "input_size", "recommended_batch_size", "recommended_learning_rate", "tags")
    FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_MILLIONS_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    framework: str
    name: str
    display_name: str
    tasks: _containers.RepeatedScalarFieldContainer[str]
    params_millions: float
    input_size: int
    recommended_batch_size: int
    recommended_learning_rate: float
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, framework: _Optional[str] = ..., name: _Optional[str] = ..., display_name: _Optional[str] = ..., tasks: _Optional[_Iterable[str]] = ..., params_millions: _Optional[float] = ..., input_size: _Optional[int] = ..., recommended_batch_size: _Optional[int] = ..., recommended_learning_rate: _Optional[float] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class ConfigField(_message.Message):
    __slots__ = ("path", "type", "default_json", "description", "choices", "minimum", "maximum", "replaced_by")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_JSON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    REPLACED_BY_FIELD_NUMBER: _ClassVar[int]
    path: str
    type: str
    default_json: str
    description: str
    choices: _containers.RepeatedScalarFieldContainer[str]
    minimum: float
    maximum: float
    replaced_by: str
    def __init__(self, path: _Optional[str] = ..., type: _Optional[str] = ..., default_json: _Optional[str] = ..., description: _Optional[str] = ..., choices: _Optional[_Iterable[str]] = ..., minimum: _Optional[float] = ..., maximum: _Optional[float] = ..., replaced_by: _Optional[str] = ...) -> None: ...

class TrainingControl(_message.Message):
    __slots__ = ("name", "supported", "how", "default")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_FIELD_NUMBER: _ClassVar[int]
    HOW_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    name: str
    supported: bool
    how: str
    default: str
    def __init__(self, name: _Optional[str] = ..., supported: _Optional[bool] = ..., how: _Optional[str] = ..., default: _Optional[str] = ...) -> None: ...

class Preset(_message.Message):
    __slots__ = ("name", "description", "values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    values: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., values: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class EnvInfo(_message.Message):
    __slots__ = ("name", "spec_name", "key", "path", "size_bytes", "created_at", "last_used_at", "requirements")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    spec_name: str
    key: str
    path: str
    size_bytes: int
    created_at: float
    last_used_at: float
    requirements: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., spec_name: _Optional[str] = ..., key: _Optional[str] = ..., path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., created_at: _Optional[float] = ..., last_used_at: _Optional[float] = ..., requirements: _Optional[_Iterable[str]] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Keypoint(_message.Message):
    __slots__ = ("x", "y", "visibility")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    visibility: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., visibility: _Optional[float] = ...) -> None: ...

class RotatedBox(_message.Message):
    __slots__ = ("cx", "cy", "w", "h", "angle")
    CX_FIELD_NUMBER: _ClassVar[int]
    CY_FIELD_NUMBER: _ClassVar[int]
    W_FIELD_NUMBER: _ClassVar[int]
    H_FIELD_NUMBER: _ClassVar[int]
    ANGLE_FIELD_NUMBER: _ClassVar[int]
    cx: float
    cy: float
    w: float
    h: float
    angle: float
    def __init__(self, cx: _Optional[float] = ..., cy: _Optional[float] = ..., w: _Optional[float] = ..., h: _Optional[float] = ..., angle: _Optional[float] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("label", "score", "index", "box", "polygon", "keypoints", "rotated_box")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    POLYGON_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    ROTATED_BOX_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    index: int
    box: Box
    polygon: _containers.RepeatedCompositeFieldContainer[Point]
    keypoints: _containers.RepeatedCompositeFieldContainer[Keypoint]
    rotated_box: RotatedBox
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ..., index: _Optional[int] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., polygon: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., keypoints: _Optional[_Iterable[_Union[Keypoint, _Mapping]]] = ..., rotated_box: _Optional[_Union[RotatedBox, _Mapping]] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: JobSpec
    def __init__(self, spec: _Optional[_Union[JobSpec, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("states", "limit", "causes")
    STATES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CAUSES_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[JobState]
    limit: int
    causes: _containers.RepeatedScalarFieldContainer[FailureCause]
    def __init__(self, states: _Optional[_Iterable[_Union[JobState, str]]] = ..., limit: _Optional[int] = ..., causes: _Optional[_Iterable[_Union[FailureCause, str]]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "after_seq", "include_logs", "snapshot", "logs_only")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_LOGS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    LOGS_ONLY_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    after_seq: int
    include_logs: bool
    snapshot: bool
    logs_only: bool
    def __init__(self, job_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., include_logs: _Optional[bool] = ..., snapshot: _Optional[bool] = ..., logs_only: _Optional[bool] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("framework", "task", "tag")
    FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    framework: str
    task: str
    tag: str
    def __init__(self, framework: _Optional[str] = ..., task: _Optional[str] = ..., tag: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class GetConfigSchemaRequest(_message.Message):
    __slots__ = ("framework", "task")
    FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    framework: str
    task: str
    def __init__(self, framework: _Optional[str] = ..., task: _Optional[str] = ...) -> None: ...

class ConfigSchema(_message.Message):
    __slots__ = ("framework", "tasks", "fields", "presets", "dataset_formats", "controls")
    FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    PRESETS_FIELD_NUMBER: _ClassVar[int]
    DATASET_FORMATS_FIELD_NUMBER: _ClassVar[int]
    CONTROLS_FIELD_NUMBER: _ClassVar[int]
    framework: str
    tasks: _containers.RepeatedScalarFieldContainer[str]
    fields: _containers.RepeatedCompositeFieldContainer[ConfigField]
    presets: _containers.RepeatedCompositeFieldContainer[Preset]
    dataset_formats: _containers.RepeatedScalarFieldContainer[str]
    controls: _containers.RepeatedCompositeFieldContainer[TrainingControl]
    def __init__(self, framework: _Optional[str] = ..., tasks: _Optional[_Iterable[str]] = ..., fields: _Optional[_Iterable[_Union[ConfigField, _Mapping]]] = ..., presets: _Optional[_Iterable[_Union[Preset, _Mapping]]] = ..., dataset_formats: _Optional[_Iterable[str]] = ..., controls: _Optional[_Iterable[_Union[TrainingControl, _Mapping]]] = ...) -> None: ...

class ListEnvsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListEnvsResponse(_message.Message):
    __slots__ = ("envs",)
    ENVS_FIELD_NUMBER: _ClassVar[int]
    envs: _containers.RepeatedCompositeFieldContainer[EnvInfo]
    def __init__(self, envs: _Optional[_Iterable[_Union[EnvInfo, _Mapping]]] = ...) -> None: ...

class PrepareEnvRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoveEnvRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoveEnvResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, removed: _Optional[_Iterable[str]] = ...) -> None: ...

class CollectGarbageRequest(_message.Message):
    __slots__ = ("dry_run", "env_max_idle_days", "envs_max_gb", "checkout_max_idle_days", "job_dir_max_age_days")
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    ENV_MAX_IDLE_DAYS_FIELD_NUMBER: _ClassVar[int]
    ENVS_MAX_GB_FIELD_NUMBER: _ClassVar[int]
    CHECKOUT_MAX_IDLE_DAYS_FIELD_NUMBER: _ClassVar[int]
    JOB_DIR_MAX_AGE_DAYS_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    env_max_idle_days: float
    envs_max_gb: float
    checkout_max_idle_days: float
    job_dir_max_age_days: float
    def __init__(self, dry_run: _Optional[bool] = ..., env_max_idle_days: _Optional[float] = ..., envs_max_gb: _Optional[float] = ..., checkout_max_idle_days: _Optional[float] = ..., job_dir_max_age_days: _Optional[float] = ...) -> None: ...

class Removal(_message.Message):
    __slots__ = ("kind", "name", "path", "bytes", "reason")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    path: str
    bytes: int
    reason: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., path: _Optional[str] = ..., bytes: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class CollectGarbageResponse(_message.Message):
    __slots__ = ("removed", "freed_bytes", "dry_run")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    FREED_BYTES_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedCompositeFieldContainer[Removal]
    freed_bytes: int
    dry_run: bool
    def __init__(self, removed: _Optional[_Iterable[_Union[Removal, _Mapping]]] = ..., freed_bytes: _Optional[int] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("framework", "model", "task", "weights", "image_size")
    FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    framework: str
    model: str
    task: str
    weights: str
    image_size: int
    def __init__(self, framework: _Optional[str] = ..., model: _Optional[str] = ..., task: _Optional[str] = ..., weights: _Optional[str] = ..., image_size: _Optional[int] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("job_id", "model", "image", "top_k", "checkpoint", "annotate", "runtime", "device", "labels", "question", "boxes")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    ANNOTATE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    model: ModelRef
    image: bytes
    top_k: int
    checkpoint: str
    annotate: bool
    runtime: str
    device: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    question: str
    boxes: _containers.RepeatedCompositeFieldContainer[Box]
    def __init__(self, job_id: _Optional[str] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., image: _Optional[bytes] = ..., top_k: _Optional[int] = ..., checkpoint: _Optional[str] = ..., annotate: _Optional[bool] = ..., runtime: _Optional[str] = ..., device: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., question: _Optional[str] = ..., boxes: _Optional[_Iterable[_Union[Box, _Mapping]]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("predictions", "task", "width", "height", "mask_png", "image_png", "text", "timings_ms", "depth_png")
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MASK_PNG_FIELD_NUMBER: _ClassVar[int]
    IMAGE_PNG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    DEPTH_PNG_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    task: str
    width: int
    height: int
    mask_png: bytes
    image_png: bytes
    text: str
    timings_ms: _containers.ScalarMap[str, float]
    depth_png: bytes
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., task: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., mask_png: _Optional[bytes] = ..., image_png: _Optional[bytes] = ..., text: _Optional[str] = ..., timings_ms: _Optional[_Mapping[str, float]] = ..., depth_png: _Optional[bytes] = ...) -> None: ...

class PredictStreamRequest(_message.Message):
    __slots__ = ("job_id", "model", "top_k", "checkpoint", "annotate", "name", "image", "runtime", "device", "labels", "question", "boxes")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    ANNOTATE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    model: ModelRef
    top_k: int
    checkpoint: str
    annotate: bool
    name: str
    image: bytes
    runtime: str
    device: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    question: str
    boxes: _containers.RepeatedCompositeFieldContainer[Box]
    def __init__(self, job_id: _Optional[str] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., top_k: _Optional[int] = ..., checkpoint: _Optional[str] = ..., annotate: _Optional[bool] = ..., name: _Optional[str] = ..., image: _Optional[bytes] = ..., runtime: _Optional[str] = ..., device: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., question: _Optional[str] = ..., boxes: _Optional[_Iterable[_Union[Box, _Mapping]]] = ...) -> None: ...

class PredictStreamResponse(_message.Message):
    __slots__ = ("index", "name", "result", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    result: PredictResponse
    error: str
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., result: _Optional[_Union[PredictResponse, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("job_id", "checkpoint", "pid", "state", "device", "rss_bytes", "served", "started_at", "idle_seconds", "load_ms", "runtime")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    SERVED_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOAD_MS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    checkpoint: str
    pid: int
    state: str
    device: str
    rss_bytes: int
    served: int
    started_at: float
    idle_seconds: float
    load_ms: float
    runtime: str
    def __init__(self, job_id: _Optional[str] = ..., checkpoint: _Optional[str] = ..., pid: _Optional[int] = ..., state: _Optional[str] = ..., device: _Optional[str] = ..., rss_bytes: _Optional[int] = ..., served: _Optional[int] = ..., started_at: _Optional[float] = ..., idle_seconds: _Optional[float] = ..., load_ms: _Optional[float] = ..., runtime: _Optional[str] = ...) -> None: ...

class ExportRequest(_message.Message):
    __slots__ = ("job_id", "format", "checkpoint", "dynamic", "half", "opset", "images", "count", "device")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_FIELD_NUMBER: _ClassVar[int]
    HALF_FIELD_NUMBER: _ClassVar[int]
    OPSET_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    format: str
    checkpoint: str
    dynamic: bool
    half: bool
    opset: int
    images: _containers.RepeatedScalarFieldContainer[str]
    count: int
    device: str
    def __init__(self, job_id: _Optional[str] = ..., format: _Optional[str] = ..., checkpoint: _Optional[str] = ..., dynamic: _Optional[bool] = ..., half: _Optional[bool] = ..., opset: _Optional[int] = ..., images: _Optional[_Iterable[str]] = ..., count: _Optional[int] = ..., device: _Optional[str] = ...) -> None: ...

class ExportValidation(_message.Message):
    __slots__ = ("images", "max_abs_diff", "tolerance", "worst_output", "agreement_kind", "agreement", "min_agreement", "passed", "pytorch_images_per_s", "onnx_images_per_s")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_ABS_DIFF_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    WORST_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_KIND_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    MIN_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    PYTORCH_IMAGES_PER_S_FIELD_NUMBER: _ClassVar[int]
    ONNX_IMAGES_PER_S_FIELD_NUMBER: _ClassVar[int]
    images: int
    max_abs_diff: float
    tolerance: float
    worst_output: str
    agreement_kind: str
    agreement: float
    min_agreement: float
    passed: bool
    pytorch_images_per_s: float
    onnx_images_per_s: float
    def __init__(self, images: _Optional[int] = ..., max_abs_diff: _Optional[float] = ..., tolerance: _Optional[float] = ..., worst_output: _Optional[str] = ..., agreement_kind: _Optional[str] = ..., agreement: _Optional[float] = ..., min_agreement: _Optional[float] = ..., passed: _Optional[bool] = ..., pytorch_images_per_s: _Optional[float] = ..., onnx_images_per_s: _Optional[float] = ...) -> None: ...

class ExportResponse(_message.Message):
    __slots__ = ("job_id", "format", "path", "size_bytes", "opset", "dynamic", "half", "checkpoint", "exporter", "inputs", "outputs", "validation", "seconds", "report")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    OPSET_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_FIELD_NUMBER: _ClassVar[int]
    HALF_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    format: str
    path: str
    size_bytes: int
    opset: int
    dynamic: bool
    half: bool
    checkpoint: str
    exporter: str
    inputs: _containers.RepeatedScalarFieldContainer[str]
    outputs: _containers.RepeatedScalarFieldContainer[str]
    validation: ExportValidation
    seconds: float
    report: str
    def __init__(self, job_id: _Optional[str] = ..., format: _Optional[str] = ..., path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., opset: _Optional[int] = ..., dynamic: _Optional[bool] = ..., half: _Optional[bool] = ..., checkpoint: _Optional[str] = ..., exporter: _Optional[str] = ..., inputs: _Optional[_Iterable[str]] = ..., outputs: _Optional[_Iterable[str]] = ..., validation: _Optional[_Union[ExportValidation, _Mapping]] = ..., seconds: _Optional[float] = ..., report: _Optional[str] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ...) -> None: ...

class StopWorkersRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class StopWorkersResponse(_message.Message):
    __slots__ = ("stopped",)
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    stopped: int
    def __init__(self, stopped: _Optional[int] = ...) -> None: ...

class ClassResult(_message.Message):
    __slots__ = ("name", "values", "support")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.ScalarMap[str, float]
    support: int
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Mapping[str, float]] = ..., support: _Optional[int] = ...) -> None: ...

class ConfusionMatrix(_message.Message):
    __slots__ = ("labels", "counts")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedScalarFieldContainer[str]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, labels: _Optional[_Iterable[str]] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class ValidationResult(_message.Message):
    __slots__ = ("job_id", "task", "epoch", "step", "source", "evaluator", "classes", "metrics", "per_class", "confusion_matrix", "best", "per_image", "curves", "dataset")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EVALUATOR_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    CONFUSION_MATRIX_FIELD_NUMBER: _ClassVar[int]
    BEST_FIELD_NUMBER: _ClassVar[int]
    PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    CURVES_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    task: str
    epoch: int
    step: int
    source: str
    evaluator: str
    classes: _containers.RepeatedScalarFieldContainer[str]
    metrics: _containers.ScalarMap[str, float]
    per_class: _containers.RepeatedCompositeFieldContainer[ClassResult]
    confusion_matrix: ConfusionMatrix
    best: bool
    per_image: _containers.RepeatedCompositeFieldContainer[ImageResult]
    curves: _containers.RepeatedCompositeFieldContainer[Curve]
    dataset: str
    def __init__(self, job_id: _Optional[str] = ..., task: _Optional[str] = ..., epoch: _Optional[int] = ..., step: _Optional[int] = ..., source: _Optional[str] = ..., evaluator: _Optional[str] = ..., classes: _Optional[_Iterable[str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., per_class: _Optional[_Iterable[_Union[ClassResult, _Mapping]]] = ..., confusion_matrix: _Optional[_Union[ConfusionMatrix, _Mapping]] = ..., best: _Optional[bool] = ..., per_image: _Optional[_Iterable[_Union[ImageResult, _Mapping]]] = ..., curves: _Optional[_Iterable[_Union[Curve, _Mapping]]] = ..., dataset: _Optional[str] = ...) -> None: ...

class Curve(_message.Message):
    __slots__ = ("kind", "name", "mean", "iou", "recall", "precision")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    mean: bool
    iou: float
    recall: _containers.RepeatedScalarFieldContainer[float]
    precision: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., mean: _Optional[bool] = ..., iou: _Optional[float] = ..., recall: _Optional[_Iterable[float]] = ..., precision: _Optional[_Iterable[float]] = ...) -> None: ...

class ImageResult(_message.Message):
    __slots__ = ("image", "values", "target", "prediction", "predicted_label", "true_label", "predicted_boxes", "true_boxes")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LABEL_FIELD_NUMBER: _ClassVar[int]
    TRUE_LABEL_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_BOXES_FIELD_NUMBER: _ClassVar[int]
    TRUE_BOXES_FIELD_NUMBER: _ClassVar[int]
    image: str
    values: _containers.ScalarMap[str, float]
    target: str
    prediction: str
    predicted_label: str
    true_label: str
    predicted_boxes: _containers.RepeatedCompositeFieldContainer[ImageBox]
    true_boxes: _containers.RepeatedCompositeFieldContainer[ImageBox]
    def __init__(self, image: _Optional[str] = ..., values: _Optional[_Mapping[str, float]] = ..., target: _Optional[str] = ..., prediction: _Optional[str] = ..., predicted_label: _Optional[str] = ..., true_label: _Optional[str] = ..., predicted_boxes: _Optional[_Iterable[_Union[ImageBox, _Mapping]]] = ..., true_boxes: _Optional[_Iterable[_Union[ImageBox, _Mapping]]] = ...) -> None: ...

class ImageBox(_message.Message):
    __slots__ = ("label", "score", "box", "crowd")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    CROWD_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    box: Box
    crowd: bool
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., crowd: _Optional[bool] = ...) -> None: ...

class ResultsEpoch(_message.Message):
    __slots__ = ("epoch", "step", "metrics", "kept", "best", "seconds")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    BEST_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    step: int
    metrics: _containers.ScalarMap[str, float]
    kept: bool
    best: bool
    seconds: float
    def __init__(self, epoch: _Optional[int] = ..., step: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., kept: _Optional[bool] = ..., best: _Optional[bool] = ..., seconds: _Optional[float] = ...) -> None: ...

class GetResultsRequest(_message.Message):
    __slots__ = ("job_id", "epoch", "evals")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EVALS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    epoch: str
    evals: bool
    def __init__(self, job_id: _Optional[str] = ..., epoch: _Optional[str] = ..., evals: _Optional[bool] = ...) -> None: ...

class GetResultsResponse(_message.Message):
    __slots__ = ("result", "epochs", "evals", "gallery")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    EVALS_FIELD_NUMBER: _ClassVar[int]
    GALLERY_FIELD_NUMBER: _ClassVar[int]
    result: ValidationResult
    epochs: _containers.RepeatedCompositeFieldContainer[ResultsEpoch]
    evals: _containers.RepeatedCompositeFieldContainer[EvalResponse]
    gallery: EvalResponse
    def __init__(self, result: _Optional[_Union[ValidationResult, _Mapping]] = ..., epochs: _Optional[_Iterable[_Union[ResultsEpoch, _Mapping]]] = ..., evals: _Optional[_Iterable[_Union[EvalResponse, _Mapping]]] = ..., gallery: _Optional[_Union[EvalResponse, _Mapping]] = ...) -> None: ...

class EvalRequest(_message.Message):
    __slots__ = ("job_id", "checkpoint", "dataset", "format", "split", "batch", "device")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    checkpoint: str
    dataset: str
    format: str
    split: str
    batch: int
    device: str
    def __init__(self, job_id: _Optional[str] = ..., checkpoint: _Optional[str] = ..., dataset: _Optional[str] = ..., format: _Optional[str] = ..., split: _Optional[str] = ..., batch: _Optional[int] = ..., device: _Optional[str] = ...) -> None: ...

class EvalResponse(_message.Message):
    __slots__ = ("name", "result", "dataset", "dataset_hash", "checkpoint", "split", "images", "seconds", "path", "created_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DATASET_HASH_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    result: ValidationResult
    dataset: str
    dataset_hash: str
    checkpoint: str
    split: str
    images: int
    seconds: float
    path: str
    created_at: float
    def __init__(self, name: _Optional[str] = ..., result: _Optional[_Union[ValidationResult, _Mapping]] = ..., dataset: _Optional[str] = ..., dataset_hash: _Optional[str] = ..., checkpoint: _Optional[str] = ..., split: _Optional[str] = ..., images: _Optional[int] = ..., seconds: _Optional[float] = ..., path: _Optional[str] = ..., created_at: _Optional[float] = ...) -> None: ...

class CompareRequest(_message.Message):
    __slots__ = ("job_ids",)
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    job_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ComparedJob(_message.Message):
    __slots__ = ("job_id", "name", "framework", "model", "state", "best_epoch", "epochs", "metrics", "source", "train_seconds", "curve", "per_class", "parameters", "images_per_second")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BEST_EPOCH_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CURVE_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    name: str
    framework: str
    model: str
    state: str
    best_epoch: int
    epochs: int
    metrics: _containers.ScalarMap[str, float]
    source: str
    train_seconds: float
    curve: _containers.RepeatedCompositeFieldContainer[ResultsEpoch]
    per_class: _containers.RepeatedScalarFieldContainer[float]
    parameters: int
    images_per_second: float
    def __init__(self, job_id: _Optional[str] = ..., name: _Optional[str] = ..., framework: _Optional[str] = ..., model: _Optional[str] = ..., state: _Optional[str] = ..., best_epoch: _Optional[int] = ..., epochs: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., source: _Optional[str] = ..., train_seconds: _Optional[float] = ..., curve: _Optional[_Iterable[_Union[ResultsEpoch, _Mapping]]] = ..., per_class: _Optional[_Iterable[float]] = ..., parameters: _Optional[int] = ..., images_per_second: _Optional[float] = ...) -> None: ...

class CompareResponse(_message.Message):
    __slots__ = ("task", "primary_metric", "higher_is_better", "jobs", "classes", "per_class_key", "comparable", "note")
    TASK_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_METRIC_FIELD_NUMBER: _ClassVar[int]
    HIGHER_IS_BETTER_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_KEY_FIELD_NUMBER: _ClassVar[int]
    COMPARABLE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    task: str
    primary_metric: str
    higher_is_better: bool
    jobs: _containers.RepeatedCompositeFieldContainer[ComparedJob]
    classes: _containers.RepeatedScalarFieldContainer[str]
    per_class_key: str
    comparable: bool
    note: str
    def __init__(self, task: _Optional[str] = ..., primary_metric: _Optional[str] = ..., higher_is_better: _Optional[bool] = ..., jobs: _Optional[_Iterable[_Union[ComparedJob, _Mapping]]] = ..., classes: _Optional[_Iterable[str]] = ..., per_class_key: _Optional[str] = ..., comparable: _Optional[bool] = ..., note: _Optional[str] = ...) -> None: ...

class RepoInfo(_message.Message):
    __slots__ = ("name", "url", "commit", "description", "tasks", "models", "dataset_format", "source", "spec_yaml", "replaced")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DATASET_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SPEC_YAML_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    commit: str
    description: str
    tasks: _containers.RepeatedScalarFieldContainer[str]
    models: _containers.RepeatedScalarFieldContainer[str]
    dataset_format: str
    source: str
    spec_yaml: str
    replaced: bool
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ..., commit: _Optional[str] = ..., description: _Optional[str] = ..., tasks: _Optional[_Iterable[str]] = ..., models: _Optional[_Iterable[str]] = ..., dataset_format: _Optional[str] = ..., source: _Optional[str] = ..., spec_yaml: _Optional[str] = ..., replaced: _Optional[bool] = ...) -> None: ...

class AddRepoRequest(_message.Message):
    __slots__ = ("spec_yaml", "filename")
    SPEC_YAML_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    spec_yaml: str
    filename: str
    def __init__(self, spec_yaml: _Optional[str] = ..., filename: _Optional[str] = ...) -> None: ...

class ListReposRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListReposResponse(_message.Message):
    __slots__ = ("repos",)
    REPOS_FIELD_NUMBER: _ClassVar[int]
    repos: _containers.RepeatedCompositeFieldContainer[RepoInfo]
    def __init__(self, repos: _Optional[_Iterable[_Union[RepoInfo, _Mapping]]] = ...) -> None: ...

class GetRepoRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoveRepoRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class PrepareRepoRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class PrepareRepoResponse(_message.Message):
    __slots__ = ("repo", "checkout", "env")
    REPO_FIELD_NUMBER: _ClassVar[int]
    CHECKOUT_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    repo: RepoInfo
    checkout: str
    env: EnvInfo
    def __init__(self, repo: _Optional[_Union[RepoInfo, _Mapping]] = ..., checkout: _Optional[str] = ..., env: _Optional[_Union[EnvInfo, _Mapping]] = ...) -> None: ...

class CreateSweepRequest(_message.Message):
    __slots__ = ("spec_json", "resume")
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    spec_json: str
    resume: bool
    def __init__(self, spec_json: _Optional[str] = ..., resume: _Optional[bool] = ...) -> None: ...

class GetSweepRequest(_message.Message):
    __slots__ = ("sweep_id",)
    SWEEP_ID_FIELD_NUMBER: _ClassVar[int]
    sweep_id: str
    def __init__(self, sweep_id: _Optional[str] = ...) -> None: ...

class ListSweepsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListSweepsResponse(_message.Message):
    __slots__ = ("sweeps",)
    SWEEPS_FIELD_NUMBER: _ClassVar[int]
    sweeps: _containers.RepeatedCompositeFieldContainer[Sweep]
    def __init__(self, sweeps: _Optional[_Iterable[_Union[Sweep, _Mapping]]] = ...) -> None: ...

class CancelSweepRequest(_message.Message):
    __slots__ = ("sweep_id",)
    SWEEP_ID_FIELD_NUMBER: _ClassVar[int]
    sweep_id: str
    def __init__(self, sweep_id: _Optional[str] = ...) -> None: ...

class WatchSweepRequest(_message.Message):
    __slots__ = ("sweep_id",)
    SWEEP_ID_FIELD_NUMBER: _ClassVar[int]
    sweep_id: str
    def __init__(self, sweep_id: _Optional[str] = ...) -> None: ...

class SweepTrial(_message.Message):
    __slots__ = ("number", "job_id", "params_json", "state", "job_state", "has_value", "value", "pruned_at", "reason", "epoch")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    JOB_STATE_FIELD_NUMBER: _ClassVar[int]
    HAS_VALUE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PRUNED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    number: int
    job_id: str
    params_json: str
    state: str
    job_state: JobState
    has_value: bool
    value: float
    pruned_at: int
    reason: str
    epoch: int
    def __init__(self, number: _Optional[int] = ..., job_id: _Optional[str] = ..., params_json: _Optional[str] = ..., state: _Optional[str] = ..., job_state: _Optional[_Union[JobState, str]] = ..., has_value: _Optional[bool] = ..., value: _Optional[float] = ..., pruned_at: _Optional[int] = ..., reason: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class Sweep(_message.Message):
    __slots__ = ("id", "name", "state", "spec_json", "metric", "direction", "trials", "parallel", "trial_list", "best_trial", "best_value", "best_params_json", "message", "warnings", "created_at", "finished_at", "mlflow_run_id", "done", "pruned", "failed")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_FIELD_NUMBER: _ClassVar[int]
    TRIAL_LIST_FIELD_NUMBER: _ClassVar[int]
    BEST_TRIAL_FIELD_NUMBER: _ClassVar[int]
    BEST_VALUE_FIELD_NUMBER: _ClassVar[int]
    BEST_PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    MLFLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    PRUNED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    state: str
    spec_json: str
    metric: str
    direction: str
    trials: int
    parallel: int
    trial_list: _containers.RepeatedCompositeFieldContainer[SweepTrial]
    best_trial: int
    best_value: float
    best_params_json: str
    message: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    created_at: float
    finished_at: float
    mlflow_run_id: str
    done: int
    pruned: int
    failed: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[str] = ..., spec_json: _Optional[str] = ..., metric: _Optional[str] = ..., direction: _Optional[str] = ..., trials: _Optional[int] = ..., parallel: _Optional[int] = ..., trial_list: _Optional[_Iterable[_Union[SweepTrial, _Mapping]]] = ..., best_trial: _Optional[int] = ..., best_value: _Optional[float] = ..., best_params_json: _Optional[str] = ..., message: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., created_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., mlflow_run_id: _Optional[str] = ..., done: _Optional[int] = ..., pruned: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class ResultReport(_message.Message):
    __slots__ = ("metrics", "best_checkpoint", "last_checkpoint", "note")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    METRICS_FIELD_NUMBER: _ClassVar[int]
    BEST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.ScalarMap[str, float]
    best_checkpoint: str
    last_checkpoint: str
    note: str
    def __init__(self, metrics: _Optional[_Mapping[str, float]] = ..., best_checkpoint: _Optional[str] = ..., last_checkpoint: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ErrorReport(_message.Message):
    __slots__ = ("type", "message", "traceback")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    traceback: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., traceback: _Optional[str] = ...) -> None: ...

class ReportItem(_message.Message):
    __slots__ = ("time", "metrics", "checkpoint", "progress", "result", "error")
    TIME_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    time: float
    metrics: MetricsEvent
    checkpoint: CheckpointEvent
    progress: ProgressEvent
    result: ResultReport
    error: ErrorReport
    def __init__(self, time: _Optional[float] = ..., metrics: _Optional[_Union[MetricsEvent, _Mapping]] = ..., checkpoint: _Optional[_Union[CheckpointEvent, _Mapping]] = ..., progress: _Optional[_Union[ProgressEvent, _Mapping]] = ..., result: _Optional[_Union[ResultReport, _Mapping]] = ..., error: _Optional[_Union[ErrorReport, _Mapping]] = ...) -> None: ...

class ReportBatch(_message.Message):
    __slots__ = ("job_id", "token", "batch_seq", "items")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    BATCH_SEQ_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    token: str
    batch_seq: int
    items: _containers.RepeatedCompositeFieldContainer[ReportItem]
    def __init__(self, job_id: _Optional[str] = ..., token: _Optional[str] = ..., batch_seq: _Optional[int] = ..., items: _Optional[_Iterable[_Union[ReportItem, _Mapping]]] = ...) -> None: ...

class ReportAck(_message.Message):
    __slots__ = ("batch_seq",)
    BATCH_SEQ_FIELD_NUMBER: _ClassVar[int]
    batch_seq: int
    def __init__(self, batch_seq: _Optional[int] = ...) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("job_id", "token", "what")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    WHAT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    token: str
    what: str
    def __init__(self, job_id: _Optional[str] = ..., token: _Optional[str] = ..., what: _Optional[str] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("job_id", "token", "path", "data", "last")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    token: str
    path: str
    data: bytes
    last: bool
    def __init__(self, job_id: _Optional[str] = ..., token: _Optional[str] = ..., path: _Optional[str] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class UploadAck(_message.Message):
    __slots__ = ("files", "bytes")
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    files: int
    bytes: int
    def __init__(self, files: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...
