// ORACLE SHIM (not plugin code): only ov::log::Level, as used by the plugin's log/log.hpp.
#pragma once
#include <ostream>
#include <sstream>
#include <string>
#include <vector>
namespace ov {
namespace log {
enum class Level { NO = -1, ERR = 0, WARNING = 1, INFO = 2, DEBUG = 3, TRACE = 4 };
inline std::ostream& operator<<(std::ostream& os, const Level& l) { return os << static_cast<int>(l); }
}  // namespace log
}  // namespace ov
