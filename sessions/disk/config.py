"""A session's configuration: what to explore and how. Typed, validated at the
edge, stored as config.json in the session folder."""

from __future__ import annotations

import json
import re
import typing
from typing import Annotated, Any, ClassVar, Literal, Mapping

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from engine.paths.registry import METHODS
from engine.landscape.graph import LandscapeOptions
from engine.paths.schedule import Schedule, ScheduleError, did_you_mean, schedule_from_dict
from sessions.errors import SessionError

SURFACE_NAMES = ("muller-brown", "himmelblau")
DEFAULT_CHECKPOINT_INTERVAL = 60.0  # seconds
SHA256 = re.compile(r"[0-9a-f]{64}")  # a minimum's digest as sessions.problem.minima.sha256 writes it


def _as_schedule(value: Any) -> Schedule:
    """The AutoNEB schedule, given whole or in its TOML/dict layout (Schedule.to_dict())."""
    return value if isinstance(value, Schedule) else schedule_from_dict(value)


# The AutoNEB schedule; config.json keeps it in its TOML/dict layout.
ScheduleField = Annotated[Schedule, PlainValidator(_as_schedule), PlainSerializer(Schedule.to_dict)]


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")


class Problem(_Config):
    """What the energy is: an analytic surface, or a network on data with minima files."""

    kind: str = Field(description="surface or network")
    surface: str | None = None  # surface name, one of SURFACE_NAMES
    model: str | None = None  # zoo name or "package.module:factory"
    model_args: dict[str, Any] = Field(default_factory=dict)
    data: str | None = None  # "digits", a torchvision data set, a folder
    loss: str = "cross_entropy"
    minima: list[Any] = Field(default_factory=list)  # the manifest: path, sha256, parameters
    # where a package.module:factory is imported from first, as python -m would: the folder the user
    # typed the command in (the runner's own working directory is the session folder, never searched)
    import_dir: str | None = None

    @field_validator("minima")
    @classmethod
    def _entries(cls, minima: list[Any]) -> list[Any]:
        for i, entry in enumerate(minima):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str) or not entry["path"]:
                raise ValueError(f"problem.minima[{i}] is not an entry with a path")
            if "sha256" in entry and not (isinstance(entry["sha256"], str) and SHA256.fullmatch(entry["sha256"])):
                raise ValueError(f"problem.minima[{i}].sha256 must be 64 lowercase hex digits, got {entry['sha256']!r}")
            parameters = entry.get("parameters", 0)
            if type(parameters) is not int or parameters < 0:
                raise ValueError(f"problem.minima[{i}].parameters must be a count >= 0, got {parameters!r}")
        return minima

    def problems(self) -> list[str]:
        found = []
        if self.kind == "surface":
            if self.surface not in SURFACE_NAMES:
                found.append(f"unknown surface {self.surface!r}: use one of {', '.join(SURFACE_NAMES)}")
        elif self.kind == "network":
            if not self.model:
                found.append("a network session needs a model (--model)")
            if not self.data:
                found.append("a network session needs data (--data)")
            if len(self.minima) < 2:
                found.append(f"a network session needs at least 2 minima, got {len(self.minima)}")
        else:
            found.append(f"unknown problem kind {self.kind!r}: use surface or network")
        return found


def cluster_problems(cluster: Any, device: str = "auto") -> list[str]:
    """What is wrong with a ``--cluster`` value (local, ray, ray://HOST:PORT) and the device beside it."""
    if cluster not in ("local", "ray"):
        host, _, port = str(cluster).removeprefix("ray://").rpartition(":")
        if not (isinstance(cluster, str) and cluster.startswith("ray://") and host and port.isdigit()):
            return [f"unknown cluster {cluster!r}: use local, ray (the Ray cluster this machine is part of) "
                    "or ray://HOST:PORT"]
    if cluster != "local" and isinstance(device, str) and device.strip().startswith("cuda:"):
        return [f"--device {device} names GPUs of this machine: on a cluster use --device auto (every GPU of "
                "the cluster, else its CPUs), cuda (its GPUs, or refuse) or cpu"]
    return []


class SessionConfig(_Config):
    """The one config of a session, from the command line to every process and back from
    config.json: the problem, the AutoNEB schedule, the landscape options, the method and
    how to run them. ``to_dict`` is config.json's layout; ``from_dict`` reads it back, a bad
    field a SessionError of one line."""

    complete: ClassVar[bool] = True  # every field is there, and they fit together (PartialConfig: not checked)

    problem: Problem
    schedule: ScheduleField
    device: str = "auto"  # auto | cpu | cuda:0,1
    seed: int = 0
    # The landscape's options; config.json keeps the fields the command line set (--stop, --star)
    landscape: LandscapeOptions = LandscapeOptions()
    checkpoint_interval: float = Field(
        DEFAULT_CHECKPOINT_INTERVAL, gt=0, allow_inf_nan=False, description="a positive number of seconds")
    # CPU workers (each with its share of the cores); GPUs: one worker per device
    workers: int = Field(1, ge=1, description="a whole number >= 1 (CPU worker processes)")
    strategy: Literal["auto", "batched", "loop", "vmap"] = "auto"  # how the network energy runs its pivots
    # torch threads of each CPU worker (--threads); None: the cores // workers of the first runner, which
    # it stores with its strategy (sessions.events.StrategyChosen) for every runner after it
    threads: int | None = Field(None, ge=1, description="a whole number >= 1 (torch threads per CPU worker)")
    # GPU speed options of the network energy (each also runs on the CPU)
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast
    channels_last: bool = False
    compile: bool = False  # torch.compile of the per-pivot loss
    # where a data factory's map-style Datasets go: read into memory, streamed, or auto (streamed when larger
    # than engine.networks.stream.STREAM_FRACTION of the available memory)
    data_in: Literal["auto", "memory", "stream"] = "auto"
    cudnn_benchmark: bool = False
    # How each pair is connected (a curve's budget: engine.paths.registry.curve_schedule), and whether the
    # minima are aligned first (permute every minimum's hidden units to match the lowest one; networks)
    method: Literal[METHODS] = "autoneb"
    align: bool = False
    # with align: "lowest" (every minimum to the lowest one, once) or "pairwise" (each pair's second end to
    # its first, pair by pair)
    alignment: Literal["lowest", "pairwise"] = "lowest"
    cluster: str = "local"  # local (worker processes here) | ray (the Ray cluster here) | ray://HOST:PORT
    # This user's tag for a package.module:factory model (sessions.problem.trust): the factory is imported only
    # when the tag verifies, so a session folder copied from elsewhere runs none of its code
    vouch: str | None = None

    @field_serializer("landscape")
    def _landscape_as_given(self, landscape: LandscapeOptions) -> dict[str, Any]:
        return landscape.given()

    @model_validator(mode="after")
    def _fits_together(self) -> "SessionConfig":
        if not self.complete:
            return self
        found = self.problem.problems()
        if self.align and self.problem.kind != "network":
            found.append("--align permutes the hidden units of networks: a surface has none; leave --align out")
        if self.alignment != "lowest" and not self.align:
            found.append(f"alignment {self.alignment!r} is how minima are aligned: it needs align true")
        found += cluster_problems(self.cluster, self.device)
        if found:
            raise ValueError("; ".join(found))
        return self

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise SessionError(first_bad_field(type(self), error)) from None

    def run_schedule(self) -> Any:
        """What each pair runs: the AutoNEB schedule, or the curve's schedule the method
        derives from it (engine.paths.registry.method_schedule). Every process that runs,
        times, shows or reports the session's pairs takes it from here."""
        from engine.paths.registry import method_schedule

        return method_schedule(self.method, self.schedule)

    def to_dict(self) -> dict[str, Any]:
        """config.json's layout (JSON-able): the schedule as Schedule.to_dict(), the landscape
        options as given; no threads where the session leaves them to its first runner, and no
        alignment or data placement where it is the one every session had before the field (so
        configs written before these fields read back as they were)."""
        left_out = {"threads"} if self.threads is None else set()
        if self.alignment == "lowest":
            left_out.add("alignment")
        if self.data_in == "auto":
            left_out.add("data_in")
        return self.model_dump(exclude=left_out or None)

    @classmethod
    def from_dict(cls, d: Any) -> "SessionConfig":
        """The config as read back from JSON; what is missing, of the wrong type or out
        of range is a SessionError with the first such field."""
        if not isinstance(d, Mapping):
            raise SessionError(f"the file is {_json_word(d)}, not an object")
        return cls(**d)


def _schedule_if_readable(value: Any) -> Schedule | None:
    """A listing's schedule: None where there is none this nebtui reads (the runner says why)."""
    try:
        return None if value is None else _as_schedule(value)
    except ScheduleError:
        return None


_ScheduleIfReadable = Annotated[Schedule | None, PlainValidator(_schedule_if_readable),
                                PlainSerializer(lambda s: None if s is None else s.to_dict())]


class _ListedProblem(Problem):
    model_config = ConfigDict(extra="ignore")


class _ListedLandscape(LandscapeOptions):
    model_config = ConfigDict(extra="ignore")


class PartialConfig(SessionConfig):
    """What a listing reads of a config.json: the fields there are, typed; a problem or
    schedule missing is None, a field unknown to this nebtui (a newer one wrote it) is
    skipped, here and in the problem and landscape options, and nothing is checked across
    fields (sessions.disk.config.read_config does)."""

    model_config = ConfigDict(extra="ignore")
    complete: ClassVar[bool] = False

    problem: _ListedProblem | None = None  # type: ignore[assignment]
    schedule: _ScheduleIfReadable = None  # type: ignore[assignment]
    landscape: _ListedLandscape = _ListedLandscape()


# ---- one line per bad config: the first bad field, with what it takes

_KIND_WORDS = {"int_type": "a whole number", "float_type": "a number", "string_type": "text",
               "bool_type": "true or false", "dict_type": "an object", "model_type": "an object",
               "model_attributes_type": "an object", "list_type": "a list"}


def _json_word(value: Any) -> str:
    """The value as JSON writes it, shortened."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _field(cls: Any, loc: tuple[Any, ...]) -> Any:
    """The pydantic field ``loc`` names under the model ``cls`` (None past a model)."""
    field = None
    for part in loc:
        models = [c for c in (cls, *typing.get_args(cls)) if isinstance(c, type) and issubclass(c, BaseModel)]
        if not isinstance(part, str) or not models or part not in models[0].model_fields:
            return field if isinstance(part, int) else None
        field = models[0].model_fields[part]
        cls = field.annotation
    return field


def first_bad_field(cls: type[BaseModel], error: ValidationError) -> str:
    """The first of pydantic's errors as one line: where, what it is, what it takes."""
    detail = error.errors()[0]
    loc = tuple(detail["loc"])
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    value = detail.get("input")
    kind = detail["type"]
    if kind == "value_error":  # a validator of ours, or a schedule's lines: its words say it all
        cause = detail["ctx"]["error"]
        return "; ".join(cause.lines) if isinstance(cause, ScheduleError) else str(cause)
    if kind == "missing":
        return f"{where} is missing"
    if kind == "extra_forbidden":
        parent = _field(cls, loc[:-1]) if len(loc) > 1 else None
        known = getattr(parent.annotation, "model_fields", {}) if parent is not None else cls.model_fields
        return f"unknown field {where!r}{did_you_mean(str(loc[-1]), known)}"
    if kind in _KIND_WORDS:
        return f"{where or 'the file'} is {_json_word(value)}, not {_KIND_WORDS[kind]}"
    field = _field(cls, loc)
    if kind == "literal_error":
        choices = [str(c) for c in typing.get_args(field.annotation)] if field is not None else []
        if not isinstance(value, str):
            return f"{where} is {_json_word(value)}, not text"
        use = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else "".join(choices)
        return f"unknown {where} {value!r}: use {use}{did_you_mean(value, choices)}"
    what = field.description if field is not None and field.description else detail["msg"].lower()
    return f"{where} must be {what}, got {_json_word(value)}"


def read_config(folder: Any) -> SessionConfig:
    """A session's config as a SessionConfig; a damaged config.json is one line naming the session."""
    from sessions.disk.folder import damaged_config

    raw = folder.config_json()
    try:
        return SessionConfig.from_dict(raw)
    except SessionError as error:
        raise damaged_config(folder.id, str(error)) from None
