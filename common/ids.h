// Identifiers.
#pragma once

#include <cstdint>
#include <string>

namespace depot {

// 128 random bits as 32 lower-case hex characters. Thread-safe.
std::string NewRandomId();
// A random non-zero 63-bit number, used for database epochs. Thread-safe.
uint64_t NewEpoch();

}  // namespace depot
