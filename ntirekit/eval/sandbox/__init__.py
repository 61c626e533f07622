"""Running untrusted code: the bubblewrap sandbox's command line (:mod:`ntirekit.eval.sandbox.bwrap`) and bounded capture
of a child's output (:mod:`ntirekit.eval.sandbox.capture`). Nothing here imports torch."""
