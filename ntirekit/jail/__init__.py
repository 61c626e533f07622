"""The jail: runs one kit function, which may run team code, in a sandbox with kernel limits, and moves bytes.

:class:`~ntirekit.jail.run.Jail` (start, limits, report), :mod:`~ntirekit.jail.channel` (framed messages over pipes),
:mod:`~ntirekit.jail.bwrap` (the bubblewrap sandbox), :mod:`~ntirekit.jail.cgroup` (memory and pids limits),
:mod:`~ntirekit.jail.capture` (bounded output capture), :mod:`~ntirekit.jail.child` (the child's side). It knows
nothing of entries, tracks or figures.
"""
