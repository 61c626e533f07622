"""ntirekit: package, measure, rank and submit NTIRE-style image and video restoration entries.

Import what you need from the submodules (``ntirekit.core.spec``, ``ntirekit.quality``, ``ntirekit.measure``, ...); this
package imports nothing heavy at import time.
"""

__version__ = "0.1.0"
