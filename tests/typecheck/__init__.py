"""A typed sample project that mypy checks with ``plugins = dualcall.mypy``.

``check.py`` runs mypy on ``sample/`` and compares its output with the
``# E:`` / ``# N:`` expectations written in the sample files.
"""
