"""The Model Explorer adapter extension for OpenVINO IR (.xml with its .bin): Model Explorer imports this module
when started with ``extensions=["gnaexp.present.explorer"]`` (its ``--extensions`` option), and opens every
.xml it is given with this adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model_explorer import Adapter, AdapterMetadata

from gnaexp.models.model_files import read_model
from gnaexp.present.explorer.graph import build_graph

ADAPTER_ID = "gnaexp_openvino_ir"


class OpenVinoIrAdapter(Adapter):
    """OpenVINO IR → one Model Explorer graph (see ``gnaexp.present.explorer.graph``)."""

    metadata = AdapterMetadata(
        id=ADAPTER_ID,
        name="OpenVINO IR adapter (gnaexp)",
        description="Opens OpenVINO IR files (.xml and .bin): one node per op, named by its friendly name.",
        fileExts=["xml"],
    )

    def convert(self, model_path: str, settings: dict[str, Any]) -> dict[str, Any]:
        return {"graphs": [build_graph(read_model(model_path), Path(model_path).stem)]}
