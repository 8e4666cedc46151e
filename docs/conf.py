"""Sphinx configuration of dualcall's documentation (``make docs``)."""

from __future__ import annotations

import os
import sys

# dualcall's modules import Django; give them settings of their own.
sys.path.insert(0, os.path.abspath(".."))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docs.django_settings")
import django

django.setup()

import dualcall  # noqa: E402

project = "dualcall"
author = "the dualcall maintainers"
copyright = "2026, the dualcall maintainers"
release = dualcall.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"dualcall {release}"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# The Django and Python inventories cannot be fetched here (no network at
# build time): cross-references to them are written as plain literals.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
nitpicky = False
myst_heading_anchors = 3
# README sections are included as topic pages: they start at "##".
suppress_warnings = ["myst.header"]
