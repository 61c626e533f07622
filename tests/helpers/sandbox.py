"""The sandbox a jailed entry's record must name on this machine: bwrap wherever bwrap works (CI included), the plain
child process only where it does not, so a silently broken bwrap fails the tests that expect it."""
from __future__ import annotations

from ntirekit.jail.bwrap import bwrap_problem

EXPECTED_SANDBOX = "bwrap" if bwrap_problem() is None else "process"
