"""Typed run configuration: dataclasses are the single source of defaults.

A run config has four registered sections and one fixed one::

    name: quickstart
    data:      {name: sprites, ...}      # DATASETS entry
    model:     {name: conv_vae, ...}     # MODELS entry
    objective: {name: vae, ...}          # OBJECTIVES entry (loss + optimisers)
    train:     {batch_size: 64, ...}     # TrainConfig, shared by every family

Loading is strict: an unknown key fails with the nearest valid key, a wrong type
names the key and the type it expects. Overrides use dotted keys
(``train.batch_size=128``) parsed as YAML scalars.

Every numeric key declares what it allows in one place, its class's ``bounds``
(``{"lr": POSITIVE, "batch_size": at_least(1)}``); choices of strings are ``Literal``
types. Both are checked when a config is loaded (``--dry-run`` included) and when a
config class is built in Python; ``__post_init__`` keeps only checks across keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

import yaml

from genlab.errors import ConfigError
from genlab.registry import DATASETS, MODELS, OBJECTIVES, REGULARISERS, Registry, UnknownNameError

# ----------------------------------------------------------------------------- allowed values


@dataclass(frozen=True)
class Range:
    """The values a numeric key allows: an interval (either end open or absent) or a set of choices.

    Intervals hold finite numbers only (no NaN, no Inf). A tuple value (e.g. Adam's betas)
    must have every item in range.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # (low, ...] instead of [low, ...]
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    note: str = ""  # what a special value means, e.g. "0 disables"

    def allows(self, value: Any) -> bool:
        if isinstance(value, (tuple, list)):
            return all(self.allows(v) for v in value)
        if self.choices:
            return value in self.choices
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.choices:
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.low is not None and self.high is not None:
            text = f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {self.low}"
        elif self.high is not None:
            text = f"{'<' if self.high_open else '<='} {self.high}"
        else:
            text = "a finite number"
        return f"{text} ({self.note})" if self.note else text


def at_least(low: float, note: str = "") -> Range:
    return Range(low, note=note)


def one_of(*choices: Any, note: str = "") -> Range:
    return Range(choices=choices, note=note)


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
PROBABILITY = Range(0, 1, high_open=True)  # a drop probability, a decay or momentum: 1 would never move
FRACTION = Range(0, 1)
ANY_NUMBER = Range()  # declared explicitly, so that no numeric key is unbounded by oversight
SEED = Range(0, 2**32 - 1)  # what numpy's and torch's generators accept


def bounds_of(cls: type) -> dict[str, Range]:
    """Every key's Range for config class ``cls``, a subclass's entries over its bases'."""
    merged: dict[str, Range] = {}
    for klass in reversed(cls.__mro__):
        merged.update(vars(klass).get("bounds", {}))
    return merged


def check_bounds(cls: type, values: dict[str, Any], where: str) -> None:
    """ConfigError naming the first key of ``values`` outside its Range, e.g. ``model.latent_dim``."""
    for key, allowed in bounds_of(cls).items():
        if key in values and not allowed.allows(values[key]):
            each = " each" if isinstance(values[key], (tuple, list)) else ""
            raise ConfigError(f"{where}{key} must{each} be {allowed}, got {values[key]!r}")


class Bounded:
    """Base of config classes whose ``bounds`` are checked whenever one is built.

    ``_build`` checks loaded values with their full key (``objective.lr``); this checks
    configs built in Python too, before the class's own ``__post_init__`` (cross-key checks) runs.
    """

    bounds: ClassVar[dict[str, Range]] = {}

    def __post_init__(self) -> None:
        check_bounds(type(self), vars(self), f"{type(self).__name__}: ")

    @classmethod
    def upgrade(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """``raw`` (this section as loaded, a copy) in today's keys: a class whose keys changed rewrites the
        keys an older genlab wrote, so that old run folders and configs still load. The default keeps it."""
        return raw

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is None:
            return

        def __post_init__(self) -> None:
            Bounded.__post_init__(self)
            own(self)

        setattr(cls, "__post_init__", __post_init__)  # noqa: B010 - mypy refuses assignments to a method


# ----------------------------------------------------------------------------- examples for the shared tests

# In an example config: the data set's files, which the shared tests supply (tests/conftest.py,
# ``example_files``): the real MNIST for the sets that read it, small files they write for the others.
EXAMPLE_FILES = "<example files>"


@dataclass(frozen=True)
class ExampleRun:
    """A small run an objective supplies for the shared tests (bitwise resume): its data, model and
    objective sections as in a YAML config.

    The test trains 512 images in batches of 32, so the data holds at least 512 training examples.
    ``slow``: the run takes over ~2 s (bigger networks, two domains), so it runs in the slow tier.
    """

    name: str  # the test's id, unique over every objective's examples
    data: dict[str, Any]
    model: dict[str, Any]
    objective: dict[str, Any]
    slow: bool = False


# ----------------------------------------------------------------------------- sections


@dataclass
class DataConfig(Bounded):
    """Base of every dataset's config; subclasses add their own keys.

    ``num_modes`` is what the ``modes`` metric counts with the digit classifier: None when an
    example is one digit (the classifier's classes are the modes); a set whose channels each
    hold a digit declares the classes to the power of its channels (Stacked MNIST: 1000).

    ``example`` is the keys (besides ``name``) of a small config that builds offline in well under a
    second, with ``EXAMPLE_FILES`` where it reads files: the data contract tests build every
    registered data set from it (see ``genlab.data.example_configs``).
    """

    name: str
    # k of k-means on the training images' pixels, whose clusters become a "cluster" field (genlab.data.clusters)
    # for GANs conditioned on them; 0 adds none. After every set's own keys, so positional arguments keep their order.
    clusters: int = field(default=0, kw_only=True)
    registry: ClassVar[Registry] = DATASETS
    num_modes: ClassVar[int | None] = None
    example: ClassVar[dict[str, Any] | None] = None
    bounds: ClassVar[dict[str, Range]] = {"clusters": at_least(0, "0 adds no clusters")}


@dataclass
class ModelConfig(Bounded):
    """Base of every model's config. ``family`` says which objectives can train it.

    A config may set ``example_spec`` (a small data spec the model supports) and
    ``example_variants`` (config overrides, e.g. ``{"conditional": True}``) for the shared
    model tests; see ``genlab.models.examples``.
    """

    name: str
    registry: ClassVar[Registry] = MODELS
    family: ClassVar[str] = ""


@dataclass
class ObjectiveConfig(Bounded):
    """Base of every objective's config (losses, optimisers, step schedule).

    ``resume_examples`` are small runs of the objective (one per way it trains differently:
    conditioning, penalties, EMA, ...) that the shared tests resume bitwise; see
    ``genlab.training.objectives.resume_examples``.
    """

    name: str
    registry: ClassVar[Registry] = OBJECTIVES
    family: ClassVar[str] = ""
    resume_examples: ClassVar[tuple[ExampleRun, ...]] = ()


@dataclass
class RegulariserConfig(Bounded):
    """Base of every regulariser term's config: one entry of an objective's ``regularisers`` list.

    ``weight`` scales the term's penalty in its phase's loss; ``every`` > 1 makes it lazy (Karras et
    al. 2020): it runs on every ``every``-th step of its phase, weighted by ``every``. A term's class
    overrides the default weight with its paper's and may add keys of its own.
    """

    name: str
    weight: float = 1.0
    every: int = 1
    registry: ClassVar[Registry] = REGULARISERS
    bounds: ClassVar[dict[str, Range]] = {
        "weight": Range(0, note="0 turns the term off"),
        "every": at_least(1, "steps of its phase per penalty"),
    }


@dataclass
class ScheduleConfig(Bounded):
    """A learning-rate schedule, as a factor of each optimiser's base rate over the run.

    ``constant``; ``linear``: constant until ``decay_start_kimg``, then linear to
    ``final_fraction`` at the end (CycleGAN: decay over the second half); ``cosine``:
    from 1 to ``final_fraction`` along a half cosine. Any kind can start with a linear
    warm-up over ``warmup_kimg``. Counted in images seen, so resume continues it exactly.
    """

    kind: Literal["constant", "linear", "cosine"] = "constant"
    warmup_kimg: float = 0.0
    decay_start_kimg: float = 0.0  # linear only
    final_fraction: float = 0.0  # of the base rate, at the end of linear and cosine decays
    bounds: ClassVar[dict[str, Range]] = {
        "warmup_kimg": NON_NEGATIVE,
        "decay_start_kimg": NON_NEGATIVE,
        "final_fraction": FRACTION,
    }


@dataclass
class TrainConfig(Bounded):
    """What the one training loop needs, whatever the model family."""

    kimg: float = 100.0  # training length in thousands of real images seen
    # wall-clock budget of the loop in one train() call: then stop with a checkpoint; 0 disables
    max_minutes: float = 0.0
    batch_size: int = 64  # per process; the global batch is batch_size * world size
    seed: int = 0
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
    # bf16 = autocast for forward passes; auto = the faster, measured
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    memory_format: Literal["contiguous", "channels_last"] = "contiguous"  # of conv weights and image batches
    # library of fp32 Linear products on the CPU; auto = measured
    cpu_linear: Literal["auto", "blas", "onednn"] = "auto"
    grad_clip: float = 0.0  # max global gradient norm per optimiser step; 0 disables
    log_every_kimg: float = 1.0
    snapshot_every_kimg: float = 10.0
    checkpoint_every_kimg: float = 10.0
    keep_checkpoints: int = 3
    out_dir: str = "runs"
    tensorboard: bool = True
    progress_bar: bool = True
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    on_nan: Literal["stop", "rollback"] = "stop"  # a NaN/Inf loss or gradient: stop, or reload the last good
    max_rollbacks: int = 3  # checkpoint with the learning rates halved, at most this many times in the run
    lr_schedule: ScheduleConfig = field(default_factory=ScheduleConfig)  # for every optimiser
    lr_schedules: dict[str, ScheduleConfig] = field(default_factory=dict)  # per optimiser name, e.g. {D: ..., G: ...}
    sync_batchnorm: bool = False  # under torchrun with several GPUs: batch norm over the global batch; 1 process: no-op
    bounds: ClassVar[dict[str, Range]] = {
        "kimg": POSITIVE,
        "batch_size": at_least(1),
        "seed": SEED,
        "grad_clip": at_least(0, "0 disables"),
        "log_every_kimg": at_least(0, "0 disables"),
        "snapshot_every_kimg": at_least(0, "0 disables"),
        "checkpoint_every_kimg": at_least(0, "0: only when stopping"),
        "keep_checkpoints": at_least(1),
        "threads": at_least(0, "0 keeps torch's default"),
        "max_rollbacks": at_least(1),
        "max_minutes": at_least(0, "0 disables"),
    }

    def __post_init__(self) -> None:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise ConfigError(f"device must be auto, cpu, mps, cuda or cuda:N, got {self.device!r}")


@dataclass
class Config:
    name: str
    data: DataConfig
    model: ModelConfig
    objective: ObjectiveConfig
    train: TrainConfig = field(default_factory=TrainConfig)


# ----------------------------------------------------------------------------- loading


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config, apply ``key=value`` overrides and validate everything."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; see configs/ for examples")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path} is not a UTF-8 text file ({err.reason} at byte {err.start}); is it a YAML config?"
        ) from None
    except yaml.YAMLError as err:  # its own message spans lines, quoting the text
        mark = getattr(err, "problem_mark", None)
        why = (
            f"{err.problem} at line {mark.line + 1}, column {mark.column + 1}"
            if mark is not None
            else " ".join(str(err).split()).replace('in "<unicode string>", ', "at ")
        )
        raise ConfigError(f"{path} is not valid YAML: {why}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(raw).__name__}")
    return config_from_dict(apply_overrides(raw, overrides or []), source=str(path))


def config_from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    config = _build(Config, raw, prefix="", source=source)
    if config.model.family != config.objective.family:
        raise ConfigError(
            f"{source}: objective {config.objective.name!r} trains {config.objective.family} models "
            f"but model {config.model.name!r} is a {config.model.family} model; pick an objective "
            f"of family {config.model.family!r}"
        )
    return config


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with dotted ``key=value`` overrides applied."""
    result = _deep_copy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node: Any = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = _child(node, part, item)
        if isinstance(node, list):
            node[_list_index(node, parts[-1], item)] = value
        else:
            node[parts[-1]] = value
    return result


def _child(node: Any, part: str, item: str) -> Any:
    """The section or list entry ``part`` of ``node`` (an override's path; a missing section is created)."""
    child = node[_list_index(node, part, item)] if isinstance(node, list) else node.setdefault(part, {})
    if not isinstance(child, (dict, list)):
        raise ConfigError(f"override {item!r}: {part!r} is not a section")
    return child


def _list_index(node: list[Any], part: str, item: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override {item!r}: {part!r} must be an index of a list of {len(node)} entries (0, 1, ...)")
    return int(part)


def override_config(config: Config, overrides: list[str]) -> Config:
    """``config`` with dotted ``key=value`` overrides applied and everything validated again.

    With no overrides this still validates a Config built in Python (keys, types, ranges).
    """
    return config_from_dict(apply_overrides(config_to_dict(config), overrides), source="overrides")


def model_config_from_dict(raw: dict[str, Any], source: str) -> ModelConfig:
    """The ``model`` section alone, validated as in a full config (an exported model's model.yaml)."""
    return _build(ModelConfig, raw, prefix="model.", source=source)


def config_to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def dump_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


# ----------------------------------------------------------------------------- internals


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where} must be a mapping, got {raw!r}")
    registry = getattr(cls, "registry", None)
    if isinstance(registry, Registry):
        if "name" not in raw:
            raise ConfigError(f"{source}: {where} needs a 'name'; one of: {', '.join(registry.names())}")
        try:
            cls = registry.get(str(raw["name"])).config_cls
        except UnknownNameError as err:
            raise ConfigError(f"{source}: {prefix}name: {err}") from None
    if isinstance(cls, type) and issubclass(cls, Bounded):
        raw = cls.upgrade(_deep_copy(raw))
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1, cutoff=0.5)
            hint = f"; did you mean {prefix}{close[0]!r}?" if close else ""
            raise ConfigError(f"{source}: unknown key {prefix}{key!r}{hint} Valid keys: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        if name in raw:
            values[name] = _coerce(hints[name], raw[name], f"{prefix}{name}", source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing required key {prefix}{name}")
    check_bounds(cls, values, f"{source}: {prefix}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: {where}: {err}") from None


def _coerce(tp: Any, value: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".", source)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key, source)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: {key} must be one of {list(args)}, got {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{key}.{k}", source) for k, v in value.items()}
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        item_type = args[0] if args else Any
        items = [_coerce(item_type, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" as a string; accept it as the number it means
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and type(value) is tp:
        return value
    raise ConfigError(f"{source}: {key} must be {getattr(tp, '__name__', tp)}, got {value!r}")


def _deep_copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _deep_copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_deep_copy(v) for v in node]
    return node
