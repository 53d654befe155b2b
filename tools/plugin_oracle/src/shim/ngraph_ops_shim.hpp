// ORACLE SHIM (not plugin code): op "tags" used as template arguments by
// transformations/pwl_approximation.{hpp,cpp}, plus the helpers its node-level glue calls.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <vector>
#include <iostream>
#include <numeric>
#include <ngraph/node.hpp>
#include "common/numerical_utils.hpp"

namespace ngraph {
namespace opset8 {
struct Sigmoid : Node {};
struct Tanh : Node {};
struct Exp : Node {};
struct Log : Node {};
struct Power : Node {};          // input 1 = exponent Constant
struct FakeQuantize : Node {};   // inputs 1,2 = input_low/high Constant
struct Constant : Node {
    explicit Constant(double v) : value(v) {}
    double value;
};
}  // namespace opset8
namespace opset9 {
struct SoftSign : Node {};
}  // namespace opset9
namespace op {
struct PowerIE : Node {
    float scale = 1.f, power = 1.f, shift = 0.f;
};
}  // namespace op
namespace pass {
class MatcherPass {};
}  // namespace pass
}  // namespace ngraph

#define NGRAPH_RTTI_DECLARATION
#define NGRAPH_RTTI_DEFINITION(...)

namespace ov {
namespace intel_gna {
// single-value stand-ins for the plugin's get_constant_value (2022.3/2023.0: ngraph_util, 2023.1: graph_utils)
namespace ngraph_util {
inline bool get_constant_value(const std::shared_ptr<ngraph::opset8::Constant>& c, double& v) {
    if (!c) return false;
    v = c->value;
    return true;
}
}  // namespace ngraph_util
namespace graph_utils {
using ngraph_util::get_constant_value;
}  // namespace graph_utils
}  // namespace intel_gna
}  // namespace ov
