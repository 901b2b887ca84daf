"""Checkers, one module per course module, named by its slug (``validation.py`` ...)."""
