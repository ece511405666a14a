"""Helpers importable by the CLIs that tests start in subprocesses (``--trainer.callbacks+=tests.helpers...``)."""
