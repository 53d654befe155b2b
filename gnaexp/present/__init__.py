"""Figures and text from results, no computing: every notebook's view (experiments, diagnosis, models, POT,
VAD), tables and HTML (``markup``), plots, the explorer widgets, the index entries (``pages``).
"""
