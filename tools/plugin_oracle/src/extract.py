#!/usr/bin/env python3
"""Extract the GNA plugin's own PWL code for one tag into build/<tag>/tree.

Whole files are written byte-for-byte from `git show TAG:PATH`.  Three translation
units are *assembled* from verbatim text slices of plugin files (function bodies are
never edited; only #include lines are dropped where noted and wrapper code from
src/*.inc is appended).  Every slice is preceded by a `#line` directive naming its
origin (tag:path:line) and is logged in build/<tag>/EXTRACTION.txt.
"""
import os
import re
import subprocess
import sys

# A git repository holding OpenVINO with its release tags (a clone, or a bare mirror): $OPENVINO_GIT
MIRROR = os.environ.get("OPENVINO_GIT", "openvino")
PLUGIN = "src/plugins/intel_gna/src"
HERE = os.path.dirname(os.path.abspath(__file__))

WHOLE_FILES = [
    "backend/dnn_types.h", "backend/dnn_types.hpp", "backend/dnn_types.cpp",
    "backend/gna_types.h", "backend/gna_types.hpp",
    "backend/make_pwl.hpp",
    "backend/pwl_border_values_counter.hpp",
    "backend/pwl_border_values_counter_identity.hpp", "backend/pwl_border_values_counter_identity.cpp",
    "backend/pwl_input_params.hpp", "backend/pwl_input_params.cpp",
    "backend/pwl_segments_creator.hpp",
    "backend/pwl_segments_creator_factory.hpp", "backend/pwl_segments_creator_factory.cpp",
    "backend/pwl_segments_creator_identity.hpp", "backend/pwl_segments_creator_identity.cpp",
    "backend/pwl_tools.hpp", "backend/pwl_tools.cpp",
    "common/numerical_utils.hpp",
    "gna_slope_scale.h", "gna_slope_scale.hpp", "gna_slope_scale.cpp",
    "log/debug.hpp", "log/log.hpp", "log/log.cpp",
    "runtime/pwl.h",
]
# whole plugin .cpp files compiled unmodified
WHOLE_TUS = [
    "gna_slope_scale.cpp", "backend/dnn_types.cpp", "backend/pwl_tools.cpp", "backend/pwl_input_params.cpp",
    "backend/pwl_border_values_counter_identity.cpp", "backend/pwl_segments_creator_identity.cpp",
    "backend/pwl_segments_creator_factory.cpp", "log/log.cpp",
]


def git_show(tag, path):
    r = subprocess.run(["git", "-C", MIRROR, "show", f"{tag}:{PLUGIN}/{path}"], capture_output=True)
    if r.returncode != 0:
        return None
    return r.stdout.decode("utf-8")


def strip_code(line):
    """remove string/char literals and // comments so that brace counting is robust"""
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])*'", "''", line)
    return line.split("//", 1)[0]


def brace_block(lines, start):
    """index of the line closing the brace block that opens on/after lines[start]"""
    depth = 0
    opened = False
    for i in range(start, len(lines)):
        code = strip_code(lines[i])
        for ch in code:
            if ch == "{":
                depth += 1
                opened = True
            elif ch == "}":
                depth -= 1
                if opened and depth == 0:
                    return i
    raise RuntimeError("unbalanced block from line %d" % (start + 1))


class Out:
    def __init__(self, tag, log):
        self.parts = []
        self.tag = tag
        self.log = log

    def raw(self, text):
        self.parts.append(text if text.endswith("\n") else text + "\n")

    def slice(self, path, lines, a, b, what):
        """append lines[a..b] (0-based, inclusive) verbatim"""
        self.parts.append(f'#line {a + 1} "{self.tag}:{PLUGIN}/{path}"\n')
        self.parts.extend(l + "\n" for l in lines[a:b + 1])
        self.log.append(f"{path}:{a + 1}-{b + 1}  {what}")

    def text(self):
        return "".join(self.parts)


def find_line(lines, pattern, start=0):
    rx = re.compile(pattern)
    for i in range(start, len(lines)):
        if rx.search(lines[i]):
            return i
    raise RuntimeError("pattern not found: " + pattern)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def extract(tag, outdir):
    tree = os.path.join(outdir, "tree")
    log = [f"tag {tag}  (commit {subprocess.run(['git', '-C', MIRROR, 'rev-list', '-n1', tag], capture_output=True, text=True).stdout.strip()})",
           "", "== whole files (verbatim) =="]
    tus = []
    for p in WHOLE_FILES:
        t = git_show(tag, p)
        if t is None:
            continue
        write(os.path.join(tree, p), t)
        log.append(p + ("   [compiled as its own TU]" if p in WHOLE_TUS else ""))
        if p in WHOLE_TUS:
            tus.append(os.path.join(tree, p))

    log += ["", "== slices =="]
    slope_hdr = "gna_slope_scale.hpp" if git_show(tag, "gna_slope_scale.hpp") is not None else "gna_slope_scale.h"

    # ---------------- backend/make_pwl.cpp: everything up to the ngraph-Constant overloads
    path = "backend/make_pwl.cpp"
    L = git_show(tag, path).split("\n")
    end = find_line(L, r"^static void make_gna_pwl\(std::tuple<>&&") - 1
    o = Out(tag, log)
    o.slice(path, L, 0, end, "includes, insert_extra_pwl_segments, print_*, make_gna_pwl(DnnActivation,...), "
                              "cast_check_overflow, template make_gna_pwl(const T* m, b, alpha, count, in, out, ...)")
    o.raw('#line 1 "oracle_api_make_pwl.inc"')
    o.raw(open(os.path.join(HERE, "oracle_api_make_pwl.inc")).read())
    write(os.path.join(tree, "backend/oracle_make_pwl.cpp"), o.text())
    tus.append(os.path.join(tree, "backend/oracle_make_pwl.cpp"))

    # ---------------- transformations/pwl_approximation.{hpp,cpp}
    hpath = "transformations/pwl_approximation.hpp"
    H = git_show(tag, hpath).split("\n")
    o = Out(tag, log)
    o.raw('// generated by oracle/src/extract.py: pwl_approximation.hpp with #include lines replaced by the shim\n'
          '#pragma once\n#include "ngraph_ops_shim.hpp"')
    first_ns = find_line(H, r"^namespace ov \{")
    o.slice(hpath, H, first_ns, len(H) - 1, "everything after the #include block (PWLApproximation decls, details::Pwl, "
                                            "details::Function<...>, lower_bound/upper_bound/name, max_segments_number, max_iterations)")
    write(os.path.join(tree, "transformations/oracle_pwl_approximation.hpp"), o.text())

    cpath = "transformations/pwl_approximation.cpp"
    C = git_show(tag, cpath).split("\n")
    last_inc = max(i for i, l in enumerate(C) if l.startswith("#include"))
    t_end = find_line(C, r"^bool transform_to_pwl\(")
    while C[t_end - 1].startswith("template"):
        t_end -= 1
    o = Out(tag, log)
    o.raw('// generated by oracle/src/extract.py\n#include "oracle_pwl_approximation.hpp"')
    o.slice(cpath, C, last_inc + 1, t_end - 1,
            "after #includes up to transform_to_pwl: EXP_BREAK, usings, get_break_bound, split_search, pivot_search, "
            "calculate_error_pct, is_negative, pwl_search(Function), get_bounds, pwl_search(node, fq) incl. post-processing, "
            "pwl_search_power, pwl_search<Power>, pwl_search<PowerIE>")
    o.raw('#line 1 "oracle_api_pwl_approximation.inc"')
    o.raw(open(os.path.join(HERE, "oracle_api_pwl_approximation.inc")).read())
    write(os.path.join(tree, "transformations/oracle_pwl_approximation.cpp"), o.text())
    tus.append(os.path.join(tree, "transformations/oracle_pwl_approximation.cpp"))

    # ---------------- frontend/scale_factor_calc.cpp
    spath = "frontend/scale_factor_calc.cpp"
    S = git_show(tag, spath).split("\n")
    o = Out(tag, log)
    o.raw('// generated by oracle/src/extract.py\n#include "sfc_shim.hpp"\n#include "%s"' % slope_hdr)
    ns0 = find_line(S, r"^namespace ov \{")
    gsf = find_line(S, r"^float GetScaleFactor\(")
    o.slice(spath, S, ns0, gsf - 1, "namespace opening, using, constexpr constants")
    for fn in ["getPWLSlopes", "selectBestOutputScaleFactors", "generateScaleFactors", "adjustScaleFactor"]:
        a = find_line(S, r"^\S.* ScaleFactorCalculator::%s\(" % fn)
        b = brace_block(S, a)
        o.slice(spath, S, a, b, "ScaleFactorCalculator::" + fn)
    # getActivationScale: the initial value line and the body of `else if (layer.isPower()) { ... }`
    ga = find_line(S, r"^float ScaleFactorCalculator::getActivationScale\(")
    ga_end = brace_block(S, ga)
    r0 = find_line(S, r"^\s*float result = ", ga)
    pw = find_line(S, r"\} else if \(layer\.isPower\(\)\) \{", ga)
    # the line reads "} else if (layer.isPower()) {"; its block closes at the next line at the same indentation
    indent = len(S[pw]) - len(S[pw].lstrip())
    pw_end = next(i for i in range(pw + 1, ga_end) if S[i].startswith(" " * indent + "}") and
                  len(S[i]) - len(S[i].lstrip()) == indent)
    o.raw("float oracle_power_activation_scale(float in_sf, float exponent, float scale, float offset) {\n"
          "    InferenceEngine::PowerLayer power_layer;\n"
          "    power_layer.power = exponent;\n    power_layer.scale = scale;\n    power_layer.offset = offset;\n"
          "    InferenceEngine::CNNLayer const* cnnLayer = &power_layer;\n"
          "    QuantizedLayerParams quantized_params;\n    quantized_params._src_quant.scale = in_sf;\n"
          "    auto quantizedParams = &quantized_params;\n"
          "    LayerInfo layer(oracle_shim::Kind::Power);\n    int inputsSize = 2;")
    o.slice(spath, S, r0, r0, "getActivationScale: initial result")
    o.raw("    if (false) {")
    o.slice(spath, S, pw, pw_end, "getActivationScale: isPower() branch")
    o.raw("    return result;\n}")
    o.raw('#line 1 "oracle_api_scale_factor_calc.inc"')
    o.raw(open(os.path.join(HERE, "oracle_api_scale_factor_calc.inc")).read())
    write(os.path.join(tree, "frontend/oracle_scale_factor_calc.cpp"), o.text())
    tus.append(os.path.join(tree, "frontend/oracle_scale_factor_calc.cpp"))

    # header name differences between tags, handed to the driver
    dnn_hdr = "backend/dnn_types.hpp" if git_show(tag, "backend/dnn_types.hpp") is not None else "backend/dnn_types.h"
    write(os.path.join(tree, "oracle_tag_headers.h"),
          f'#pragma once\n#include "{dnn_hdr}"\n#include "{slope_hdr}"\n#define ORACLE_TAG "{tag}"\n')
    write(os.path.join(outdir, "EXTRACTION.txt"), "\n".join(log) + "\n")
    write(os.path.join(outdir, "tus.txt"), "\n".join(tus) + "\n")


if __name__ == "__main__":
    extract(sys.argv[1], sys.argv[2])
