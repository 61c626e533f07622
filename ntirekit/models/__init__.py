"""Every network the kit ships, one module per family; a module holds the network and nothing else.

Baseline entries name these factories in their ``entry.toml`` (``factory = "ntirekit.models.rlfn:RLFN"``); a team
entry ships its own ``model.py`` and may build on them. Blocks the networks share live in :mod:`ntirekit.nn`.
Nothing is imported here: ``import ntirekit.models.span`` loads one family only.
"""
