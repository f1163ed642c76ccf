"""Experiment trackers: every line of metrics.jsonl also goes to TensorBoard, Weights & Biases
or trackio (``report_to``), at its optimizer step and under the name the Hugging Face Trainer
gives TRL's metrics there: the line's split, then its key (``train/loss``,
``eval/rewards/accuracies``), so prefaudit's runs and TRL's compare in one dashboard.

Where each writes (the process that writes the run's files, rank 0 under torchrun):

- ``tensorboard``: ``OUT/tensorboard/`` (``tensorboard --logdir OUT``). A run from step 0
  replaces the folder; a resumed run drops the events after its checkpoint (``purge_step``).
- ``wandb``: ``OUT/wandb/`` (``$WANDB_DIR`` when set), project ``$WANDB_PROJECT`` or
  ``prefaudit``. Online when W&B has credentials (``wandb login``, ``WANDB_API_KEY``),
  offline otherwise, so it never asks for a login nor waits for the network; ``WANDB_MODE``
  decides when set. A resumed run continues the same W&B run.
- ``trackio``: trackio's own local store (``$TRACKIO_DIR``, by default
  ``~/.cache/huggingface/trackio``; ``trackio show --project prefaudit``). A resumed run
  continues the run of the same name.

The runs' ids are kept in ``OUT/trackers.json`` for ``--resume``. Nothing here is imported
before a tracker is opened: the CLI reads :data:`TRACKERS` for its flags.
"""

from __future__ import annotations

import numbers
import os
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from prefaudit.errors import SettingError

# Each tracker: the package it needs and the oldest version accepted (as in pyproject.toml's
# `trackers` extra).
TRACKERS = {
    "tensorboard": ("tensorboard", "1.15"),  # what torch.utils.tensorboard itself asks for
    "wandb": ("wandb", "0.31"),  # wandb.login(prompt=False): credentials, never a prompt
    "trackio": ("trackio", "0.43"),  # the oldest tried (its API moves quickly)
}
PROJECT = "prefaudit"  # the W&B (unless $WANDB_PROJECT) and trackio project
_INSTALL = "pip install 'prefaudit[trackers]' installs all three"


def tracker_names(report_to: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``report_to`` as a list of tracker names, read as transformers reads its ``report_to``:
    ``"none"`` (or None) is none, ``"all"`` every tracker whose package is installed, else a
    name or a list of names; names may also be comma-separated (the flag's form).

    >>> tracker_names("tensorboard,wandb"), tracker_names("none"), tracker_names(["trackio"])
    (['tensorboard', 'wandb'], [], ['trackio'])
    """
    items = [report_to or "none"] if report_to is None or isinstance(report_to, str) else report_to
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise SettingError(f"report_to must be tracker names, got {report_to!r}")
    names: list[str] = []
    for item in items:
        for name in item.split(","):
            name = name.strip().lower()
            if name == "all":
                names += [n for n in TRACKERS if _installed(n) is not None]
            elif name in TRACKERS:
                names.append(name)
            elif name not in ("none", ""):
                raise SettingError(
                    f"report_to must be {', '.join(TRACKERS)}, all or none, got {name!r}",
                    setting="report_to",
                )
    return list(dict.fromkeys(names))  # each once, in the order given


def require(names: list[str]) -> None:
    """Refuse, before any work, a tracker whose package is missing or too old, naming the
    ``pip install`` that brings it (read from the installed packages' metadata: nothing is
    imported)."""
    for name in names:
        package, oldest = TRACKERS[name]
        version = _installed(name)
        if version is None:
            problem = f"the {package} package is not installed"
        elif _release(version) < _release(oldest):
            problem = f"{package} {version} is installed; prefaudit needs {package} >= {oldest}"
        else:
            continue
        raise SettingError(
            f"report_to {name}: {problem}: pip install -U '{package}>={oldest}' ({_INSTALL})",
            setting="report_to",
        )


def _installed(name: str) -> str | None:
    try:
        return metadata.version(TRACKERS[name][0])
    except metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


class Trackers:
    """The trackers of one run: :meth:`log` each metrics line, :meth:`close` at the end."""

    def __init__(self, opened: dict[str, Any]):
        self.opened = opened  # name: its tracker

    @classmethod
    def open(
        cls,
        names: list[str],
        out: Path,
        config: dict[str, Any],
        *,
        start: int,
        name: str,
        group: str | None = None,
    ) -> Trackers:
        """Open ``names`` for the run in ``out`` (``config``: its settings, logged as the
        run's hyperparameters); ``start`` > 0 continues the runs of ``OUT/trackers.json``."""
        from prefaudit.fileio import write_json
        from prefaudit.outputs import TRACKERS_FILE

        require(names)
        out.mkdir(parents=True, exist_ok=True)
        saved = _read_ids(out / TRACKERS_FILE) if start else {}
        opened: dict[str, Any] = {}
        for tracker in names:
            try:
                opened[tracker] = _OPENERS[tracker](
                    out, config, start=start, name=name, group=group, resumed=saved.get(tracker)
                )
            except BaseException as err:
                cls(opened).close(failed=True)
                # The library's own error or the system's (an online W&B run without the
                # network, a key W&B refused): the user's setup, said as such (exit 2).
                library = type(err).__module__.split(".")[0] == TRACKERS[tracker][0]
                if not (library or isinstance(err, OSError)):
                    raise
                raise SettingError(
                    f"report_to {tracker}: could not start a run ({type(err).__name__}: {err})",
                    setting="report_to",
                ) from err
        write_json(out / TRACKERS_FILE, {n: t.resume_id for n, t in opened.items()})
        return cls(opened)

    def log(self, step: int, split: str, values: dict[str, Any]) -> None:
        """One metrics line: its numbers as ``split/key`` at ``step``."""
        scalars = {
            f"{split}/{key}": float(value)
            for key, value in values.items()
            if isinstance(value, numbers.Real) and not isinstance(value, bool)
        }
        for tracker in self.opened.values():
            tracker.log(step, scalars)

    def where(self) -> dict[str, str]:
        """Where each tracker wrote and how to look, one line each."""
        return {name: tracker.where() for name, tracker in self.opened.items()}

    def close(self, *, failed: bool = False) -> None:
        for tracker in self.opened.values():
            tracker.close(failed)


def _read_ids(path: Path) -> dict[str, Any]:
    import orjson

    try:
        saved = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):  # none, or a run killed while writing it
        return {}
    return saved if isinstance(saved, dict) else {}


class _TensorBoard:
    def __init__(
        self, out: Path, config: dict[str, Any], *, start: int, group: str | None, **_: Any
    ):
        from torch.utils.tensorboard import SummaryWriter

        from prefaudit.outputs import TENSORBOARD_FOLDER

        self.folder, self.resume_id = out / TENSORBOARD_FOLDER, None
        # A group's runs (clean-then-train's train/ and train-raw/) show together from the
        # folder that holds them.
        self.logdir = out.parent if group else out
        # A resumed run starts after its checkpoint's step: readers drop the events a killed
        # run logged from the next step on (they are logged again), as metrics.jsonl does.
        self.writer = SummaryWriter(str(self.folder), purge_step=start + 1 if start else None)
        rows = "\n".join(f"| {key} | {value} |" for key, value in config.items())
        self.writer.add_text("config", f"| setting | value |\n| --- | --- |\n{rows}", start)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()  # a dashboard open beside the run sees each line as it comes

    def where(self) -> str:
        return f"{self.folder} (tensorboard --logdir {self.logdir})"

    def close(self, failed: bool) -> None:
        self.writer.close()


class _Wandb:
    def __init__(
        self,
        out: Path,
        config: dict[str, Any],
        *,
        name: str,
        group: str | None,
        resumed: str | None,
        **_: Any,
    ):
        import wandb

        mode = None  # wandb's own choice: $WANDB_MODE, `wandb offline`, else online
        if not os.environ.get("WANDB_MODE") and not wandb.login(prompt=False, verify=False):
            mode = "offline"  # no credentials: never a login prompt, never the network
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or PROJECT,
            name=name,
            group=group,
            config=config,
            dir=None if os.environ.get("WANDB_DIR") else str(out),
            id=resumed,
            resume="allow" if resumed else None,
            reinit="create_new",  # clean-then-train's two runs are two W&B runs
            mode=mode,
        )
        self.resume_id = self.run.id
        # The Hugging Face Trainer's x axis: a resumed run's steps after its checkpoint come
        # again, which W&B's own step (only ever increasing) would drop.
        self.run.define_metric("train/global_step")
        self.run.define_metric("*", step_metric="train/global_step", step_sync=True)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log({**scalars, "train/global_step": step})

    def where(self) -> str:
        mode, folder = self.run.settings.mode, self.run.settings.sync_dir
        if mode == "disabled":
            return "disabled (WANDB_MODE=disabled): nothing written"
        if mode == "offline" or not self.run.url:
            return f"offline in {folder} (upload: wandb sync {folder})"
        return str(self.run.url)

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


class _Trackio:
    def __init__(
        self,
        out: Path,
        config: dict[str, Any],
        *,
        name: str,
        group: str | None,
        resumed: str | None,
        **_: Any,
    ):
        import trackio

        self.run = trackio.init(
            project=PROJECT,
            name=resumed or name,
            group=group,
            config=config,
            resume="allow" if resumed else "never",
            embed=False,  # no dashboard server started from a notebook
        )
        self.resume_id = self.run.name

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log(scalars, step=step)

    def where(self) -> str:
        return f"run {self.run.name} (trackio show --project {PROJECT})"

    def close(self, failed: bool) -> None:
        import trackio

        trackio.finish()  # the current run: this one (a trackio.init finishes the one before)


_OPENERS = {"tensorboard": _TensorBoard, "wandb": _Wandb, "trackio": _Trackio}
