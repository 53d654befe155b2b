// ORACLE SHIM (not plugin code): a tiny ngraph::Node with inputs, enough for the
// node-level glue of pwl_approximation.cpp (get_input_node_shared_ptr + dynamic_pointer_cast).
#pragma once
#include <memory>
#include <vector>
#include <string>
namespace ngraph {
class Node : public std::enable_shared_from_this<Node> {
public:
    virtual ~Node() = default;
    std::vector<std::shared_ptr<Node>> inputs;
    std::shared_ptr<Node> get_input_node_shared_ptr(size_t i) const { return inputs.at(i); }
    std::string get_friendly_name() const { return "oracle"; }
};
}  // namespace ngraph
namespace ov {
using Node = ngraph::Node;
}
