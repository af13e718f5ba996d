// depot-sim: runs the deterministic sync simulation (tests/sim/sim.h) over many seeds, or
// replays one seed and prints its trace.
//   depot-sim --seeds 10000 --start 1 --jobs 2      many seeds; failures printed with traces
//   depot-sim --trace 4711                          one seed, every step printed
#include <CLI/CLI.hpp>

#include <chrono>
#include <iostream>
#include <map>

#include "tests/sim/sim.h"

int main(int argc, char** argv) {
  CLI::App app{"Deterministic simulation of Depot node <-> central sync"};
  int seeds = 100;
  uint64_t start = 1;
  int jobs = 1;
  bool verbose = false;
  int64_t trace_seed = -1;
  int max_trace_lines = 400;
  std::string sabotage = "none";
  depot::sim::SimOptions options;
  app.add_option("--seeds", seeds, "number of seeds to run")->check(CLI::NonNegativeNumber);
  app.add_option("--start", start, "first seed");
  app.add_option("--nodes", options.nodes, "nodes per run")->check(CLI::Range(1, 50));
  app.add_option("--steps", options.steps, "random steps per run before the final heal")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--quiesce-rounds", options.quiesce_rounds,
                 "rounds the healed system may take to converge");
  app.add_option("--jobs", jobs, "seeds run in parallel (each run stays single-threaded)")
      ->check(CLI::Range(1, 64));
  app.add_flag("--verbose", verbose, "one line per seed, and totals");
  app.add_option("--trace", trace_seed, "replay this one seed, printing every step");
  app.add_option("--max-trace-lines", max_trace_lines,
                 "trace lines printed per failing seed (the last ones)");
  app.add_option("--sabotage", sabotage,
                 "break central's store on purpose: none, double-apply, forget-mark, drop-cancel")
      ->check(CLI::IsMember({"none", "double-apply", "forget-mark", "drop-cancel"}));
  app.add_flag("--avoid-known-bugs", options.avoid_known_engine_bugs,
               "steer schedules around engine bugs found and not fixed yet (see sim.h)");
  app.add_flag("--unconfirmed-backups", options.unconfirmed_backups,
               "also back up epochs central has not welcomed yet (see sim.h)");
  bool no_orders = false;
  app.add_flag("--no-orders", no_orders, "the stock-only schedule (no orders, no invariant 5)");
  app.add_flag("--stock-ops-touch-orders", options.stock_ops_touch_orders,
               "let random stock operations draw on the staging bin and fulfilment reservations");
  bool naive = false;
  app.add_flag("--naive", naive,
               "no selling rights (nodes sell against ATP, central routes by its mirror): counts "
               "oversold units instead of failing on them");
  app.add_option("--temp-root", options.temp_root, "where the per-run SQLite files go");
  app.add_flag("--keep", options.keep_dir, "keep the SQLite files of each run");
  CLI11_PARSE(app, argc, argv);
  if (sabotage == "double-apply") options.sabotage = depot::sim::Sabotage::kDoubleApply;
  if (sabotage == "forget-mark") options.sabotage = depot::sim::Sabotage::kForgetMark;
  if (sabotage == "drop-cancel") options.sabotage = depot::sim::Sabotage::kDropCancel;
  options.orders = !no_orders;
  options.selling_rights = !naive;

  if (trace_seed >= 0) {
    options.seed = static_cast<uint64_t>(trace_seed);
    options.echo_trace = true;
    auto r = depot::sim::RunSimulation(options);
    std::cout << depot::sim::FormatStats(r.stats) << "\n";
    if (r.ok()) {
      std::cout << "seed " << r.seed << " ok (" << r.seconds << " s)\n";
      return 0;
    }
    std::cout << depot::sim::FormatFailure(r, options, 0);
    return 1;
  }

  const auto t0 = std::chrono::steady_clock::now();
  depot::sim::SimStats total;
  int failed = 0;
  auto results = depot::sim::RunSeeds(
      options, start, seeds, jobs, [&](const depot::sim::SimResult& r) {
        total.Add(r.stats);
        if (verbose) {
          std::cout << "seed " << r.seed << (r.ok() ? " ok " : " FAILED ") << r.seconds
                    << " s, " << r.stats.events_final << " events, " << r.stats.quiesce_rounds
                    << " quiesce rounds\n";
        }
        if (!r.ok()) {
          ++failed;
          depot::sim::SimOptions o = options;
          o.seed = r.seed;
          std::cout << depot::sim::FormatFailure(r, o, max_trace_lines) << std::flush;
        }
      });
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (verbose) std::cout << depot::sim::FormatStats(total) << "\n";
  std::cout << results.size() << " seeds from " << start << ": " << failed << " failed, "
            << secs << " s\n";
  return failed == 0 ? 0 : 1;
}
