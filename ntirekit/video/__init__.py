"""Video entries' machinery: propagation index rules (BasicVSR++, PQF), the BasicVSR++ family of networks, and
inference over long clips (duplicate removal, padding, chunks with overlap)."""
