// ORACLE SHIM: make_pwl.cpp includes this only for the ngraph-Constant overloads,
// which the oracle does not extract.
#pragma once
#include <ngraph/node.hpp>
