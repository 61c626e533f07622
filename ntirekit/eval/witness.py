"""The organizer's own clock on an isolated child's timed calls, and the rule that marks an implausible timing suspect.

A child that times (the ``runtime`` and ``overall`` tracks) writes one byte before and one after every timed call
(:func:`ntirekit.measure.runtime.witness_to`: ``+`` and ``-``, outside the timed region) to a pipe it inherits; this
process reads the pipe in a thread and timestamps each byte with its own ``perf_counter_ns``. An honest timing sits
inside the witnessed interval, so its sum is at most the witnessed sum plus the pipe's latency.

**Rule** (:func:`timing_verdict`). A record is ``"suspect"`` (not ranked; kept beside any good record) when

- the number of timed calls it reports differs from the number of ``+``/``-`` pairs witnessed, or the pipe carried
  any other byte; or
- its timings sum to less than :data:`SUSPECT_RATIO` (one half) of the witnessed time minus :data:`SLACK_MS_PER_CALL`
  (1 ms) per call: claiming to be more than twice as fast as the organizer's clock saw. The slack keeps a nearly
  free model (where pipe and thread wake-up latency, tens of microseconds, is most of the witnessed interval) from
  being flagged.

The record then says ``"timing_witness": {"reported_ms", "witnessed_ms", "calls", "witnessed_calls"}`` (on every
witnessed record, suspect or not) and ``error`` names the figures. What the rule catches: patched clocks (``time``,
CUDA events, the kit's own bound clocks), forged timing statistics, timings scaled down. What it cannot catch alone:
an entry that takes over the kit's code inside its sandbox and writes the witness bytes itself without doing the
work between them; its timed outputs are not compared with the scored ones.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

SUSPECT_RATIO = 0.5
SLACK_MS_PER_CALL = 1.0

_OPEN, _CLOSE = ord("+"), ord("-")


class Witness:
    """A pipe whose write end a child inherits (:attr:`fd`), read and timestamped in a thread of this process.

    Use: create, pass :attr:`fd` to the child (``pass_fds``), :meth:`start` after the child started (closes this
    process's copy of the write end), :meth:`stop` after the child ended. Memory stays constant whatever the child
    writes."""

    def __init__(self) -> None:
        self._read_fd, self.fd = os.pipe()
        self.calls = 0
        self.junk = 0
        self._ns = 0
        self._thread = threading.Thread(target=self._read, name="ntirekit-witness", daemon=True)

    @property
    def witnessed_ms(self) -> float:
        return self._ns / 1e6

    def start(self) -> None:
        os.close(self.fd)
        self._thread.start()

    def stop(self) -> None:
        self._thread.join(timeout=10)
        try:
            os.close(self._read_fd)
        except OSError:
            pass

    def close_unstarted(self) -> None:
        """Close both ends when the child could not be started."""
        for fd in (self.fd, self._read_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def _read(self) -> None:
        opened: int | None = None
        while True:
            try:
                chunk = os.read(self._read_fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.perf_counter_ns()
            for byte in chunk:
                if byte == _OPEN and opened is None:
                    opened = now
                elif byte == _CLOSE and opened is not None:
                    self._ns += now - opened
                    self.calls += 1
                    opened = None
                else:
                    self.junk += 1


def timing_verdict(record: dict[str, Any], witness: Witness) -> dict[str, Any]:
    """``record`` with ``timing_witness`` added, and marked ``"suspect"`` by the module's rule where its timings are
    implausible against ``witness``. Records without ``runtime_ms`` statistics, and failed ones, pass unchanged."""
    stats = record.get("runtime_ms")
    if record.get("status") != "ok" or not isinstance(stats, dict):
        return record
    reported, calls = stats.get("total"), stats.get("n")
    witnessed = witness.witnessed_ms
    record["timing_witness"] = {"reported_ms": reported, "witnessed_ms": round(witnessed, 6), "calls": calls,
                                "witnessed_calls": witness.calls}
    problems: list[str] = []
    if not isinstance(reported, (int, float)) or not math.isfinite(reported) or not isinstance(calls, int):
        problems.append("the record has no finite timing total and call count")
    elif calls != witness.calls:
        problems.append(f"{calls} timed calls reported, {witness.calls} witnessed")
    elif reported < SUSPECT_RATIO * witnessed - SLACK_MS_PER_CALL * calls:
        problems.append(f"timings sum to {reported:.3f} ms, the organizer's clock saw {witnessed:.3f} ms "
                        f"(rule: at least {SUSPECT_RATIO:g} x witnessed - {SLACK_MS_PER_CALL:g} ms per call)")
    if witness.junk:
        problems.append(f"{witness.junk} unexpected bytes on the timing witness")
    if problems:
        record.update(status="suspect", failure_kind="suspect", error="suspect timing: " + "; ".join(problems))
    return record
