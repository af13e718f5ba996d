// Process-wide logging setup (spdlog to stderr). Call once from main().
#pragma once

#include <string>

namespace depot {

// level: trace, debug, info, warn, error, off. Unknown levels fall back to info.
void InitLogging(const std::string& level, const std::string& name);

}  // namespace depot
