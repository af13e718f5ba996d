// The deterministic sync simulation (sim.h) as tests: a fast run of a few seeds (with orders, and
// the stock-only schedule), the 1000-seed run (tagged [slow]), determinism of a replay, proof
// that the invariant checks fail when central's store breaks exactly-once or drops cancel
// requests on purpose, and the schedules that first exposed engine bugs (kept as regression
// tests).
#include <catch2/catch.hpp>

#include <algorithm>
#include <iostream>
#include <thread>

#include "tests/sim/sim.h"

using depot::sim::Sabotage;
using depot::sim::SimOptions;
using depot::sim::SimResult;
using depot::sim::SimStats;

namespace {

int Jobs() { return std::max(1u, std::min(4u, std::thread::hardware_concurrency())); }

// Runs the seeds; prints every failure (the first with the end of its trace; each names the
// depot-sim command that replays it in full) and returns the totals.
SimStats RunAndReport(const SimOptions& options, uint64_t start, int count, int* failed) {
  SimStats total;
  *failed = 0;
  auto results = depot::sim::RunSeeds(options, start, count, Jobs());
  for (const SimResult& r : results) {
    total.Add(r.stats);
    if (r.ok()) continue;
    SimOptions o = options;
    o.seed = r.seed;
    std::cerr << depot::sim::FormatFailure(r, o, *failed == 0 ? 600 : 0);
    ++*failed;
  }
  std::cerr << "[sim] seeds " << start << ".." << start + count - 1 << ": " << *failed
            << " failed; " << depot::sim::FormatStats(total) << "\n";
  return total;
}

bool Names(const SimResult& r, const std::string& what) {
  for (const auto& f : r.failures) {
    if (f.find(what) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("20 seeds converge with every invariant holding", "[sim]") {
  SimOptions options;
  int failed = 0;
  SimStats total = RunAndReport(options, 1, 20, &failed);
  CHECK(failed == 0);
  // The schedules are not vacuous.
  CHECK(total.ops_ok > 0);
  CHECK(total.events_final > 0);
  CHECK(total.dropped > 0);
  CHECK(total.duplicated > 0);
  CHECK(total.reordered > 0);
  CHECK(total.delayed > 0);
  CHECK(total.events_resent > 0);
  CHECK(total.node_crashes > 0);
  CHECK(total.central_crashes > 0);
  CHECK(total.partitions > 0);
  CHECK(total.restores > 0);
  // Orders ran too.
  CHECK(total.orders_captured > 0);
  CHECK(total.released > 0);
  CHECK(total.picks > 0);
  CHECK(total.ships > 0);
  CHECK(total.wrong_refused > 0);
}

TEST_CASE("20 seeds of the stock-only schedule (no orders)", "[sim]") {
  SimOptions options;
  options.orders = false;
  int failed = 0;
  SimStats total = RunAndReport(options, 101, 20, &failed);
  CHECK(failed == 0);
  CHECK(total.ops_ok > 0);
  CHECK(total.orders_captured == 0);
  CHECK(total.released == 0);
}

// 700 steps per seed (depot-sim's default is 1000): with orders a step costs about twice what a
// stock-only step did (fulfilment events are bigger and each one merges into an order at
// central), and 700 steps keep this run near a minute on two cores.
TEST_CASE("1000 seeds", "[sim][slow]") {
  SimOptions options;
  options.steps = 700;
  int failed = 0;
  SimStats total = RunAndReport(options, 1001, 1000, &failed);
  CHECK(failed == 0);
  CHECK(total.runs == 1000);
  CHECK(total.clock_back_steps > 0);
  CHECK(total.late_closes > 0);
  CHECK(total.zombie_deliveries > 0);
  CHECK(total.imports > 0);
  CHECK(total.idempotent_replays() > 0);
  // Invariant 5 was not checked on an empty order book: orders were captured, released,
  // picked, shorted, packed and shipped, sold at the counter and collected; cancellations ended
  // both ways (confirmed by the node, and refused because it had shipped); wrong actions were
  // tried and refused.
  CHECK(total.orders_captured > 10000);
  CHECK(total.released > 5000);
  CHECK(total.waves > 1000);
  CHECK(total.picks > 2000);
  CHECK(total.shorts > 500);
  CHECK(total.packs > 1000);
  CHECK(total.ships > 1000);
  CHECK(total.shipped_final > 5000);
  CHECK(total.counter_sales > 1000);
  CHECK(total.hand_outs > 1000);
  CHECK(total.cancels_asked > 1000);
  CHECK(total.cancels_confirmed > 300);
  CHECK(total.cancel_after_ship > 20);
  CHECK(total.wrong_refused > 1000);
  CHECK(total.capture_replays > 100);
  CHECK(total.order_replays > 100);
  CHECK(total.rerouted > 1000);
  // Invariant 6 was checked on counts whose bin kept moving while they were counted.
  CHECK(total.count_lines_posted > 1000);
  CHECK(total.count_adjustments > 300);
  CHECK(total.counts_with_moves_after_start > 100);
}

TEST_CASE("a seed replays step for step", "[sim]") {
  SimOptions options;
  options.seed = 7;
  SimResult a = depot::sim::RunSimulation(options);
  SimResult b = depot::sim::RunSimulation(options);
  REQUIRE(a.trace.size() == b.trace.size());
  for (size_t i = 0; i < a.trace.size(); ++i) {
    INFO("trace line " << i);
    REQUIRE(a.trace[i] == b.trace[i]);
  }
  CHECK(a.failures == b.failures);
}

TEST_CASE("the checks catch a store that applies some events twice", "[sim]") {
  SimOptions options;
  options.sabotage = Sabotage::kDoubleApply;
  options.avoid_known_engine_bugs = true;  // only the sabotage may fail these runs
  auto results = depot::sim::RunSeeds(options, 1, 10, Jobs());
  int caught = 0;
  for (const SimResult& r : results) {
    if (r.ok()) continue;
    ++caught;
    INFO(depot::sim::FormatFailure(r, options, 0));
    CHECK(Names(r, "invariant 1"));
  }
  REQUIRE(caught >= 9);
}

TEST_CASE("the checks catch a store that forgets its mark and re-applies duplicates", "[sim]") {
  SimOptions options;
  options.sabotage = Sabotage::kForgetMark;
  options.avoid_known_engine_bugs = true;
  auto results = depot::sim::RunSeeds(options, 1, 10, Jobs());
  int caught = 0;
  for (const SimResult& r : results) {
    if (r.ok()) continue;
    ++caught;
    INFO(depot::sim::FormatFailure(r, options, 0));
    // Caught either by the replay check or, earlier, by the node noticing on reconnect that
    // central's mark fell below what central had already acknowledged.
    CHECK((Names(r, "invariant 4") || Names(r, "central_lost_events")));
  }
  REQUIRE(caught >= 9);
}

TEST_CASE("the checks catch a central whose cancel requests never reach the node", "[sim]") {
  SimOptions options;
  options.sabotage = Sabotage::kDropCancel;
  options.avoid_known_engine_bugs = true;
  auto results = depot::sim::RunSeeds(options, 1, 10, Jobs());
  int caught = 0, disagree = 0, shipped_cancelled = 0;
  for (const SimResult& r : results) {
    if (r.ok()) continue;
    ++caught;
    INFO(depot::sim::FormatFailure(r, options, 0));
    CHECK(Names(r, "invariant 5"));
    disagree += Names(r, "invariant 5 (agreement)") ? 1 : 0;
    shipped_cancelled += Names(r, "invariant 5 (shipped and cancelled)") ? 1 : 0;
  }
  // A seed escapes only when no cancel request of it concerned a fulfilment still open.
  REQUIRE(caught >= 7);
  CHECK(disagree > 0);           // node and central disagree (the node never heard the request)
  CHECK(shipped_cancelled > 0);  // the node shipped what central was cancelling, unflagged
}

// Invariant 3 can fail: the same schedules run against the naive baseline (no selling rights:
// nodes sell against their ATP, central routes by its mirror of their stock) oversell, while with
// rights they do not. An oversold unit is one that central's release found gone at the node
// without a reported loss ("no_stock_at_release").
TEST_CASE("the same schedules without selling rights oversell", "[sim]") {
  SimOptions with_rights;
  SimOptions naive;
  naive.selling_rights = false;
  int failed = 0;
  const SimStats a = RunAndReport(with_rights, 2001, 60, &failed);
  CHECK(failed == 0);
  const SimStats b = RunAndReport(naive, 2001, 60, &failed);
  CHECK(failed == 0);  // every other invariant holds in the naive runs too
  CHECK(a.oversold_units == 0);
  CHECK(a.rights_books > 0);
  CHECK(b.oversold_units > 0);
  CHECK(b.rights_books == 0);
  // Same schedules: the same amount of business was offered to both.
  CHECK(b.orders_captured > 0);
  CHECK(b.counter_sales > 0);
}

// The schedules below were recorded before orders existed: they run the stock-only schedule.
// Engine bug 1 (sim.h): this schedule filled central's hold-back buffer (limit 2) with events
// 9..10 while 3 was missing; 3 was then refused forever and the session livelocked.
TEST_CASE("engine bug 1: a full hold-back buffer does not livelock a session (seed 94)", "[sim]") {
  SimOptions options;
  options.seed = 94;
  options.steps = 300;
  options.orders = false;
  SimResult r = depot::sim::RunSimulation(options);
  INFO(depot::sim::FormatFailure(r, options, 60));
  REQUIRE(r.ok());
}

// Engine bug 2 (sim.h): in this schedule a duplicated Welcome arrived after the ack of events
// 3..4; the node set its ack back to 2 and never sent or heard anything again.
TEST_CASE("engine bug 2: a late copy of a Welcome does not set the node's ack back (seed 292)",
          "[sim]") {
  SimOptions options;
  options.seed = 292;
  options.steps = 300;
  options.orders = false;
  SimResult r = depot::sim::RunSimulation(options);
  INFO(depot::sim::FormatFailure(r, options, 60));
  REQUIRE(r.ok());
}
