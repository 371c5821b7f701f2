"""Targets: the server under test, launched (bentoml, command) or attached to (url)."""
