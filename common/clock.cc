#include "common/clock.h"

#include <algorithm>
#include <chrono>

namespace depot {
namespace {

class RealClock : public Clock {
 public:
  int64_t NowMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace

const Clock& SystemClock() {
  static const RealClock* clock = new RealClock();
  return *clock;
}

uint64_t HybridLogicalClock::Now() {
  const uint64_t physical = Pack(clock_.NowMicros() / 1000, 0);
  uint64_t last = last_.load();
  uint64_t next;
  do {
    // Physical time ahead of everything seen: take it. Otherwise tick the logical part; an
    // overflow of the 16 logical bits simply carries into the millisecond part.
    next = std::max(physical, last + 1);
  } while (!last_.compare_exchange_weak(last, next));
  return next;
}

void HybridLogicalClock::Observe(uint64_t seen) {
  uint64_t last = last_.load();
  while (seen > last && !last_.compare_exchange_weak(last, seen)) {
  }
}

}  // namespace depot
