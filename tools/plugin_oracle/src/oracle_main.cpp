// ORACLE DRIVER (oracle's own code). Reads jobs from stdin (one per line, doubles as C hex floats),
// calls the plugin code compiled from the tag, writes one result line per job to stdout.
//
//   design OP EXP PCT            -> ok ERR_PCT M;B;ALPHA | nopwl | exc TEXT
//   encode OP EXP PCT IN OUT     -> ok OUT_SF_USED SEGS | design-unavailable   (OUT may be the word powsf)
//   powsf IN EXP                 -> ok OUT_SF            (getActivationScale, isPower() branch)
//   identity IN OUT [LOW HIGH]   -> ok XL XU YL YU YMIN YMAX SEGS | exc TEXT
//   act KIND IN OUT P1 P2 [LOW HIGH] -> ok SEGS | exc TEXT   (KIND: relu lrelu clamp abs sign fq)
//   bestsf IN START              -> ok SF
// SEGS = space separated "xBase,yBase,slope" integers.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "oracle_tag_headers.h"
#include "backend/make_pwl.hpp"
#include "backend/pwl_input_params.hpp"
#include "backend/pwl_segments_creator_factory.hpp"

std::vector<gna_pwl_segment_t> oracle_make_gna_pwl_from_design(const std::vector<double>& m,
                                                               const std::vector<double>& b,
                                                               const std::vector<double>& alpha,
                                                               double in_scale,
                                                               double out_scale);
int oracle_pwl_design(const std::string& op,
                      double exponent,
                      double allowed_err_pct,
                      std::vector<double>& m,
                      std::vector<double>& b,
                      std::vector<double>& alpha,
                      double& err_pct);
namespace ov {
namespace intel_gna {
namespace frontend {
float oracle_adjust_output_sf(float in_sf, float start_sf);
float oracle_power_activation_scale(float in_sf, float exponent, float scale, float offset);
}  // namespace frontend
}  // namespace intel_gna
}  // namespace ov

static std::string hexd(double v) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%a", v);
    return buf;
}

static std::string segs(const std::vector<gna_pwl_segment_t>& s) {
    std::ostringstream o;
    for (size_t i = 0; i < s.size(); i++) {
        if (i)
            o << ' ';
        o << s[i].xBase << ',' << s[i].yBase << ',' << s[i].slope;
    }
    return o.str();
}

static std::string clean(std::string t) {
    for (auto& c : t)
        if (c == '\n' || c == '\r')
            c = ' ';
    return t;
}

static double num(const std::string& s) {
    return std::strtod(s.c_str(), nullptr);
}

struct Design {
    int status;  // 1 ok, 0 nopwl, -1 exception
    double err_pct;
    std::vector<double> m, b, alpha;
    std::string exc;
};

static std::map<std::tuple<std::string, double, double>, Design> g_designs;

static const Design& get_design(const std::string& op, double exponent, double pct) {
    auto key = std::make_tuple(op, exponent, pct);
    auto it = g_designs.find(key);
    if (it != g_designs.end())
        return it->second;
    Design d;
    try {
        d.status = oracle_pwl_design(op, exponent, pct, d.m, d.b, d.alpha, d.err_pct);
    } catch (const std::exception& e) {
        d.status = -1;
        d.exc = clean(e.what());
    }
    return g_designs.emplace(key, d).first->second;
}

static std::string join(const std::vector<double>& v) {
    std::string r;
    for (size_t i = 0; i < v.size(); i++) {
        if (i)
            r += ',';
        r += hexd(v[i]);
    }
    return r;
}

static std::string run(const std::vector<std::string>& a) {
    const std::string& cmd = a.at(0);
    if (cmd == "design") {
        const Design& d = get_design(a.at(1), num(a.at(2)), num(a.at(3)));
        if (d.status < 0)
            return "exc " + d.exc;
        if (d.status == 0)
            return "nopwl";
        return "ok " + hexd(d.err_pct) + " " + join(d.m) + ";" + join(d.b) + ";" + join(d.alpha);
    }
    if (cmd == "encode") {
        const Design& d = get_design(a.at(1), num(a.at(2)), num(a.at(3)));
        if (d.status != 1)
            return "design-unavailable";
        // PwlDesignOpt(const DnnActivation&, const float scale_in, const float scale_out, ...) passes
        // float scale factors on to make_gna_pwl(node, scale_in, scale_out, ...)
        float in_sf = static_cast<float>(num(a.at(4)));
        // OUT == "powsf": the plugin's Power output-scale rule (getActivationScale, isPower() branch)
        float out_sf = a.at(5) == "powsf" ? ov::intel_gna::frontend::oracle_power_activation_scale(
                                                in_sf, static_cast<float>(num(a.at(2))), 1.0f, 0.0f)
                                          : static_cast<float>(num(a.at(5)));
        return "ok " + hexd(out_sf) + " " + segs(oracle_make_gna_pwl_from_design(d.m, d.b, d.alpha, in_sf, out_sf));
    }
    if (cmd == "powsf") {
        float r = ov::intel_gna::frontend::oracle_power_activation_scale(static_cast<float>(num(a.at(1))),
                                                                         static_cast<float>(num(a.at(2))),
                                                                         1.0f,
                                                                         0.0f);
        return "ok " + hexd(r);
    }
    if (cmd == "bestsf") {
        float r = ov::intel_gna::frontend::oracle_adjust_output_sf(static_cast<float>(num(a.at(1))),
                                                                   static_cast<float>(num(a.at(2))));
        return "ok " + hexd(r);
    }
    if (cmd == "identity") {
        float in_sf = static_cast<float>(num(a.at(1)));
        float out_sf = static_cast<float>(num(a.at(2)));
        float low = 0, high = 0;
        FakeQuantizeParams fq{};
        if (a.size() >= 5) {
            low = static_cast<float>(num(a.at(3)));
            high = static_cast<float>(num(a.at(4)));
            fq.set = 1;
            fq.levels = 65536;
            fq.input_low = &low;
            fq.input_high = &high;
            fq.output_low = &low;
            fq.output_high = &high;
        }
        try {
            // same calls as make_gna_pwl(fun.type == kActIdentity, low_precision=false, not fused with conv2d)
            auto creator = ov::intel_gna::backend::PWLSegmentsCreatorFactory::CreateCreator(kActIdentity);
            ov::intel_gna::backend::PWLInputParams input_data(false, fq, in_sf, out_sf);
            auto r = creator->CreateSegmentsWithBorders(input_data);
            auto& bv = r.border_values;
            std::ostringstream o;
            o << "ok " << bv.x_lower << ' ' << bv.x_upper << ' ' << bv.y_lower << ' ' << bv.y_upper << ' '
              << bv.y_min_max.y_min << ' ' << bv.y_min_max.y_max << ' ' << segs(r.segments);
            return o.str();
        } catch (const std::exception& e) {
            return "exc " + clean(e.what());
        }
    }
    if (cmd == "act") {
        const std::string& kind = a.at(1);
        float in_sf = static_cast<float>(num(a.at(2)));
        float out_sf = static_cast<float>(num(a.at(3)));
        float p1 = static_cast<float>(num(a.at(4)));
        float p2 = static_cast<float>(num(a.at(5)));
        float low = 0, high = 0;
        DnnActivation fun{};
        if (a.size() >= 8) {
            low = static_cast<float>(num(a.at(6)));
            high = static_cast<float>(num(a.at(7)));
            fun.fqParams.set = 1;
            fun.fqParams.levels = 65536;
            fun.fqParams.input_low = &low;
            fun.fqParams.input_high = &high;
            fun.fqParams.output_low = &low;
            fun.fqParams.output_high = &high;
        }
        double l_bound = -1.0, u_bound = 1.0;  // PwlDesignOpt passes -1.0, 1.0 except for clamp
        if (kind == "relu") {
            fun.type = kActRelu;
            fun.args.lrelu.negative_slope = 0.0f;
        } else if (kind == "lrelu") {
            fun.type = kActLeakyRelu;
            fun.args.lrelu.negative_slope = p1;
        } else if (kind == "clamp") {
            fun.type = kActKaldiLstmClipping;
            fun.args.clamp.low = p1;
            fun.args.clamp.high = p2;
            l_bound = fun.args.clamp.low;
            u_bound = fun.args.clamp.high;
        } else if (kind == "abs") {
            fun.type = kActAbs;
        } else if (kind == "sign") {
            fun.type = kActSign;
        } else if (kind == "fq") {
            fun.type = kActFakeQuantize;
        } else {
            return "exc oracle: unknown kind";
        }
        try {
            std::vector<pwl_t> pwl;
            std::vector<gna_pwl_segment_t> out;
            make_gna_pwl(fun, pwl, l_bound, u_bound, in_sf, out_sf, false, false, out);
            return "ok " + segs(out);
        } catch (const std::exception& e) {
            return "exc " + clean(e.what());
        }
    }
    return "exc oracle: unknown command";
}

int main() {
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream is(line);
        std::vector<std::string> a;
        std::string w;
        while (is >> w)
            a.push_back(w);
        if (a.empty())
            continue;
        std::string r;
        try {
            r = run(a);
        } catch (const std::exception& e) {
            r = "exc " + clean(e.what());
        }
        std::cout << r << '\n';
    }
    return 0;
}
