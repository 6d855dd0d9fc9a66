"""Observing a running program: the run, its loops and values, and its context."""
