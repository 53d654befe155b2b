"""Streaming speech detection on Silero VAD: audio files in, the step's IR and streaming (``stream``), the
experiment's run over files (``run``), its metrics and its ground truth.
"""
