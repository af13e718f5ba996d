#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/ids.h"

using depot::HybridLogicalClock;
using depot::ManualClock;

TEST_CASE("HLC follows physical time and ticks logically when it stalls", "[clock]") {
  ManualClock wall(1'000'000);  // 1000 ms
  HybridLogicalClock hlc(wall);
  uint64_t a = hlc.Now();
  CHECK(HybridLogicalClock::Millis(a) == 1000);
  uint64_t b = hlc.Now();
  CHECK(b == a + 1);  // same millisecond: logical tick
  wall.Advance(5'000);
  uint64_t c = hlc.Now();
  CHECK(HybridLogicalClock::Millis(c) == 1005);
  CHECK(HybridLogicalClock::Logical(c) == 0);
}

TEST_CASE("HLC never goes backwards when the wall clock does", "[clock]") {
  ManualClock wall(10'000'000);
  HybridLogicalClock hlc(wall);
  uint64_t a = hlc.Now();
  wall.Set(1'000);  // clock stepped back by ~10 s
  uint64_t b = hlc.Now();
  CHECK(b > a);
}

TEST_CASE("HLC observes persisted or remote timestamps (restart rule)", "[clock]") {
  ManualClock wall(1'000'000);
  HybridLogicalClock before(wall);
  uint64_t last = 0;
  for (int i = 0; i < 100; ++i) last = before.Now();
  // A restart with a clock that is now behind: observing the persisted maximum keeps order.
  wall.Set(500'000);
  HybridLogicalClock after(wall);
  after.Observe(last);
  CHECK(after.Now() > last);
  after.Observe(1);  // observing an older value changes nothing
  CHECK(after.Now() > last + 1);
}

TEST_CASE("HLC is strictly increasing across threads", "[clock]") {
  HybridLogicalClock hlc;
  std::vector<std::vector<uint64_t>> seen(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) seen[t].push_back(hlc.Now());
    });
  }
  for (auto& t : threads) t.join();
  std::vector<uint64_t> all;
  for (auto& v : seen) {
    for (size_t i = 1; i < v.size(); ++i) REQUIRE(v[i] > v[i - 1]);
    all.insert(all.end(), v.begin(), v.end());
  }
  std::sort(all.begin(), all.end());
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());  // no duplicates
}

TEST_CASE("random ids and epochs", "[clock]") {
  auto a = depot::NewRandomId(), b = depot::NewRandomId();
  CHECK(a.size() == 32);
  CHECK(a != b);
  CHECK(depot::NewEpoch() != 0);
  CHECK(depot::NewEpoch() != depot::NewEpoch());
}
