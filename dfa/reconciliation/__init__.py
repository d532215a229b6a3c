"""The daily reconciliation job, signed reports, breach handling, holder inclusion proofs."""
