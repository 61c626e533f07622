"""Running untrusted code: the bubblewrap sandbox's command line (:mod:`ntirekit.sandbox.bwrap`) and bounded capture
of a child's output (:mod:`ntirekit.sandbox.capture`). Nothing here imports torch."""
