"""The per-layer table on the graph, in Model Explorer (``ai-edge-model-explorer``, an optional package).

- ``graph``: an OpenVINO model as a Model Explorer graph (one node per op, named by its friendly name).
- ``main``: the adapter extension that opens OpenVINO IR files (.xml) in Model Explorer with that graph; any
  Model Explorer started with ``--extensions=gnaexp.present.explorer`` opens IRs with it.
- ``layers_file``: the checked reader of a per-layer table (``layers.json``).
- ``node_data``: the table as Model Explorer node data, per backend: accumulated and local SQNR per node,
  red below the backend's threshold and green above it.
- ``viewer``: Model Explorer served from the installed package on 127.0.0.1 (nothing fetched from the network;
  ``serve`` is the server's process), showing a model with the node data of its table:
  ``view(layers_json, model) -> url``, or ``start(...)`` for a command that serves until Ctrl+C.

Model Explorer is imported only when a graph, node data or the server is made; ``require()`` names the package
to install where it is missing (a BadInput, exit 2).
"""

from __future__ import annotations

import importlib.util

from gnaexp.core.errors import BadInput

PACKAGE = "ai-edge-model-explorer"
INSTALL = "pip install 'gnaexp[explorer]' (requirements.txt installs it too)"


def require(what: str = "the Model Explorer view") -> None:
    """BadInput naming the package and how to install it, where Model Explorer is not installed."""
    try:
        found = importlib.util.find_spec("model_explorer") is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken install
        found = False
    if not found:
        raise BadInput(f"{what} needs {PACKAGE}, which is not installed here: {INSTALL}")
