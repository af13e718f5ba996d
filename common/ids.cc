#include "common/ids.h"

#include <random>

namespace depot {
namespace {

uint64_t RandomU64() {
  thread_local std::mt19937_64 rng([] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }());
  return rng();
}

}  // namespace

std::string NewRandomId() {
  static const char* kHex = "0123456789abcdef";
  std::string out(32, '0');
  for (int half = 0; half < 2; ++half) {
    uint64_t v = RandomU64();
    for (int i = 0; i < 16; ++i) {
      out[half * 16 + i] = kHex[v & 0xF];
      v >>= 4;
    }
  }
  return out;
}

uint64_t NewEpoch() {
  uint64_t v = 0;
  while (v == 0) v = RandomU64() >> 1;
  return v;
}

}  // namespace depot
