"""Conformance: local stand-in images and replay of recorded container specs on Docker."""
