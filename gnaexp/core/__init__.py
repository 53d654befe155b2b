"""Settings and their checks, inputs, files, records, metrics and the environment: what every other part uses.

No module here imports a model library, a backend, the emulator or anything that draws.
"""
