// ORACLE SHIM (not plugin code): just enough of ScaleFactorCalculator / LayerInfo /
// QuantizedLayerParams / CNNLayer for the extracted member-function bodies of
// frontend/scale_factor_calc.cpp (getPWLSlopes, selectBestOutputScaleFactors,
// generateScaleFactors, adjustScaleFactor, and the isPower() block of getActivationScale)
// to compile unmodified.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>
#include <ngraph/node.hpp>
#include "common/numerical_utils.hpp"
#include "log/debug.hpp"
#include "log/log.hpp"

namespace InferenceEngine {
struct CNNLayer {
    virtual ~CNNLayer() = default;
    std::string name = "oracle";
    std::shared_ptr<ngraph::Node> getNode() const { return nullptr; }
};
struct PowerLayer : CNNLayer {  // legacy ie_layers.h: float power, scale, offset
    float power = 1.f;
    float scale = 1.f;
    float offset = 0.f;
};
}  // namespace InferenceEngine

namespace ngraph {
namespace op {
struct PowerIE : Node {
    float scale = 1.f, power = 1.f, shift = 0.f;
};
}  // namespace op
}  // namespace ngraph

namespace oracle_shim {
enum class Kind { Identity, Relu, Power, Other };
struct LayerInfo {
    Kind kind;
    explicit LayerInfo(Kind k) : kind(k) {}
    bool isIdentity() const { return kind == Kind::Identity; }
    bool isFakeQuantize() const { return false; }
    bool isRelu() const { return kind == Kind::Relu; }
    bool isClamp() const { return false; }
    bool isAbs() const { return false; }
    bool isPower() const { return kind == Kind::Power; }
};
struct QuantParamsShim {
    float scale = 1.f;
    float GetScale() const { return scale; }
};
struct QuantizedLayerParams {
    QuantParamsShim _src_quant;
    QuantParamsShim _dst_quant;
};
}  // namespace oracle_shim

namespace GNAPluginNS {
using oracle_shim::LayerInfo;
}
namespace ov {
namespace intel_gna {
namespace op {
struct Pwl : ngraph::Node {
    std::shared_ptr<ngraph::Node> get_base_node() const { return nullptr; }
};
}  // namespace op
using oracle_shim::LayerInfo;
namespace frontend {
using oracle_shim::QuantizedLayerParams;
class ScaleFactorCalculator {
public:
    std::vector<double> getPWLSlopes(const LayerInfo& info) const;
    static float selectBestOutputScaleFactors(float inScale,
                                              std::vector<float> outScales,
                                              const std::vector<double>& slopes);
    static std::vector<float> generateScaleFactors(float startRange, float endRange, size_t numScaleFactors);
    float adjustScaleFactor(float sf,
                            InferenceEngine::CNNLayer const* cnnLayer,
                            LayerInfo const& layer,
                            QuantizedLayerParams* quantizedParams) const;
};
}  // namespace frontend
}  // namespace intel_gna
}  // namespace ov
