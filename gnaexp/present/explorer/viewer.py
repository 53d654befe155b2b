"""Model Explorer on a per-layer table: the model's graph with the table's node data, served from the installed
package on 127.0.0.1 (nothing is fetched from the network; see ``serve``).

``view(layers_json, model) -> url`` for a notebook: the server runs in a process of its own until this Python
process ends (or ``stop(url)``). ``start(...)`` returns the ``Viewer`` itself, for a command that serves until
Ctrl+C::

    viewer = start(out / "layers.json", model_path)
    print(f"Model Explorer: {viewer.url} (Ctrl+C stops it)")
    viewer.wait()

The node data go to ``explorer/`` beside the layers.json (a folder gnaexp owns: listed in the folder's manifest,
replaced whole on the next view, refused where a folder of that name is the user's), with the server's log.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gnaexp.core.errors import BadInput
from gnaexp.core.output_folder import publish_folder, shared_folder
from gnaexp.present.explorer import require
from gnaexp.present.explorer.layers_file import read_layers
from gnaexp.present.explorer.graph import node_ids
from gnaexp.present.explorer.node_data import NodeDataFiles, unmatched_layers, write_node_data

HOST = "127.0.0.1"
FOLDER = "explorer"
LOG = "server.log"
START_TIMEOUT = 120.0  # seconds for the server to answer; it loads Model Explorer's adapters (and torch) first
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a local server is never behind a proxy


@dataclass
class Viewer:
    """A running Model Explorer server: its page's URL, the node data it shows, its process."""

    url: str
    node_data: NodeDataFiles
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """Stop the server (its whole process group); nothing happens if it has stopped already."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        _running.pop(self.url, None)

    def wait(self) -> None:
        """Serve until Ctrl+C (or until the server stops), then stop it."""
        try:
            self.process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> "Viewer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


_running: dict[str, Viewer] = {}


@atexit.register
def _stop_all() -> None:
    for viewer in list(_running.values()):
        viewer.stop()


def _free_port(port: int | None) -> int:
    with socket.socket() as s:
        try:
            s.bind((HOST, port or 0))
        except OSError:
            raise BadInput(f"port {port} on {HOST} is in use: give another port, or none to take a free one") \
                from None
        return int(s.getsockname()[1])


def page_url(port: int, model_xml: Path, node_data: list[Path]) -> str:
    """The address of Model Explorer's page showing ``model_xml`` (with the IR adapter) and the node data."""
    from gnaexp.present.explorer.main import ADAPTER_ID

    data = {"models": [{"url": str(model_xml.absolute()), "adapterId": ADAPTER_ID}],
            "nodeData": [str(p.absolute()) for p in node_data], "nodeDataTargets": ["" for _ in node_data]}
    return f"http://{HOST}:{port}/?data={urllib.parse.quote(json.dumps(data))}"


def _prepare(layers: dict[str, Any], model_path: Path, folder: Path) -> tuple[Path, NodeDataFiles]:
    """Write the node data (and, for a model that is not an IR, the IR the adapter opens) into ``folder``."""
    from gnaexp.models.ir import save
    from gnaexp.models.model_files import read_model

    model = read_model(model_path)
    names = {row["layer"] for row in layers["rows"]}
    missing = unmatched_layers(layers, set(node_ids(model).values()))
    if names and len(missing) == len(names):  # the wrong model: a graph without one number on it
        raise BadInput(f"none of the {len(names)} layers of the table is an op of {model_path.name} (e.g. "
                       f"{missing[0]!r}): give the model the table was made from")
    with shared_folder(folder.parent, [folder.name], "layers folder"), \
            publish_folder(folder, "Model Explorer folder") as stage:
        xml = model_path if model_path.suffix.lower() == ".xml" else folder / "model.xml"
        if xml != model_path:
            save(model, stage / xml.name)
        written = write_node_data(layers, model, stage)
        (stage / LOG).touch()
    return xml, NodeDataFiles([folder / p.name for p in written.paths], written.unmatched)


def _wait_until_up(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            last = (log.read_text(encoding="utf-8", errors="replace").strip().splitlines() or ["(no output)"])[-1]
            raise OSError(f"Model Explorer stopped before serving (exit {process.returncode}): {last}; its log "
                          f"is {log}")
        try:
            with _DIRECT.open(f"http://{HOST}:{port}/check_health", timeout=2) as resp:
                if resp.read() == b"model_explorer_ok":
                    return
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    raise OSError(f"Model Explorer did not answer on {HOST}:{port} within {START_TIMEOUT:g} s; its log is {log}")


def start(layers_json: str | Path, model: str | Path, port: int | None = None) -> Viewer:
    """Serve ``model`` (an IR .xml, or any model file OpenVINO reads) with the node data of the table in
    ``layers_json``; returns once the page can be opened. ``port``: a free one where None."""
    require()
    layers_json, model = Path(layers_json), Path(model)
    layers = read_layers(layers_json)
    port = _free_port(port)
    folder = layers_json.absolute().parent / FOLDER
    xml, node_data = _prepare(layers, model, folder)
    log = folder / LOG
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), HOST, "localhost"]))}
    env["no_proxy"] = env["NO_PROXY"]  # the server checks its own health through requests, which reads both
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "gnaexp.present.explorer.serve", str(port)],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    try:
        _wait_until_up(process, port, log)
    except BaseException:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        raise
    viewer = Viewer(page_url(port, xml, node_data.paths), node_data, process, log)
    _running[viewer.url] = viewer
    return viewer


def view(layers_json: str | Path, model: str | Path, port: int | None = None) -> str:
    """Start Model Explorer on ``model`` with the node data of ``layers_json`` and return the page's URL; the
    server runs until this Python process ends, or ``stop(url)``."""
    return start(layers_json, model, port).url


def stop(url: str) -> None:
    """Stop the server ``view`` started for ``url``."""
    viewer = _running.get(url)
    if viewer is not None:
        viewer.stop()
