"""What a track is: a :class:`Track` declares everything the runner, the isolation layer and the CLI need to know.

A track is one module in :mod:`ntirekit.eval.tracks` holding a module-level ``TRACKS`` tuple of :class:`Track`
objects. Each declares its name, the entries it takes (``esr`` or ``vqe``), whether it times, its typed options (keys of
:attr:`EvalOptions.extra`, checked before it runs), its default dataset, the fields every successful record carries
(its record schema) and the columns of the closing table. Its ``evaluate(entries, options)`` yields one result
record per entry (see :mod:`ntirekit.core.records`), failed entries included, as soon as each is known.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ntirekit.core.errors import OptionError
from ntirekit.core.records import split_of
from ntirekit.core.spec import Entry

__all__ = ["EvalOptions", "TrackOption", "Column", "Track", "Evaluate", "options_from_dict"]


@dataclass
class EvalOptions:
    """Everything ``eval`` can be told; each track reads the fields it needs.

    Units: times in milliseconds, memory in MiB, ``tile`` and ``tile_overlap`` in LR pixels. ``data=None`` takes the
    track's :attr:`Track.default_data`; ``split=None`` the split the dataset's name says
    (:func:`ntirekit.core.records.split_of`).
    """

    track: str = "psnr"
    data: str | None = None
    split: str | None = None             # "valid" | "test"; None: the dataset's name says (core.records.split_of)
    protocol: str = "challenge"          # quality protocol: challenge (RGB) | paper (Y)
    device: str = "auto"
    tile: int | None = None
    tile_overlap: int = 16
    timer: str = "robust"                # robust | ntire
    warmup: int = 3
    repeats: int = 5
    runs: int = 1
    input_shape: tuple[int, int, int, int] = (1, 3, 256, 256)
    threads: int | None = None
    weights: dict[str, str] = field(default_factory=dict)   # entry name -> explicit checkpoint
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)     # track-specific options (Track.options)
    #: jail limits for untrusted entries: seconds after start-up (None: scaled to the work) and MiB (None: half the
    #: machine); ``isolate``: None jails untrusted entries only, True every entry
    timeout_s: float | None = None
    memory_mb: int | None = None
    isolate: bool | None = None


def options_from_dict(data: dict[str, Any]) -> EvalOptions:
    """An :class:`EvalOptions` from its ``asdict`` form (unknown keys ignored, tuples restored)."""
    defaults = EvalOptions()
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(EvalOptions):
        if f.name in data:
            value = data[f.name]
            kwargs[f.name] = tuple(value) if isinstance(getattr(defaults, f.name), tuple) and value is not None \
                else value
    return EvalOptions(**kwargs)


Evaluate = Callable[[list[Entry], EvalOptions], Iterator[dict[str, Any]]]


@dataclass(frozen=True)
class TrackOption:
    """One typed track option: a key of :attr:`EvalOptions.extra`.

    ``type`` is ``int``, ``float``, ``bool`` or ``str``; ``default=None`` means "the track decides" (said in
    ``help``). ``flag`` is the ``eval`` command-line flag (None: Python API only); with ``negate`` the flag is an
    on/off switch that sets the option to False.
    """

    name: str
    type: type
    default: Any
    help: str
    flag: str | None = None
    negate: bool = False

    def check(self, value: Any) -> Any:
        """``value`` as this option's type; anything else is an :class:`OptionError`."""
        if value is None:
            return None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise OptionError(f"option {self.name!r} takes {self.type.__name__}, got {value!r}")
        return value


@dataclass(frozen=True)
class Column:
    """One column of the closing table: its header and how a successful record fills it."""

    header: str
    cell: Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class Track:
    """A track's declaration (see the module docstring)."""

    name: str
    evaluate: Evaluate
    entries: str                                   # the entry track it takes: "esr" | "vqe"
    times: bool                                    # measures time
    record_fields: tuple[str, ...]                 # fields every successful record carries
    columns: tuple[Column, ...] = ()
    options: tuple[TrackOption, ...] = ()
    default_data: str = "sample"
    leaderboard: bool = False                      # eval closes with the protocol's leaderboard
    #: its figures depend on the weights (a quality track): ``eval`` leaves out entries without weights unless
    #: ``--allow-random``
    needs_weights: bool = False
    #: fields some of its records carry besides ``record_fields``
    optional_fields: tuple[str, ...] = ()
    description: str = ""
    #: opens ``(data, scale)`` cheaply before any entry runs, so that a bad dataset is one error, not one per entry
    check_data: Callable[[str, int], Any] | None = None

    def takes(self, entry: Entry) -> bool:
        """Whether this track runs ``entry``."""
        return entry.spec.track == self.entries

    def check_extra(self, extra: dict[str, Any]) -> dict[str, Any]:
        """``extra`` with every key declared and every value of its declared type (an :class:`OptionError` names
        the first that is not)."""
        declared = {o.name: o for o in self.options}
        unknown = sorted(set(extra) - set(declared))
        if unknown:
            known = ", ".join(declared) or "none"
            raise OptionError(f"the {self.name} track has no option {unknown[0]!r} (its options: {known})")
        return {k: declared[k].check(v) for k, v in extra.items()}

    def resolve(self, options: EvalOptions) -> EvalOptions:
        """``options`` ready for this track: its default dataset and the split its name says filled in, its
        ``extra`` checked."""
        if options.track != self.name:
            raise OptionError(f"options for track {options.track!r} given to track {self.name!r}")
        if options.split not in (None, "valid", "test"):
            raise OptionError(f"split {options.split!r}: valid or test")
        data = self.default_data if options.data in (None, "") else options.data
        return dataclasses.replace(options, data=data, split=options.split or split_of(Path(str(data)).name),
                                   extra=self.check_extra(dict(options.extra or {})))
