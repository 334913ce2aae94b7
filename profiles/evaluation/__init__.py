"""Offline evaluation of the per-user profiles on labelled recordings."""
