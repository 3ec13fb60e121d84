"""Offline tooling for the hospital program: preview under mocks, and the commands built on it.

`python -m tools plan --stack dev` runs the program without an engine and shows what it makes.
"""
