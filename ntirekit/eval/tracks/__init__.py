"""The tracks ``ntirekit eval --track NAME`` runs: every module of this package declares its own.

Adding a track is adding one module here with a module-level ``TRACKS`` tuple of :class:`ntirekit.eval.track.Track`
objects; this package finds the modules itself (:func:`pkgutil.iter_modules`), so nothing else is edited.
"""

from __future__ import annotations

import importlib
import pkgutil

from ntirekit.core.errors import OptionError
from ntirekit.eval.track import Track

__all__ = ["TRACKS", "get_track", "register"]

#: track name -> its declaration, in module then declaration order
TRACKS: dict[str, Track] = {}


def register(track: Track) -> None:
    """Add a track (the modules of this package are registered on import; tests and plug-ins may add more)."""
    if track.name in TRACKS and TRACKS[track.name] is not track:
        raise OptionError(f"two tracks are named {track.name!r}")
    TRACKS[track.name] = track


def get_track(name: str) -> Track:
    """The declaration of track ``name``; an unknown name is an :class:`OptionError` listing the known ones."""
    try:
        return TRACKS[name]
    except KeyError:
        raise OptionError(f"unknown track {name!r} (known: {', '.join(TRACKS)})") from None


# Discovery by module listing is deliberate: it is what makes a new track one module.
for _info in pkgutil.iter_modules(__path__, prefix=f"{__name__}."):
    for _track in getattr(importlib.import_module(_info.name), "TRACKS", ()):
        register(_track)
