"""Experiments that measure a paper's claims end to end (train, then check against theory)."""
