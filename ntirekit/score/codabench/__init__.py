"""Codabench, for a challenge's validation phase: the scoring program (:mod:`.scoring_program`, made of
:mod:`.program` and the kit's scoring code) and the competition bundle (:mod:`.bundle`)."""
