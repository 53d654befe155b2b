"""The nets: the forum's three torch modules, Silero VAD as a torch module, a user's model file (any format
OpenVINO reads), the IR export and fingerprints, NNCF post-training quantization, the real-model catalog.
"""
