"""What every script gnaexp ships shares: the one-line exit (never a traceback), the IR check, the input fingerprint.

Not shipped as a file: ``gnaexp.support.device_scripts`` writes the code below the marker line into each script that
imports from here, so every script is one self-contained file. Python 3.7 syntax, NumPy and the standard library.
"""
import hashlib
import sys
import xml.etree.ElementTree as ET

import numpy as np

SCRIPT = "device_common.py"  # stands in for the name each script gives itself, when this file is read alone

# ---- shipped from here ----


def fail(message, code=2):
    print(SCRIPT + ": " + message, file=sys.stderr)
    sys.exit(code)


def run_main(main):
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:  # noqa — one line, whatever failed: the script is read by people, not by code
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        fail("failed: %s: %s" % (type(exc).__name__, text[:400]), 1)


def check_ir(xml, shown, fix):
    """OpenVINO would try every frontend on a file that is not an IR, and they log before its error: say it here."""
    try:
        if ET.parse(str(xml)).getroot().tag != "net":
            raise ET.ParseError("its root element is not <net>")
    except (OSError, ET.ParseError) as exc:
        fail("%s is not an OpenVINO IR (%s): %s" % (shown, exc, fix))


def short(exc, limit=300):
    """An OpenVINO error on one line; its end says what went wrong."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else "..." + text[-limit:]


def input_fingerprint(arrays):
    """gnaexp.core.inputs.fingerprint: names, dtypes, shapes and bytes of the inputs."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(("%s|%s|%s|" % (name, a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]
