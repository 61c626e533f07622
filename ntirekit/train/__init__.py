"""Training and fine-tuning: a generic loop (:mod:`ntirekit.train.loop`: batch source + loss, Adam, cosine schedule,
validation, resumable checkpoints), image SR data (:mod:`ntirekit.train.data`), losses (:mod:`ntirekit.train.losses`)
and the entry-level glue (:mod:`ntirekit.train.image`). Import the submodules you need.
"""
