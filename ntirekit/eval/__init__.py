"""Evaluation: tracks declared as :class:`~ntirekit.eval.track.Track` objects (:mod:`.tracks`), the runner
(:mod:`.runner`), isolated execution (:mod:`.isolate`), the load probe (:mod:`.probe`), the one measuring pipeline
(:mod:`.pipeline`), image and clip inference (:mod:`.inference`, :mod:`.clip_inference`) and ``regress``."""
