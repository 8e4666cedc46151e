"""The site ``bench/view_bench.py`` serves under uvicorn: one view, written three ways."""
