// ORACLE SHIM (not plugin code): minimal stand-in for InferenceEngine's ie_common.h.
// IE_THROW() << ... throws std::runtime_error carrying the streamed text (the real
// IE_THROW throws InferenceEngine::GeneralError whose what() is the streamed text,
// prefixed by file:line only in debug builds).
#pragma once
#include <sstream>
#include <vector>
#include <map>
#include <memory>
#include <algorithm>
#include <cmath>
#include <limits>
#include <iomanip>
#include <iostream>
#include <stdexcept>
#include <string>
namespace oracle_shim {
struct ThrowNow {
    [[noreturn]] void operator<<=(const std::ostream& ostream) {
        std::ostringstream stream;
        stream << ostream.rdbuf();
        throw std::runtime_error(stream.str());
    }
};
}  // namespace oracle_shim
#define IE_THROW(...) ::oracle_shim::ThrowNow{} <<= std::stringstream {}
#define IE_ASSERT(EXPRESSION) \
    if (!(EXPRESSION))        \
    IE_THROW() << "AssertionFailed: " << #EXPRESSION
