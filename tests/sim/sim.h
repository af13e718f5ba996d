// The deterministic simulation of node <-> central sync (docs/SYNC.md, "Invariants a test must
// check"). Central and N nodes run in one process on one thread over a simulated network, every
// choice drawn from one PRNG seeded by the seed, every clock a ManualClock moved by the
// simulator: the same seed replays the same run, step for step.
//
// Real parts: each node is a node::Ledger on its own SQLite file with a node::NodeSyncEngine;
// central is central::OpenSqliteStore on its own file with a central::CentralSyncEngine. Only
// the transport is simulated: per node a link with a queue each way, and per message faults
// (drop, duplicate, reorder, delay). A stream opens with its Hello handed straight to
// CentralSyncEngine::Open (refusals are traced and retried later); every later message goes
// through the faulty queues, and a message of an old stream is never delivered on a new one.
// The schedule mixes local stock operations (single and group-committed, idempotent replays of
// earlier request ids; refusals are fine, e.g. NotFound before the feed brought the master
// data), deliveries, pumps, partitions and heals, stream resets, crash-restarts of nodes and of
// central (the objects are destroyed and the same files reopened; in-flight messages are lost),
// late stream closes (central first reads what is left of the old stream on the old session),
// master-data imports at central (the feed grows), node backups and restores from them (a new
// epoch), and clock steps (node clocks also step backwards).
//
// Orders (SimOptions::orders, on by default; a fifth of the steps): central's real
// central::OrderService on the same store captures orders (two channels from the initial import:
// "web", every site, splits allowed; "market", the last two sites, no splits, orders above
// 200.00 held for review; sites alternate between two regions and orders ship to either or to a
// third no site serves; random known SKUs, 1..3 units a line; repeats of an external id with the
// same content must replay, with other content must be refused; unknown SKUs, zero quantities,
// unknown channels and incomplete addresses are tried too), cancels a random order, reviews a
// held one, confirms (or fails) a delivery, and runs a routing pass. The service runs with
// reroute_every_ms = 0 (no background thread: the schedule runs RunRoutingPass) and max_batch =
// 1: its writer thread commits exactly what the simulator asked, in order, while the simulator
// waits for the answer, so one thread works at a time and a seed still replays step for step.
// It registers itself as the store's events-applied listener on the real store (the sabotage
// decorator forwards orders()). At a node (through ApplyOps, single and group-committed, with
// request ids that are replayed later): create a wave; pick wave tasks (bin, SKU, lot, part or
// all of the task); pick a fulfilment's tasks, pack and ship it in one group commit; short-pick
// a line with a reason; pack one package; ship; counter sales and click-and-collect with their
// hand-out; and deliberately wrong actions (ship before pack, pick more than open or from the
// staging bin, pack before picking, short after picking, hand out what is not click-and-collect,
// ship or pick a shipped or cancelled fulfilment, an unknown fulfilment), which must be refused
// and change nothing (the fulfilment, the last movement and the last event stay as they were).
// Random stock operations leave alone what orders own (the staging bin, fulfilment
// reservations) unless SimOptions::stock_ops_touch_orders (see "Known gaps").
//
// After the schedule everything is healed and the faults stop; the run must then converge
// (every outbox acknowledged, every feed applied) within a bounded number of rounds, and the
// invariants are checked:
//   1 convergence: central's mirror of each site equals the site's own stock (on hand per
//     (sku, lot), reserved per sku); central's event digest equals the digest of the node's
//     events; the node's master data equals what central imported for it.
//   4 exactly-once: re-sending every event batch a node ever sent through a fresh session (and
//     re-applying the whole feed at the node) changes nothing.
//   5 orders (with SimOptions::orders), over central's orders and every node's fulfilments:
//     a agreement: every fulfilment central released (or recorded as a node's local sale) exists
//       at that node, with the same status (central DELIVERED = node SHIPPED), the same
//       cancel_requested and the same lines (SKU, quantity, reserved, picked, short, shipped);
//       every fulfilment a node has is known to central, at that site;
//     b released to at most one site at a time: per order line, the units of live (not
//       cancelled) fulfilments (quantity - short), as central sees them and as the nodes do, plus
//       the line's cancelled units never exceed its quantity, and shipped <= quantity;
//     c never shipped and cancelled without an exception: a fulfilment shipped although its
//       cancellation was asked has a cancel_after_ship exception naming it; an order CANCELLED
//       shipped nothing;
//     d stock: besides invariant 1 and Verify (which checks fulfilment reservations), a node's
//       staging bin holds exactly the picked units of its fulfilments not shipped or cancelled;
//     e central raised no "conflict" and no "unknown_fulfilment" exception.
//     Restores (known limitation): restoring a node's backup rewinds its fulfilments while central
//     keeps what it learned from the lost events (and flags restore_lost_events); the node may
//     even reuse a local sale's id for a new sale (see "Known gaps"). So a fulfilment whose state
//     at the node a restore changed (the simulator compares the node's fulfilments just before
//     and after each restore) is compared but a difference is only counted (restore_disagree),
//     b and c skip the orders it belongs to, and e accepts exceptions that name it. Everything
//     else stays checked in runs with restores.
//   2, 3 selling rights (after convergence): every (site, SKU) book at a node equals central's
//     row counter by counter, both sides' identities hold, and no release found units missing
//     without a reported loss (SimOptions::selling_rights = false runs the naive baseline and
//     counts those oversold units instead).
//   6 cycle counts (a few percent of the steps; checked as each count line posts): a count of
//     one SKU in one bin is created and started, counted later (the balance then, sometimes off
//     by a few units) while every other operation goes on, and approved or rejected by a
//     supervisor when out of tolerance; on hand after the adjustment equals counted + the net
//     movements of that (sku, bin, lot) after the count's start seq.
//   7 clocks: movement HLCs strictly increase in seq order across restarts and backward clock
//     steps.
// plus running checks: an event's content never changes between sends, central's mark never
// goes back, an idempotent replay of a request writes nothing (stock and order operations), the
// ledger verifies. Event seqs and movement seqs differ once orders run (fulfilment updates are
// events without a movement): the digest check maps each movement to the event seq it was sent
// with.
//
// Engine bugs this simulation found, now fixed (regression tests in sim_test.cc; the
// avoid_known_engine_bugs option is kept to steer around any future ones):
//   1 CentralSyncEngine::ApplyBatch refused seq == mark + 1 once its hold-back buffer was full,
//     livelocking the session; events are now admitted by distance from the mark.
//   2 NodeSyncEngine::Handle(Welcome) set the ack back on a repeated Welcome; a repeated Welcome
//     is now handled as an ack, which never moves the mark back.
//   3 (protocol) restoring a backup of an epoch central had not yet welcomed named an epoch
//     central never saw; the Hello now carries the restore chain (Hello.ancestors) and central
//     picks the newest epoch it knows (unconfirmed_backups exercises this).
//
// Known gaps (found by this simulation with orders; not fixed here, see the options; seeds at
// the default 1000 steps):
//   - A restored node reuses the ids of local sales the restore lost ("<node>-L<n>" comes from a
//     counter in the node's database), and central merges the new sale's updates into the old
//     sale's order: seed 1, site-1-L2 was a counter sale of N x2 (s553), the restore at s700
//     lost it, the counter sale of C x3 at s936 got the same id; central's order keeps line
//     N x2 with a fulfilment that shipped C x3 ("shipped 3 of 2").
//   - A restore rewinds the node's feed mark, so releases come again; a release the node had
//     closed (every unit short at release, so cancelled, and re-routed by central) is accepted
//     anew when stock is there now: seed 3, O00000022-1 at site-3 (released s625, restore from
//     an old backup at s934) is live at the node while central keeps it cancelled ("conflict").
//   Both are covered by the restore rule above (the fulfilments are ones a restore changed).
//   - Plain stock operations may release or consume a fulfilment's reservation (reference = the
//     fulfilment id) and move, scrap or consume picked goods out of the staging bin; the ledger
//     accepts them, Verify then reports fulfilment_reserved differences, a later hand-out or
//     ship fails and a cancel leaves goods "in STAGING" (--stock-ops-touch-orders, e.g. seed
//     35: "consume B site-1-L1" emptied a click-and-collect reservation). Off by default.
//
// Thread-safety: one simulation is single-threaded (with orders, the order service's writer
// thread runs each call while the simulator waits for it); independent simulations (different
// seeds) may run on different threads (RunSeeds does).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace depot::sim {

// A deliberate misbehaviour of central's store (a decorator around the real one), to prove the
// invariant checks catch a broken exactly-once rule. Production code is untouched.
enum class Sabotage {
  kNone,
  // Every fifth ApplyEvents call also applies the batch's first event a second time (its
  // effects land in the mirror and it is counted in the digest again).
  kDoubleApply,
  // From the exactly-once check on (after convergence), the store forgets the last two events
  // of a node's mark when asked for the node record (as if central's database had been rolled
  // back while keeping the effects), so a new session resends them, and the store then applies
  // them again instead of refusing seq <= mark.
  kForgetMark,
  // Orders (invariant 5): the store hands the engine every FulfilmentCancel entry of a node's
  // feed with its body removed (same seq, so the feed stays gap-free), so central believes it
  // asked for a cancellation the node never hears of.
  kDropCancel,
};

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 3;
  int steps = 1000;             // random schedule steps before the final heal
  int quiesce_rounds = 600;     // bound on the rounds the healed system may take to converge
  std::string temp_root;        // "" = /dev/shm when present, else the system temp directory
  bool keep_dir = false;        // keep the SQLite files (for debugging a failure)
  bool echo_trace = false;      // print each trace line to stderr as it happens
  Sabotage sabotage = Sabotage::kNone;
  // Steer the schedule around engine bugs found by this simulation and not fixed yet, so that
  // other bugs can still be found (see "Known engine bugs" above). Off by default.
  bool avoid_known_engine_bugs = false;
  // Also take backups of an epoch central has not welcomed yet (a node restored, then backed up
  // while still offline). Restoring such a backup is refused by central (unknown_epoch) and the
  // node never syncs again: see "Known protocol gap" above. Off by default.
  bool unconfirmed_backups = false;
  // Orders (invariant 5): central's OrderService captures, cancels and routes orders, the nodes
  // wave, pick, short, pack, ship and sell at the counter. Off = the stock-only schedule.
  bool orders = true;
  // Let random stock operations also draw on what orders own at a node: the staging bin and the
  // reservations of fulfilments (see "Known gaps" above). Off by default.
  bool stock_ops_touch_orders = false;
  // Selling rights at the nodes and in central's routing (docs/SYNC.md). false runs the same
  // schedule against the naive baseline (nodes sell against their ATP, central routes against its
  // mirror of each site's stock): releases then find units gone at the node
  // ("no_stock_at_release"), which the run counts in SimStats.oversold_units instead of failing.
  bool selling_rights = true;
};

// What one run exercised (to see that schedules are not vacuous) and what happened.
struct SimStats {
  uint64_t runs = 0;
  uint64_t ops_ok = 0, ops_refused = 0, ops_not_found = 0, replays = 0;
  uint64_t messages_sent = 0, delivered = 0, dropped = 0, duplicated = 0, reordered = 0,
           delayed = 0, lost_in_flight = 0;
  uint64_t event_batches = 0, events_sent = 0, events_resent = 0, feed_entries_sent = 0;
  uint64_t connects = 0, open_refused = 0, node_stream_errors = 0, central_stream_errors = 0;
  uint64_t partitions = 0, node_crashes = 0, central_crashes = 0, late_closes = 0, zombie_deliveries = 0;
  uint64_t imports = 0, clock_back_steps = 0, welcome_timeouts = 0, backups = 0, restores = 0;
  uint64_t events_final = 0, quiesce_rounds = 0, max_quiesce_rounds = 0;
  // Orders. Central: captures (ok, replayed, refused), reviews, cancel calls (ok = accepted,
  // refused), routing passes and the orders they changed, delivery confirmations. Nodes: waves,
  // picks, short picks, packs, ships, counter sales, click-and-collect orders and hand-outs (ok
  // operations), refused order operations, idempotent replays of order operations (request_id),
  // and deliberately wrong actions (all must be refused).
  uint64_t orders_captured = 0, capture_replays = 0, orders_refused = 0, reviews = 0;
  uint64_t cancels_asked = 0, cancels_refused = 0, routing_passes = 0, rerouted = 0,
           deliveries = 0;
  uint64_t waves = 0, picks = 0, shorts = 0, packs = 0, ships = 0, counter_sales = 0,
           collects = 0, hand_outs = 0, order_ops_refused = 0, order_replays = 0,
           wrong_refused = 0;
  // Final state (central, after convergence): fulfilments released by central, shipped (or
  // delivered), cancelled at the customer's request (confirmed by the node), shipped although a
  // cancel was asked (each with its cancel_after_ship exception); fulfilments whose state at the
  // node a restore changed (exempt from the agreement check), and how many of them disagree.
  uint64_t released = 0, shipped_final = 0, cancels_confirmed = 0, cancel_after_ship = 0,
           restore_exempt = 0, restore_disagree = 0;
  // Selling rights (invariants 2 and 3, after convergence): (site, SKU) books compared between
  // the node and central, units central's releases found missing at a node without a reported
  // loss (oversold; must be 0), and books exempt because their node was restored from a backup.
  uint64_t rights_books = 0, rights_granted_units = 0, oversold_units = 0,
           rights_restore_exempt = 0;
  // Cycle counts (invariant 6, checked as each line posts): tasks created, lines posted, those
  // with an adjustment, lines whose (sku, bin, lot) moved between start and posting, and count
  // operations refused (counting a line already posted, a bin with an open count, ...).
  uint64_t counts_created = 0, count_lines_posted = 0, count_adjustments = 0,
           counts_with_moves_after_start = 0, count_ops_refused = 0;
  void Add(const SimStats& o);
  uint64_t idempotent_replays() const { return replays; }
};

struct SimResult {
  uint64_t seed = 0;
  std::vector<std::string> failures;  // empty = every invariant held
  std::vector<std::string> trace;     // one line per step (and per notable event after it)
  SimStats stats;
  double seconds = 0;
  bool ok() const { return failures.empty(); }
};

// Runs one seed.
SimResult RunSimulation(const SimOptions& options);

// Runs seeds start, start+1, ... (count of them) on `jobs` threads; results in seed order.
// Passing runs keep no trace (to save memory). on_done (optional) is called under a lock as
// each run finishes.
std::vector<SimResult> RunSeeds(const SimOptions& base, uint64_t start, int count, int jobs,
                                const std::function<void(const SimResult&)>& on_done = {});

// The depot-sim command line that replays a run and prints its trace.
std::string ReplayCommand(const SimOptions& options);
// Seed, failures, replay command and the trace (at most max_trace_lines lines, the last ones).
std::string FormatFailure(const SimResult& result, const SimOptions& options,
                          size_t max_trace_lines = 100000);
std::string FormatStats(const SimStats& stats);

}  // namespace depot::sim
