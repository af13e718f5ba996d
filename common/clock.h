// Time sources. The wall clock is a seam (Clock) so that tests and the simulation control time;
// the hybrid logical clock (HLC) orders events for display and audit, never for correctness.
#pragma once

#include <atomic>
#include <cstdint>

namespace depot {

// Wall-clock time in microseconds since the Unix epoch. Implementations must be thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMicros() const = 0;
};

// The real clock (std::chrono::system_clock). Never destroyed.
const Clock& SystemClock();

// A clock that only moves when told to. Thread-safe.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t start_micros = 1'700'000'000'000'000) : now_(start_micros) {}
  int64_t NowMicros() const override { return now_.load(); }
  void Advance(int64_t micros) { now_.fetch_add(micros); }
  void Set(int64_t micros) { now_.store(micros); }

 private:
  std::atomic<int64_t> now_;
};

// Hybrid logical clock packed in 64 bits: physical milliseconds << 16 | logical counter.
// Now() is strictly increasing for the lifetime of the object; after a restart call Observe() with
// the largest timestamp ever persisted so that values keep increasing across restarts
// (SYNC.md invariant 7). Thread-safe and lock-free.
class HybridLogicalClock {
 public:
  explicit HybridLogicalClock(const Clock& clock = SystemClock()) : clock_(clock) {}

  // A timestamp greater than every one returned or observed before.
  uint64_t Now();
  // Merges a timestamp seen elsewhere (persisted, or received from a peer): later Now() values
  // are greater than it.
  void Observe(uint64_t seen);
  // The largest timestamp handed out or observed so far.
  uint64_t Last() const { return last_.load(); }

  static uint64_t Pack(int64_t millis, uint32_t logical) {
    return (static_cast<uint64_t>(millis) << 16) | (logical & 0xFFFF);
  }
  static int64_t Millis(uint64_t hlc) { return static_cast<int64_t>(hlc >> 16); }
  static uint32_t Logical(uint64_t hlc) { return static_cast<uint32_t>(hlc & 0xFFFF); }

 private:
  const Clock& clock_;
  std::atomic<uint64_t> last_{0};
};

}  // namespace depot
