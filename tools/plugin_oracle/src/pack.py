#!/usr/bin/env python3
"""Pack the per-tag tables into the one file the emulator's tests read (tests/data/plugin_pwl_tables.json.xz).

Sections of ops the emulator does not build (Abs, Sign) are left out."""
import json
import lzma
import sys
from pathlib import Path

NOT_EMULATED = ("abs", "sign")


def main() -> None:
    out, dest, tags = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    tables = {}
    for tag in tags:
        data = json.loads((out / f"{tag}.json").read_text())
        tables[tag] = {k: v for k, v in data.items() if k not in NOT_EMULATED}
    raw = json.dumps(tables, separators=(",", ":")).encode()
    dest.write_bytes(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))
    print(f"wrote {dest} ({dest.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
