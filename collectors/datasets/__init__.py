"""Readers for public research recordings, returning plain numpy arrays.

Used offline (evaluation, replay); nothing at run time depends on them.
"""
