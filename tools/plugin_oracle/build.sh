#!/usr/bin/env bash
# The GNA plugin's own PWL code, compiled per release tag, run over a grid: out/<tag>.json, then the packed
# tables the emulator's tests compare with (tests/data/plugin_pwl_tables.json.xz). See README.md.
#   OPENVINO_GIT=/path/to/openvino.git tools/plugin_oracle/build.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-python3}"
: "${OPENVINO_GIT:?set OPENVINO_GIT to a git repository of OpenVINO that has the tags 2022.3.0, 2023.0.0, 2023.1.0}"
export OPENVINO_GIT
TAGS=(2022.3.0 2023.0.0 2023.1.0)
CXXFLAGS=(-O2 -std=c++17 -ffp-contract=off -w)
mkdir -p "$ROOT/out"
for TAG in "${TAGS[@]}"; do
    B="$ROOT/build/$TAG"
    rm -rf "$B"
    echo "[$TAG] extracting"
    "$PY" "$ROOT/src/extract.py" "$TAG" "$B"
    INC=(-I"$B/tree" -I"$ROOT/src/shim/include" -I"$ROOT/src/shim")
    OBJS=()
    mapfile -t TUS < "$B/tus.txt"
    TUS+=("$ROOT/src/oracle_main.cpp")
    for tu in "${TUS[@]}"; do
        o="$B/obj/$(basename "${tu%.cpp}").o"
        mkdir -p "$B/obj"
        echo "[$TAG] g++ ${CXXFLAGS[*]} -c ${tu#$ROOT/}"
        g++ "${CXXFLAGS[@]}" "${INC[@]}" -c "$tu" -o "$o"
        OBJS+=("$o")
    done
    g++ "${CXXFLAGS[@]}" "${OBJS[@]}" -o "$B/oracle"
done
echo "[all] generating JSON"
"$PY" "$ROOT/src/generate.py" "$ROOT" "${TAGS[@]}"
"$PY" "$ROOT/src/compare.py" "$ROOT" "${TAGS[@]}" > /dev/null
"$PY" "$ROOT/src/pack.py" "$ROOT/out" "$ROOT/../../tests/data/plugin_pwl_tables.json.xz" "${TAGS[@]}"
echo "[all] done: out/<tag>.json, out/tag_differences.md, tests/data/plugin_pwl_tables.json.xz"
