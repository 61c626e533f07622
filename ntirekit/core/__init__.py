"""The core every other layer builds on: entry specs (:mod:`.spec`), discovery (:mod:`.registry`), weights
(:mod:`.weights`), result records (:mod:`.records`), device fingerprints (:mod:`.device`), TOML (:mod:`.tomlw`) and
the exception tree (:mod:`.errors`). Nothing here imports a higher layer."""
