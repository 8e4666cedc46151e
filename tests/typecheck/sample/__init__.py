"""The sample app: typed models, correct code (``correct.py``), mistakes (``mistakes.py``)."""
