"""What leaves this machine: the export pack for a GNA machine (with its device script), the support bundle and
its ``reproduce.py``.
"""
