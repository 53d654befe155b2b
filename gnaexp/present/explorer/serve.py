"""The Model Explorer server process (``python -m gnaexp.present.explorer.serve PORT``): the installed package's
web app on 127.0.0.1:PORT with the OpenVINO IR adapter, until the process is stopped.

Offline: Model Explorer's server asks PyPI and GitHub for a newer release whenever the page loads, and its page
names Google's font server ahead of the same fonts it ships. Both are turned off here: the version check answers
"no news" without a request, and the page is served without the remote font faces, so that the browser takes
the package's own copies and nothing leaves the machine.
"""

from __future__ import annotations

import re
import sys
from typing import Any

_REMOTE_FONT_FACE = re.compile(r"@font-face\{[^}]*https://fonts\.gstatic\.com[^}]*\}")
_REMOTE_PRECONNECT = re.compile(r"<link rel=\"preconnect\" href=\"https://fonts\.gstatic\.com\"[^>]*>")


def offline_index(html: str) -> str:
    """The web app's index.html without the font faces and the preconnect that point at fonts.gstatic.com."""
    return _REMOTE_PRECONNECT.sub("", _REMOTE_FONT_FACE.sub("", html))


def _stay_offline(server: Any) -> None:
    import flask

    with open(f"{server.OSS_WEB_APP_DIR}/index.html", encoding="utf-8") as f:
        index = offline_index(f.read())
    serve_asset = server._serve_static_asset

    def serve_static_asset(rel_path: str) -> Any:
        if rel_path == "index.html":
            return flask.Response(index, mimetype="text/html")
        return serve_asset(rel_path)

    server._serve_static_asset = serve_static_asset
    server._check_new_version = lambda print_msg=True: {"version": "", "runningVersion": "", "releaseUrl": "",
                                                         "desktopAppUrl": ""}


def main(argv: list[str]) -> None:
    import model_explorer
    from model_explorer import server

    _stay_offline(server)
    model_explorer.visualize_from_config(config=None, host="127.0.0.1", port=int(argv[0]),
                                         extensions=["gnaexp.present.explorer"], no_open_in_browser=True)


if __name__ == "__main__":
    main(sys.argv[1:])
