"""The validator contract: a small class per check, an immutable result, and a registry."""

from __future__ import annotations

import ast
import functools
import inspect
import io
import math
import textwrap
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from prefaudit.errors import BadParameterError, SettingError, UnknownNameError

if TYPE_CHECKING:
    from prefaudit.auditing import AuditContext

# Every flags table has these columns; validators may add their own (booleans per sub-issue,
# group ids...). `score` is in [0, 1] and higher always means "more likely a problem".
FLAG_COLUMNS = ("score", "issue", "reason")


class MissingInputError(SettingError):
    """A validator needs an input (a column, annotations, model outputs) the audit lacks."""


@dataclass(frozen=True)
class ValidatorResult:
    """What a validator returns: per-pair flags, flat namespaced metrics, and info for the report.

    ``flags`` is indexed by ``pair_id`` and has ``score`` (float in [0, 1], higher = more likely a
    problem), ``issue`` (bool) and ``reason`` (short text, empty when there is no issue).
    ``metrics`` keys are namespaced (``content/identical_pairs``); NaN becomes None.
    ``info`` holds JSON-ready tables and groups for the report.
    """

    name: str
    flags: pd.DataFrame
    metrics: Mapping[str, Any]
    info: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in FLAG_COLUMNS if c not in self.flags.columns]
        if missing:
            raise ValueError(f"validator {self.name!r}: flags lack the column(s) {missing}")
        bad = [k for k in self.metrics if not k.startswith(f"{self.name}/")]
        if bad:
            raise ValueError(
                f"validator {self.name!r}: metric names must start with '{self.name}/': {bad}"
            )
        object.__setattr__(
            self, "metrics", MappingProxyType({k: _plain(v) for k, v in self.metrics.items()})
        )
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def issues(self) -> pd.Index:
        """The ids of the pairs this validator flags."""
        return self.flags.index[self.flags["issue"].to_numpy(dtype=bool)]

    def to_dict(self, include_flags: bool = False) -> dict[str, Any]:
        data = {
            "metrics": dict(self.metrics),
            "info": dict(self.info),
            "params": dict(self.params),
            "flagged": int(self.flags["issue"].sum()),
        }
        if include_flags:
            data["flags"] = frame_to_json(self.flags)
        return data

    @classmethod
    def from_dict(
        cls, name: str, data: Mapping[str, Any], flags: pd.DataFrame | None = None
    ) -> ValidatorResult:
        if flags is None:
            flags = frame_from_json(data["flags"])
        return cls(name, flags, data["metrics"], data.get("info", {}), data.get("params", {}))


@dataclass(frozen=True)
class CleaningAction:
    """A cleaning step one of a validator's flag columns can drive (see prefaudit.cleaning).

    ``kind`` is what the column does when a policy asks for it:

    - ``"dedupe"``: the column holds the pair id this pair duplicates ("" or None: none); of
      each group only the first kept pair stays (policy ``dedupe``);
    - ``"reorient"``: a boolean column; True means the evidence prefers the rejected response,
      so the pair is flipped (policy ``reorient_by_raters``);
    - ``"flip"``: a score in [0, 1] that the label is flipped; pairs at or above the policy's
      ``flip_min_noise`` are flipped;
    - ``"review"``: the same kind of score, on evidence too weak to flip on: pairs at or above
      ``flip_min_noise`` that were not flipped go to the quarantine for review;
    - ``"confidence"``: the same kind of score; ``weights: confidence`` attaches
      ``weight`` = 1 - score (the score itself after a flip);
    - ``"soft_label"``: P(chosen is better); ``weights: soft_label`` attaches it (1 - it after
      a flip);
    - ``"margin"``: the reference model's per-token log-prob margin, chosen minus rejected
      (NaN: not scored); ``select`` ranks by how far it is from zero;
    - ``"cluster"``: the pair's prompt cluster; ``select``'s ``per_cluster_min`` floor is per
      cluster;
    - ``"strength"``: how strongly the evidence prefers chosen, in [-1, 1] (NaN: none); the
      policy's ``min_strength`` quarantines pairs nearer a tie, ``weights: strength``
      attaches it as ``weight`` (0 where it prefers the other response).

    ``by`` names the evidence in the manifest's list of flips (default: the validator's name);
    ``reason`` is the flip's reason there, formatted with ``score`` and ``threshold``.
    """

    kind: str
    column: str
    by: str = ""
    reason: str = ""


CLEANING_KINDS = (
    "dedupe",
    "reorient",
    "flip",
    "review",
    "confidence",
    "soft_label",
    "margin",
    "cluster",
    "strength",
)


class Validator:
    """Base class: subclasses set ``name``, ``description``, ``requires`` and implement ``run``.

    Parameters are keyword-only arguments of ``__init__``, named like the rule-file keys and
    stored unchanged (no logic in ``__init__``); ``get_params`` reads them back.
    """

    name: ClassVar[str]
    description: ClassVar[str]  # what the report shows: what the check looks for and why it matters
    # Inputs: PairSet columns, or "annotations". Missing ones raise MissingInputError.
    requires: ClassVar[tuple[str, ...]] = ("prompt", "chosen", "rejected")
    # Validators whose results this one reads when they ran (they run first).
    uses: ClassVar[tuple[str, ...]] = ()
    # Every metric `run` returns (rule files may only name these); the contract test checks it.
    metric_names: ClassVar[tuple[str, ...]] = ()
    # Those of them whose values are labels, not numbers (rules cannot bound them).
    text_metric_names: ClassVar[tuple[str, ...]] = ()
    # Those of them that measure speed (they differ between runs of the same input).
    timing_metric_names: ClassVar[tuple[str, ...]] = ()
    # Metrics the CLI prints in its summary table.
    headline_metrics: ClassVar[tuple[str, ...]] = ()
    # False for checks that load a large model: they run only when asked for by name.
    runs_by_default: ClassVar[bool] = True
    # The cleaning steps its flag columns drive; prefaudit.cleaning reads only these.
    cleaning: ClassVar[tuple[CleaningAction, ...]] = ()
    # Bounds of numeric parameters, (lowest, highest), inclusive, None for unbounded;
    # create_validator refuses a value outside them before any work starts.
    param_ranges: ClassVar[Mapping[str, tuple[float | None, float | None]]] = MappingProxyType({})

    def get_params(self) -> dict[str, Any]:
        return {p.name: getattr(self, p.name) for p in _keyword_only(type(self))}

    def run(self, context: AuditContext) -> ValidatorResult:
        raise NotImplementedError

    def result(
        self, flags: pd.DataFrame, metrics: dict[str, Any], info: dict[str, Any] | None = None
    ) -> ValidatorResult:
        return ValidatorResult(self.name, flags, metrics, info or {}, self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


@dataclass(frozen=True)
class Parameter:
    """A validator's parameter: its name (the rule-file and ``--param`` key), its default, and
    its help text."""

    name: str
    default: Any
    help: str


def validator_parameters(cls: type[Validator]) -> tuple[Parameter, ...]:
    """The keyword-only parameters of ``cls.__init__``, in order, with their defaults and help:
    the comment above (or at the end of) the line of ``__init__`` that stores each one.
    ``prefaudit validators`` prints them; the tests check the docs/validators/ pages' names
    and defaults against them.

    >>> from prefaudit.validators import ContentValidator
    >>> first = validator_parameters(ContentValidator)[0]
    >>> first.name, first.default
    ('min_response_chars', 2)
    """
    keyword = _keyword_only(cls)
    notes = _init_comments(cls) if keyword else {}
    return tuple(Parameter(p.name, p.default, notes.get(p.name, "")) for p in keyword)


def _keyword_only(cls: type) -> list[inspect.Parameter]:
    parameters = inspect.signature(cls.__init__).parameters.values()
    return [p for p in parameters if p.kind is p.KEYWORD_ONLY]


@functools.cache
def _init_comments(cls: type) -> dict[str, str]:
    """{parameter: its comment} from the source of ``cls.__init__``: the comment lines right
    above ``self.<name> = <name>``, else the comment at the end of that line; {} when there is
    no source to read (an installed .pyc only, a class made by ``exec``)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls.__init__))
        tree = ast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (OSError, TypeError, SyntaxError, tokenize.TokenError):
        return {}
    if not (tree.body and isinstance(tree.body[0], ast.FunctionDef)):
        return {}  # the source found is not this method's (exec'd code, a stale file)
    comments = [t for t in tokens if t.type == tokenize.COMMENT]
    text = {t.start[0]: t.string.lstrip("#").strip() for t in comments}
    # Lines that hold only a comment (a block above an assignment), not code and a comment.
    whole_line = {t.start[0] for t in comments if not t.line[: t.start[1]].strip()}
    found = {}
    for node in ast.walk(tree.body[0]):
        name = _stored_parameter(node)
        if name is None:
            continue
        above, line = [], node.lineno - 1
        while line in whole_line:
            above.insert(0, text[line])
            line -= 1
        found[name] = " ".join(above) or text.get(node.lineno, "")
    return found


def _stored_parameter(node: ast.AST) -> str | None:
    """``name`` when ``node`` is ``self.name = name``."""
    if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
        return None
    target, value = node.targets[0], node.value
    if (
        isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id == "self"
        and isinstance(value, ast.Name)
        and value.id == target.attr
    ):
        return target.attr
    return None


# Every validator by name: the built-in ones (prefaudit.validators.BUILT_IN, in that order),
# then any added with `register`.
VALIDATORS: dict[str, type[Validator]] = {}


def register(cls: type[Validator]) -> type[Validator]:
    """Make a validator available by its ``name`` (also a class decorator)."""
    if cls.name in VALIDATORS and VALIDATORS[cls.name] is not cls:
        raise ValueError(f"a validator named {cls.name!r} is already registered")
    bad = [a for a in cls.cleaning if a.kind not in CLEANING_KINDS]
    if bad:
        raise ValueError(
            f"validator {cls.name!r}: unknown cleaning kind {bad[0].kind!r}; "
            f"expected one of {', '.join(CLEANING_KINDS)}"
        )
    VALIDATORS[cls.name] = cls
    return cls


def available_validators() -> dict[str, str]:
    """Registered validator names and their descriptions."""
    return {name: cls.description for name, cls in VALIDATORS.items()}


def create_validator(name: str, **params: Any) -> Validator:
    """The registered validator ``name`` with ``params``; unknown names or parameters raise."""
    if name not in VALIDATORS:
        raise UnknownNameError(
            f"unknown validator {name!r}; available: {', '.join(VALIDATORS)}", setting="validators"
        )
    cls = VALIDATORS[name]
    _check_params(name, cls, params)
    try:
        return cls(**params)
    except TypeError as err:
        accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        raise BadParameterError(
            f"validator {name!r}: {err}; its parameters are {', '.join(accepted)}",
            setting="params",
        ) from None


def _check_params(name: str, cls: type, params: Mapping[str, Any]) -> None:
    """Raise when a parameter's value is not of the kind its default is (a number, a flag, a
    text) or outside the validator's ``param_ranges``: ``--param content.max_response_chars=abc``
    or ``=-10`` is caught here, not deep in numpy or as every pair flagged."""
    _check_types(name, cls, params)
    for key, (low, high) in cls.param_ranges.items():
        value = params.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = " and ".join(
                f"{word} {bound}"
                for word, bound in ((">=", low), ("<=", high))
                if bound is not None
            )
            raise BadParameterError(
                f"validator {name!r}: {key} must be {bounds}, got {value!r}", setting="params"
            )


def _check_types(name: str, cls: type, params: Mapping[str, Any]) -> None:
    defaults = inspect.signature(cls.__init__).parameters
    for key, value in params.items():
        default = defaults[key].default if key in defaults else None
        if default is None and key in defaults and value is not None:
            _check_container(name, key, str(defaults[key].annotation), value)
        if default is None or default is inspect.Parameter.empty:
            continue
        if isinstance(default, bool):
            kinds, wanted = (bool,), "true or false"
        elif isinstance(default, (int, float)):
            kinds, wanted = (int, float), "a number"
        elif isinstance(default, str):
            kinds, wanted = (str,), "a text"
        else:
            continue
        numeric_flag = isinstance(value, bool) and kinds != (bool,)
        if not isinstance(value, kinds) or numeric_flag:
            raise BadParameterError(
                f"validator {name!r}: {key} must be {wanted}, got {value!r}", setting="params"
            )


def _check_container(name: str, key: str, annotation: str, value: Any) -> None:
    """A parameter annotated as a mapping or a list (its default None) given something else."""
    for prefix, kind, wanted in (("dict[", dict, "a mapping"), ("list[", list, "a list")):
        if annotation.startswith(prefix) and not isinstance(value, kind):
            raise BadParameterError(
                f"validator {name!r}: {key} must be {wanted}, got {value!r}", setting="params"
            )


def empty_flags(index: pd.Index) -> pd.DataFrame:
    """A flags table with no issue for every pair of ``index``."""
    return pd.DataFrame(
        {
            "score": np.zeros(len(index)),
            "issue": np.zeros(len(index), dtype=bool),
            "reason": [""] * len(index),
        },
        index=index,
    )


def frame_to_json(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "index": [str(i) for i in frame.index],
        "columns": {c: _column_json(frame[c]) for c in frame.columns},
        "dtypes": {c: str(frame[c].dtype) for c in frame.columns},
    }


def frame_from_json(data: Mapping[str, Any]) -> pd.DataFrame:
    columns = {}
    for name, values in data["columns"].items():
        dtype = data["dtypes"][name]
        if dtype.startswith("float"):
            values = [np.nan if v is None else v for v in values]
        columns[name] = pd.Series(values, dtype=dtype)
    frame = pd.DataFrame(columns)
    frame.index = pd.Index(data["index"], dtype="str")
    return frame


def _column_json(series: pd.Series) -> list[Any]:
    if series.dtype.kind == "f":
        return [None if math.isnan(v) else float(v) for v in series.to_numpy()]
    return [_plain(v) for v in series.tolist()]


def _plain(value: Any) -> Any:
    """Numpy scalars to Python, NaN to None: metrics must survive JSON unchanged."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
