#include "tests/sim/sim.h"

#include <stdlib.h>
#include <unistd.h>

#include <SQLiteCpp/Backup.h>
#include <SQLiteCpp/Database.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "central/central_sync.h"
#include "central/orders.h"
#include "central/sqlite_store.h"
#include "common/clock.h"
#include "common/order_state.h"
#include "common/request_context.h"
#include "common/stock_rules.h"
#include "node/fulfilment.h"
#include "node/ledger.h"
#include "node/node_sync.h"

namespace depot::sim {
namespace {

using absl::StrCat;
using central::SiteMirror;

constexpr int64_t kMs = 1000;  // ManualClock counts microseconds

std::string StatusText(const absl::Status& s) {
  return StrCat(absl::StatusCodeToString(s.code()), ": ", std::string(s.message()));
}

// ---------------------------------------------------------------------------------------------
// Sabotage: a CentralStore decorator that breaks exactly-once on purpose.

struct Shadow {  // the misbehaving store's extra state; survives central crash-restarts
  std::map<std::string, SiteMirror> extra;        // node -> effects applied a second time
  std::map<std::string, uint64_t> extra_events;   // node -> events applied a second time
  std::map<std::string, uint64_t> extra_digest;   // node -> their hashes
  uint64_t calls = 0;
  bool forgetting = false;  // kForgetMark: armed by the simulator for the exactly-once check
};

void AddEffects(SiteMirror* m, const v1::Movement& mv) {
  const MovementEffects fx = EffectsOf(mv);
  int64_t on_hand = 0;
  for (int i = 0; i < fx.stock_count; ++i) on_hand += fx.stock[i].delta;
  if (on_hand != 0) m->on_hand[{mv.sku(), mv.lot()}] += on_hand;
  if (fx.reserved_delta != 0) m->reserved[mv.sku()] += fx.reserved_delta;
}

class SabotageStore : public central::CentralStore {
 public:
  SabotageStore(std::unique_ptr<central::CentralStore> real, Sabotage mode, Shadow* shadow)
      : real_(std::move(real)), mode_(mode), shadow_(shadow) {}

  absl::StatusOr<central::NodeRecord> GetNode(const std::string& node_id) override {
    auto n = real_->GetNode(node_id);
    if (n.ok() && mode_ == Sabotage::kForgetMark && shadow_->forgetting) {
      n->applied_seq = n->applied_seq >= 2 ? n->applied_seq - 2 : 0;
    }
    return n;
  }
  absl::StatusOr<std::vector<central::NodeRecord>> ListNodes() override {
    return real_->ListNodes();
  }
  absl::StatusOr<bool> IsRetiredEpoch(const std::string& node_id, uint64_t epoch) override {
    return real_->IsRetiredEpoch(node_id, epoch);
  }
  absl::StatusOr<uint64_t> BeginEpoch(const std::string& node_id, uint64_t new_epoch,
                                      uint64_t keep_through) override {
    return real_->BeginEpoch(node_id, new_epoch, keep_through);
  }
  absl::StatusOr<uint64_t> ApplyEvents(const std::string& node_id, uint64_t epoch,
                                       const std::vector<const v1::Event*>& events) override {
    if (mode_ != Sabotage::kDoubleApply && mode_ != Sabotage::kForgetMark) {
      return real_->ApplyEvents(node_id, epoch, events);
    }
    if (mode_ == Sabotage::kDoubleApply) {
      auto r = real_->ApplyEvents(node_id, epoch, events);
      if (r.ok() && !events.empty() && ++shadow_->calls % 5 == 0) Again(node_id, *events[0]);
      return r;
    }
    // kForgetMark: events at or below the real mark are applied again instead of refused.
    auto real = real_->GetNode(node_id);
    if (!real.ok()) return real.status();
    std::vector<const v1::Event*> fresh;
    uint64_t last = 0;
    for (const v1::Event* e : events) {
      last = e->seq();
      if (e->seq() <= real->applied_seq) {
        Again(node_id, *e);
      } else {
        fresh.push_back(e);
      }
    }
    if (fresh.empty()) return last;
    return real_->ApplyEvents(node_id, epoch, fresh);
  }
  absl::StatusOr<std::pair<uint64_t, uint64_t>> EventDigest(const std::string& node_id) override {
    auto d = real_->EventDigest(node_id);
    if (d.ok()) {
      d->first += shadow_->extra_digest[node_id];
      d->second += shadow_->extra_events[node_id];
    }
    return d;
  }
  absl::StatusOr<std::vector<v1::FeedEntry>> ReadFeed(const std::string& node_id, uint64_t after,
                                                      uint32_t limit) override {
    auto feed = real_->ReadFeed(node_id, after, limit);
    if (feed.ok() && mode_ == Sabotage::kDropCancel) {
      // Same seq and HLC, no body: the node skips it like a kind it does not know.
      for (auto& e : *feed) {
        if (e.has_cancel()) e.clear_cancel();
      }
    }
    return feed;
  }
  absl::Status AckFeed(const std::string& node_id, uint64_t seq) override {
    return real_->AckFeed(node_id, seq);
  }
  absl::Status AddException(const std::string& kind, const std::string& node_id,
                            const std::string& message, int64_t at_ms) override {
    return real_->AddException(kind, node_id, message, at_ms);
  }
  absl::StatusOr<v1::ListExceptionsResponse> ListExceptions(const std::string& node_id,
                                                            const std::string& kind) override {
    return real_->ListExceptions(node_id, kind);
  }
  absl::StatusOr<int64_t> Import(const std::string& kind, const std::string& csv) override {
    return real_->Import(kind, csv);
  }
  absl::StatusOr<v1::NetworkStockResponse> NetworkStock(const std::string& sku,
                                                        const std::string& site) override {
    return real_->NetworkStock(sku, site);
  }
  absl::StatusOr<SiteMirror> Mirror(const std::string& site) override {
    auto m = real_->Mirror(site);
    if (!m.ok()) return m;
    for (auto& [k, v] : shadow_->extra[site].on_hand) m->on_hand[k] += v;
    for (auto& [k, v] : shadow_->extra[site].reserved) m->reserved[k] += v;
    std::erase_if(m->on_hand, [](const auto& kv) { return kv.second == 0; });
    std::erase_if(m->reserved, [](const auto& kv) { return kv.second == 0; });
    return m;
  }
  // The order side is the real store's: the OrderService writes orders, feed entries and
  // exceptions through it directly (kDropCancel acts on the feed as the engine reads it).
  central::OrderStore* orders() override { return real_->orders(); }

 private:
  void Again(const std::string& node_id, const v1::Event& e) {
    if (!e.has_movement()) return;
    AddEffects(&shadow_->extra[node_id], e.movement());
    shadow_->extra_events[node_id] += 1;
    shadow_->extra_digest[node_id] += EventHash(e.seq(), e.movement());
  }

  std::unique_ptr<central::CentralStore> real_;
  Sabotage mode_;
  Shadow* shadow_;
};

// ---------------------------------------------------------------------------------------------
// The simulated world.

template <typename M>
struct InFlight {
  uint64_t generation = 0;  // the connection the message belongs to
  int64_t not_before = 0;   // step before which a delayed message is not delivered
  M message;
};

struct SkuModel {
  std::string name, tracking;  // tracking: none | lot
  bool expiry = false, negative = false;
  int64_t safety = 0;
};
struct BinModel {
  std::string zone;
  int64_t walk = 0;
};

struct NodeSim {
  int index = 0;
  std::string id;
  std::string path;
  std::unique_ptr<ManualClock> clock;
  std::unique_ptr<node::Ledger> ledger;
  std::unique_ptr<node::NodeSyncEngine> engine;
  node::NodeSyncOptions sync_options;

  bool restored = false;     // restored from a backup at least once (rights checks exempt)
  std::vector<std::string> counts;  // cycle counts created here and not done (invariant 6)
  bool link_up = true;       // network not partitioned
  bool stream_open = false;  // a transport stream exists (Hello accepted by central)
  uint64_t generation = 0;
  uint64_t session = 0;
  int64_t stream_opened_ms = 0;  // node clock when the stream opened (welcome timeout)
  std::deque<InFlight<v1::NodeMessage>> up;       // node -> central
  std::deque<InFlight<v1::CentralMessage>> down;  // central -> node
  // Streams whose end central has not noticed yet, with what the node had sent on them that
  // central has not read yet: central may still read it (on the old session) before it notices.
  struct Zombie {
    uint64_t session = 0;
    std::deque<InFlight<v1::NodeMessage>> unread;
  };
  std::vector<Zombie> late_close;

  // What the node ever sent: (epoch, seq) -> serialized event.
  std::map<std::pair<uint64_t, uint64_t>, std::string> sent;
  // Movement (seq, hlc) -> (epoch, event seq) it was sent with. Fulfilment updates are events
  // without a movement, so event seqs and movement seqs differ once orders run; the digest
  // check needs the event seq of every movement.
  std::map<std::pair<uint64_t, uint64_t>, std::pair<uint64_t, uint64_t>> event_of_movement;
  std::map<uint64_t, std::string> feed_seen;  // feed seq -> serialized entry, as central sent it
  uint64_t max_mark_seen = 0;                 // central's highest mark told to this node (epoch)
  uint64_t mark_epoch = 0;
  uint64_t max_feed_ack = 0;
  bool mark_regression_reported = false;

  // Local write bookkeeping.
  uint64_t last_hlc = 0;      // HLC of the newest movement (invariant 7, checked as we go)
  int request_counter = 0;
  struct Request {
    v1::Operation op;        // with request_id
    uint64_t first_seq = 0;  // its first movement's seq (0: it wrote none)
    uint64_t event_bound = 0;  // LastEventSeq after it: its events are at or below
  };
  std::vector<Request> requests;
  int tracking_counter = 0;
  // Fulfilments whose state at this node a restore changed (rewound or lost): central keeps
  // what it learned before, so node and central may disagree on them for good (sim.h).
  std::set<std::string> restored_fulfilments;
  std::vector<std::string> backups;
  int backup_counter = 0;
  // False from a restore until central has welcomed the new epoch: a backup taken before that
  // would name an epoch central never saw (see BackupNode).
  bool epoch_confirmed = true;
};

class Sim {
 public:
  explicit Sim(const SimOptions& options) : opt_(options), rng_(options.seed) {
    result_.seed = options.seed;
    result_.stats.runs = 1;
  }
  SimResult Run();

 private:
  // Randomness: one PRNG, our own arithmetic (std distributions differ between libraries).
  uint64_t U(uint64_t n) { return n <= 1 ? 0 : rng_() % n; }
  int64_t Range(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(U(hi - lo + 1)); }
  bool Chance(int percent) { return static_cast<int>(U(100)) < percent; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) { return v[U(v.size())]; }

  void Trace(const std::string& line);
  void LabelEpoch(uint64_t epoch);
  std::string Sanitize(std::string text) const;
  void Fail(const std::string& what);

  // Setup and lifecycle.
  bool Setup();
  bool OpenCentral();
  bool OpenNode(NodeSim& n);
  void ImportInitial();
  std::string SkuCsv(const std::vector<std::string>& codes);
  std::string BinCsv(const std::string& site, const std::vector<std::string>& codes);

  // Schedule steps.
  void RandomStep();
  void LocalOp(NodeSim& n);
  v1::Operation RandomOperation(NodeSim& n);
  void ApplyOps(NodeSim& n, const std::vector<v1::Operation>& ops, const std::string& what);
  void CountStep(NodeSim& n);
  void CheckCountLine(NodeSim& n, const v1::CountLine& line);
  void ReplayRequest(NodeSim& n);
  bool Deliver(NodeSim& n, bool upward, bool faults);
  void PumpNode(NodeSim& n, int64_t advance_ms);
  void PumpFeed(NodeSim& n);
  void Connect(NodeSim& n);
  void EndStream(NodeSim& n, const std::string& why, bool maybe_late);
  void LateClose(NodeSim& n, bool faults);
  void Partition(NodeSim& n);
  void Heal(NodeSim& n);
  void CrashNode(NodeSim& n);
  void CrashCentral();
  void BackupNode(NodeSim& n);
  void RestoreNode(NodeSim& n);
  void Import();
  void AdvanceClocks();
  void SendUp(NodeSim& n, std::vector<v1::NodeMessage>& out);
  void SendDown(NodeSim& n, std::vector<v1::CentralMessage>& out);

  // Final phase and invariants.
  bool Converged(NodeSim& n, std::string* why);
  bool Quiesce();
  void CheckInvariants();
  absl::StatusOr<SiteMirror> NodeStock(NodeSim& n);
  absl::StatusOr<std::vector<v1::Movement>> AllMovements(NodeSim& n);
  void CheckConvergence(NodeSim& n, const std::vector<v1::Movement>& movements);
  void CheckMasterData(NodeSim& n);
  void CheckExactlyOnce(NodeSim& n);
  void CheckClocks(NodeSim& n, const std::vector<v1::Movement>& movements);
  void CheckExceptions();

  // Orders (invariant 5).
  void ImportChannels();
  void OrderStep(NodeSim& n);
  void CaptureOrder();
  void CancelOrder();
  void RoutingPass();
  void ReviewOrder();
  void ConfirmDelivery();
  void NodeOrderOp(NodeSim& n);
  void WrongAction(NodeSim& n, const std::vector<v1::NodeFulfilment>& open,
                   const std::vector<v1::PickTask>& tasks);
  std::map<std::string, std::string> FulfilmentStates(NodeSim& n);
  void CheckOrders();
  void CheckRights();
  void CountNaiveOversells();
  void CountOrderOp(const v1::Operation& op);

  std::string Describe(const v1::NodeMessage& m);
  std::string Describe(const v1::CentralMessage& m);
  std::string DescribeOp(const v1::Operation& op);
  std::string Prefix() const;

  const SimOptions opt_;
  std::mt19937_64 rng_;
  SimResult result_;
  SimStats& stats_ = result_.stats;
  std::string dir_;
  int64_t step_ = 0;
  bool quiescing_ = false;
  int64_t quiesce_round_ = 0;
  bool restores_happened_ = false;
  std::vector<std::pair<uint64_t, std::string>> epoch_labels_;

  // Central.
  ManualClock central_clock_;
  std::unique_ptr<central::CentralStore> store_;   // what the engine uses (maybe sabotaged)
  central::CentralStore* real_store_ = nullptr;     // the real one, for our own bookkeeping
  std::unique_ptr<central::CentralSyncEngine> central_;
  central::CentralSyncOptions central_options_;
  std::unique_ptr<central::OrderService> orders_;  // when opt_.orders
  Shadow shadow_;

  // Orders as the sim captured them at central.
  std::vector<std::string> order_ids_;
  std::deque<std::pair<v1::CaptureOrderRequest, std::string>> recent_captures_;  // with order id
  int external_counter_ = 0;

  std::vector<std::unique_ptr<NodeSim>> nodes_;

  // Master data as imported at central.
  std::map<std::string, SkuModel> skus_;
  std::map<std::string, std::map<std::string, BinModel>> bins_;  // site -> bin -> model
  int import_counter_ = 0;
  std::vector<std::string> spare_skus_ = {"C", "D"};
  std::vector<std::string> spare_bins_ = {"C1", "C2", "D1"};
};

std::string Sim::Prefix() const {
  return quiescing_ ? StrCat("q", quiesce_round_, " ") : StrCat("s", step_, " ");
}

// Epochs are random (NewEpoch): traces name them by label so that a replay prints the same text.
void Sim::LabelEpoch(uint64_t epoch) {
  if (epoch == 0) return;
  for (const auto& [e, label] : epoch_labels_) {
    if (e == epoch) return;
  }
  epoch_labels_.emplace_back(epoch, StrCat("E", epoch_labels_.size() + 1));
}

std::string Sim::Sanitize(std::string text) const {
  for (const auto& [e, label] : epoch_labels_) {
    const std::string digits = StrCat(e);
    for (size_t at = text.find(digits); at != std::string::npos; at = text.find(digits, at)) {
      text.replace(at, digits.size(), label);
      at += label.size();
    }
  }
  return text;
}

void Sim::Trace(const std::string& line) {
  // A run that does not converge repeats itself: keep the first rounds and every 100th.
  if (quiescing_ && quiesce_round_ > 20 && quiesce_round_ % 100 != 0) return;
  std::string full = Prefix() + Sanitize(line);
  if (opt_.echo_trace) std::cerr << full << "\n";
  result_.trace.push_back(std::move(full));
}

void Sim::Fail(const std::string& raw) {
  const std::string what = Sanitize(raw);
  std::string full = Prefix() + "FAILURE: " + what;
  if (opt_.echo_trace) std::cerr << full << "\n";
  result_.trace.push_back(full);
  if (result_.failures.size() < 50) result_.failures.push_back(what);
}

// ---------------------------------------------------------------------------------------------
// Setup

bool Sim::Setup() {
  std::string root = opt_.temp_root;
  if (root.empty()) {
    root = std::filesystem::exists("/dev/shm") ? "/dev/shm"
                                               : std::filesystem::temp_directory_path().string();
  }
  std::string tmpl = StrCat(root, "/depot-sim-", opt_.seed, "-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    Fail(StrCat("cannot create a temporary directory under ", root));
    return false;
  }
  dir_ = buf.data();

  central_clock_.Set(1'700'000'000'000'000);
  central_options_.feed_batch = static_cast<uint32_t>(Range(1, 8));
  const bool small_hold_back = Chance(30);
  central_options_.hold_back_limit = static_cast<uint32_t>(
      small_hold_back && !opt_.avoid_known_engine_bugs ? Range(2, 20) : 100000);
  if (!OpenCentral()) return false;

  for (int i = 0; i < opt_.nodes; ++i) {
    auto n = std::make_unique<NodeSim>();
    n->index = i;
    n->id = StrCat("site-", i + 1);
    n->path = StrCat(dir_, "/", n->id, ".db");
    n->clock = std::make_unique<ManualClock>(central_clock_.NowMicros() + Range(-2000, 2000) * kMs);
    n->sync_options.batch_size = static_cast<uint32_t>(Range(1, 20));
    n->sync_options.window = n->sync_options.batch_size * static_cast<uint32_t>(Range(1, 6));
    n->sync_options.retransmit_after_ms = Range(100, 400);
    n->sync_options.heartbeat_every_ms = Range(300, 1500);
    Trace(StrCat("setup ", n->id, " batch=", n->sync_options.batch_size,
                 " window=", n->sync_options.window,
                 " retransmit_ms=", n->sync_options.retransmit_after_ms,
                 " heartbeat_ms=", n->sync_options.heartbeat_every_ms));
    nodes_.push_back(std::move(n));
  }
  Trace(StrCat("setup central feed_batch=", central_options_.feed_batch,
               " hold_back_limit=", central_options_.hold_back_limit));
  ImportInitial();
  for (auto& n : nodes_) {
    if (!OpenNode(*n)) return false;
  }
  return true;
}

bool Sim::OpenCentral() {
  auto store = central::OpenSqliteStore({.path = dir_ + "/central.db", .durable = false});
  if (!store.ok()) {
    Fail(StrCat("central store does not open: ", StatusText(store.status())));
    return false;
  }
  store_ = std::move(*store);
  real_store_ = store_.get();
  if (opt_.sabotage != Sabotage::kNone) {
    store_ = std::make_unique<SabotageStore>(std::move(store_), opt_.sabotage, &shadow_);
  }
  central_ = std::make_unique<central::CentralSyncEngine>(store_.get(), &central_clock_,
                                                          central_options_);
  if (opt_.orders) {
    // No background thread (reroute_every_ms = 0: the schedule runs the routing passes), and one
    // operation per write transaction (max_batch = 1), so the service's writer thread commits
    // exactly what the simulator asked, in its order, each with its own clock reading: the run
    // stays deterministic although the service hands every call to its writer thread (the
    // simulator waits for each answer, so only one thread works at a time).
    central::OrderServiceOptions o;
    o.reroute_every_ms = 0;
    o.max_batch = 1;
    o.selling_rights = opt_.selling_rights;
    orders_ = std::make_unique<central::OrderService>(
        store_.get(), &central_clock_,
        [this] { return central_->OnlineNodes(); }, /*feed_changed=*/nullptr, o);
  }
  return true;
}

bool Sim::OpenNode(NodeSim& n) {
  auto ledger = node::Ledger::Open({.path = n.path,
                                    .node_id = n.id,
                                    .durable = false,
                                    .central_managed = true,
                                    .clock = n.clock.get(),
                                    .read_connections = 1,
                                    .selling_rights = opt_.selling_rights});
  if (!ledger.ok()) {
    Fail(StrCat(n.id, ": ledger does not open: ", StatusText(ledger.status())));
    return false;
  }
  n.ledger = std::move(*ledger);
  n.engine = std::make_unique<node::NodeSyncEngine>(n.ledger.get(), n.clock.get(),
                                                    n.sync_options);
  LabelEpoch(n.ledger->GetIdentity().epoch);
  return true;
}

std::string Sim::SkuCsv(const std::vector<std::string>& codes) {
  std::string csv = "code,gtin,name,unit,tracking,expiry_tracked,allow_negative,safety_stock\n";
  for (const auto& c : codes) {
    const SkuModel& s = skus_[c];
    absl::StrAppend(&csv, c, ",,", s.name, ",ea,", s.tracking, ",", s.expiry ? "true" : "false",
                    ",", s.negative ? "true" : "false", ",", s.safety, "\n");
  }
  return csv;
}

std::string Sim::BinCsv(const std::string& site, const std::vector<std::string>& codes) {
  std::string csv = "site,code,zone,walk_order\n";
  for (const auto& c : codes) {
    const BinModel& b = bins_[site][c];
    absl::StrAppend(&csv, site, ",", c, ",", b.zone, ",", b.walk, "\n");
  }
  return csv;
}

void Sim::ImportInitial() {
  std::string sites = "id,name,kind,region\n";
  // Two routing regions (orders ship to one of them, or to a third no site serves).
  for (auto& n : nodes_) {
    absl::StrAppend(&sites, n->id, ",Site ", n->index + 1, ",warehouse,",
                    n->index % 2 == 0 ? "north" : "south", "\n");
  }
  skus_["A"] = {"Plain widget", "none", false, false, 0};
  skus_["B"] = {"Widget with safety stock", "none", false, false, Range(1, 3)};
  skus_["L"] = {"Yoghurt", "lot", true, false, 0};
  skus_["N"] = {"Cable", "none", false, true, 0};
  std::vector<std::string> sku_codes = {"A", "B", "L", "N"};
  // Sites first (registers the nodes), or SKUs first (new sites then get every SKU): both ways.
  const bool sites_first = Chance(50);
  auto import = [&](const std::string& kind, const std::string& csv) {
    auto r = store_->Import(kind, csv);
    if (!r.ok()) Fail(StrCat("initial import of ", kind, " failed: ", StatusText(r.status())));
  };
  if (sites_first) import("sites", sites);
  import("skus", SkuCsv(sku_codes));
  if (!sites_first) import("sites", sites);
  for (auto& n : nodes_) {
    bins_[n->id]["A1"] = {"A", 1};
    bins_[n->id]["A2"] = {"A", 2};
    bins_[n->id]["B1"] = {"B", 3};
    import("bins", BinCsv(n->id, {"A1", "A2", "B1"}));
  }
  Trace(StrCat("setup imported sites, skus A B L N, bins A1 A2 B1 (", sites_first ? "sites" : "skus",
               " first)"));
  if (opt_.orders) ImportChannels();
}

// ---------------------------------------------------------------------------------------------
// Messages

std::string Sim::Describe(const v1::NodeMessage& m) {
  switch (m.body_case()) {
    case v1::NodeMessage::kHello: return "hello";
    case v1::NodeMessage::kEvents: {
      const auto& e = m.events().events();
      if (e.empty()) return "events[]";
      return StrCat("events[", e[0].seq(), "..", e[e.size() - 1].seq(), "]");
    }
    case v1::NodeMessage::kFeedAck: return StrCat("feed_ack ", m.feed_ack().applied_seq());
    case v1::NodeMessage::kHeartbeat: return "heartbeat";
    default: return "empty";
  }
}

std::string Sim::Describe(const v1::CentralMessage& m) {
  switch (m.body_case()) {
    case v1::CentralMessage::kWelcome:
      return StrCat("welcome ", m.welcome().applied_event_seq());
    case v1::CentralMessage::kAck: return StrCat("ack ", m.ack().applied_seq());
    case v1::CentralMessage::kFeed: {
      const auto& e = m.feed().entries();
      if (e.empty()) return "feed[]";
      return StrCat("feed[", e[0].seq(), "..", e[e.size() - 1].seq(), "]");
    }
    case v1::CentralMessage::kHeartbeat: return "heartbeat";
    default: return "empty";
  }
}

void Sim::SendUp(NodeSim& n, std::vector<v1::NodeMessage>& out) {
  for (auto& m : out) {
    if (!n.stream_open) {
      Trace(StrCat(n.id, " produced ", Describe(m), " with no stream open (dropped)"));
      continue;
    }
    if (m.has_events()) {
      ++stats_.event_batches;
      uint64_t expect = 0;
      for (const auto& e : m.events().events()) {
        ++stats_.events_sent;
        if (e.node_id() != n.id) Fail(StrCat(n.id, " sent an event of node '", e.node_id(), "'"));
        if (expect != 0 && e.seq() != expect) {
          Fail(StrCat(n.id, " sent a batch that is not contiguous: ", Describe(m)));
        }
        expect = e.seq() + 1;
        std::string bytes = e.SerializeAsString();
        auto key = std::make_pair(e.epoch(), e.seq());
        if (e.has_movement()) {
          n.event_of_movement[{e.movement().seq(), e.movement().hlc()}] = key;
        }
        auto it = n.sent.find(key);
        if (it == n.sent.end()) {
          n.sent.emplace(key, std::move(bytes));
        } else {
          ++stats_.events_resent;
          if (it->second != bytes) {
            Fail(StrCat(n.id, " event seq ", e.seq(), " changed content between two sends"));
          }
        }
      }
    }
    if (m.has_feed_ack()) {
      if (m.feed_ack().applied_seq() < n.max_feed_ack) {
        Fail(StrCat(n.id, " feed mark went back from ", n.max_feed_ack, " to ",
                    m.feed_ack().applied_seq()));
      }
      n.max_feed_ack = std::max(n.max_feed_ack, m.feed_ack().applied_seq());
    }
    ++stats_.messages_sent;
    n.up.push_back({n.generation, step_, std::move(m)});
  }
  out.clear();
}

void Sim::SendDown(NodeSim& n, std::vector<v1::CentralMessage>& out) {
  for (auto& m : out) {
    uint64_t mark = 0;
    bool has_mark = false;
    if (m.has_welcome()) mark = m.welcome().applied_event_seq(), has_mark = true;
    if (m.has_ack()) mark = m.ack().applied_seq(), has_mark = true;
    if (has_mark) {
      const uint64_t epoch = n.ledger->GetIdentity().epoch;
      if (epoch != n.mark_epoch) {
        // A new epoch (restore) may start below the old mark: the restore lost events.
        n.mark_epoch = epoch;
        n.max_mark_seen = 0;
      }
      if (mark < n.max_mark_seen && !n.mark_regression_reported) {
        n.mark_regression_reported = true;  // once per node: the invariants still get checked
        Fail(StrCat("central's mark for ", n.id, " went back from ", n.max_mark_seen, " to ",
                    mark, " (", Describe(m), ")"));
      }
      if (mark > n.ledger->LastEventSeq()) {
        Fail(StrCat("central acknowledged ", n.id, " up to ", mark, " beyond its last event ",
                    n.ledger->LastEventSeq()));
      }
      n.max_mark_seen = std::max(n.max_mark_seen, mark);
    }
    if (m.has_feed()) {
      for (const auto& e : m.feed().entries()) {
        ++stats_.feed_entries_sent;
        std::string bytes = e.SerializeAsString();
        auto [it, fresh] = n.feed_seen.emplace(e.seq(), bytes);
        if (!fresh && it->second != bytes) {
          Fail(StrCat("feed entry ", e.seq(), " for ", n.id, " changed content between sends"));
        }
      }
    }
    ++stats_.messages_sent;
    n.down.push_back({n.generation, step_, std::move(m)});
  }
  out.clear();
}

// Takes one message off a queue, applying faults; returns whether a message was handled.
bool Sim::Deliver(NodeSim& n, bool upward, bool faults) {
  auto take = [&](auto& q) -> std::optional<std::decay_t<decltype(q.front())>> {
    std::vector<size_t> eligible;
    for (size_t i = 0; i < q.size() && eligible.size() < 4; ++i) {
      if (!faults || q[i].not_before <= step_) eligible.push_back(i);
    }
    if (eligible.empty()) return std::nullopt;
    size_t pick = eligible[0];
    std::string dir = upward ? StrCat(n.id, "->central") : StrCat("central->", n.id);
    if (faults) {
      int r = static_cast<int>(U(100));
      if constexpr (std::is_same_v<std::decay_t<decltype(q.front().message)>,
                                   v1::CentralMessage>) {
        // Known engine bug 2 (see sim.h): a late copy of a Welcome sets the node's ack back.
        if (opt_.avoid_known_engine_bugs && q[pick].message.has_welcome() && r >= 8) r = 99;
      }
      if (r < 8) {
        Trace(StrCat(dir, " DROP ", Describe(q[pick].message)));
        ++stats_.dropped;
        q.erase(q.begin() + pick);
        return std::nullopt;
      }
      if (r < 14) {
        auto copy = q[pick];
        copy.not_before = step_ + Range(0, 10);
        q.insert(q.begin() + pick + 1 + U(q.size() - pick), copy);
        Trace(StrCat(dir, " DUPLICATE ", Describe(q[pick].message)));
        ++stats_.duplicated;
      } else if (r < 22 && eligible.size() > 1) {
        pick = eligible[1 + U(eligible.size() - 1)];
        Trace(StrCat(dir, " REORDER: ", Describe(q[pick].message), " overtakes"));
        ++stats_.reordered;
      } else if (r < 28) {
        q[pick].not_before = step_ + Range(1, 20);
        Trace(StrCat(dir, " DELAY ", Describe(q[pick].message), " until s", q[pick].not_before));
        ++stats_.delayed;
        return std::nullopt;
      }
    }
    auto item = std::move(q[pick]);
    q.erase(q.begin() + pick);
    if (item.generation != n.generation) {
      Fail(StrCat(dir, ": a message of connection ", item.generation,
                  " was about to be delivered on connection ", n.generation));
      return std::nullopt;
    }
    return item;
  };

  if (upward) {
    if (n.up.empty()) return false;
    auto item = take(n.up);
    if (!item) return true;
    ++stats_.delivered;
    std::vector<v1::CentralMessage> out;
    auto s = central_->Handle(n.session, item->message, &out);
    Trace(StrCat(n.id, "->central ", Describe(item->message),
                 s.ok() ? "" : StrCat(" -> ERROR ", StatusText(s))));
    if (!s.ok()) {
      ++stats_.central_stream_errors;
      EndStream(n, StrCat("central closed the stream: ", StatusText(s)), false);
      return true;
    }
    SendDown(n, out);
  } else {
    if (n.down.empty()) return false;
    auto item = take(n.down);
    if (!item) return true;
    ++stats_.delivered;
    std::vector<v1::NodeMessage> out;
    auto s = n.engine->Handle(item->message, &out);
    Trace(StrCat("central->", n.id, " ", Describe(item->message),
                 s.ok() ? "" : StrCat(" -> ERROR ", StatusText(s))));
    if (!s.ok()) {
      ++stats_.node_stream_errors;
      EndStream(n, StrCat("node closed the stream: ", StatusText(s)), true);
      return true;
    }
    if (!n.epoch_confirmed && n.engine->Status().connected) n.epoch_confirmed = true;
    SendUp(n, out);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Streams, partitions, crashes

void Sim::Connect(NodeSim& n) {
  if (n.stream_open || !n.link_up) return;
  n.up.clear();
  n.down.clear();
  ++n.generation;
  ++stats_.connects;
  v1::NodeMessage hello = n.engine->Connect();
  if (!hello.has_hello()) {
    Fail(StrCat(n.id, ": Connect() did not return a Hello"));
    return;
  }
  std::vector<v1::CentralMessage> out;
  auto sid = central_->Open(hello.hello(), &out);
  if (!sid.ok()) {
    ++stats_.open_refused;
    Trace(StrCat(n.id, " connect #", n.generation, " REFUSED ", StatusText(sid.status())));
    n.engine->Disconnect(StatusText(sid.status()));
    return;
  }
  n.session = *sid;
  n.stream_open = true;
  n.stream_opened_ms = n.clock->NowMicros() / kMs;
  Trace(StrCat(n.id, " connect #", n.generation, " session ", n.session, " (last event ",
               hello.hello().last_event_seq(), ", feed mark ", hello.hello().feed_applied_seq(),
               ")"));
  SendDown(n, out);
}

void Sim::EndStream(NodeSim& n, const std::string& why, bool maybe_late) {
  if (!n.stream_open) return;
  n.engine->Disconnect(why);
  if (maybe_late && Chance(30)) {
    // Central notices the broken stream later, and may read what is left of it first.
    n.late_close.push_back({n.session, std::move(n.up)});
  } else {
    central_->Close(n.session);
  }
  n.stream_open = false;
  stats_.lost_in_flight += n.up.size() + n.down.size();
  n.up.clear();
  n.down.clear();
}

// Central reads what is left of an old stream (on the old session: applied if that session is
// still the node's current one, refused if a newer one replaced it), then notices its end.
void Sim::LateClose(NodeSim& n, bool faults) {
  NodeSim::Zombie z = std::move(n.late_close.front());
  n.late_close.erase(n.late_close.begin());
  ++stats_.late_closes;
  for (auto& item : z.unread) {
    if (faults && Chance(30)) break;  // the rest is lost with the connection
    std::vector<v1::CentralMessage> out;  // answers go nowhere: the stream is dead
    auto s = central_->Handle(z.session, item.message, &out);
    ++stats_.zombie_deliveries;
    Trace(StrCat(n.id, "->central (old session ", z.session, ") ", Describe(item.message),
                 s.ok() ? "" : StrCat(" -> ", StatusText(s))));
    if (!s.ok()) break;
  }
  Trace(StrCat("central notices the end of ", n.id, " session ", z.session, " (late close)"));
  central_->Close(z.session);
}

void Sim::Partition(NodeSim& n) {
  if (!n.link_up) return;
  Trace(StrCat(n.id, " PARTITION"));
  ++stats_.partitions;
  n.link_up = false;
  EndStream(n, "partition", true);
}

void Sim::Heal(NodeSim& n) {
  if (n.link_up) return;
  Trace(StrCat(n.id, " HEAL"));
  n.link_up = true;
  if (Chance(50)) Connect(n);
}

void Sim::CrashNode(NodeSim& n) {
  Trace(StrCat(n.id, " CRASH-RESTART (stream ", n.stream_open ? "open" : "closed", ")"));
  ++stats_.node_crashes;
  EndStream(n, "node crashed", true);
  n.engine.reset();
  n.ledger.reset();
  OpenNode(n);
}

void Sim::CrashCentral() {
  Trace("central CRASH-RESTART");
  ++stats_.central_crashes;
  for (auto& n : nodes_) {
    if (n->stream_open) {
      n->engine->Disconnect("central crashed");
      n->stream_open = false;
      stats_.lost_in_flight += n->up.size() + n->down.size();
      n->up.clear();
      n->down.clear();
    }
    n->late_close.clear();  // sessions of the old engine are gone with it
  }
  orders_.reset();
  central_.reset();
  store_.reset();
  OpenCentral();
}

void Sim::BackupNode(NodeSim& n) {
  // Restoring a backup of an epoch central never saw is refused (unknown_epoch) by design: the
  // schedule only takes backups of epochs central has welcomed.
  if ((!n.epoch_confirmed && !opt_.unconfirmed_backups) || n.backups.size() >= 3) return;
  std::string path = StrCat(n.path, ".backup", ++n.backup_counter);
  try {
    SQLite::Database src(n.path, SQLite::OPEN_READONLY);
    SQLite::Database dst(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    SQLite::Backup backup(dst, src);
    backup.executeStep();
  } catch (const std::exception& e) {
    Fail(StrCat(n.id, ": backup failed: ", e.what()));
    return;
  }
  n.backups.push_back(path);
  ++stats_.backups;
  Trace(StrCat(n.id, " BACKUP #", n.backups.size() - 1, " at last event ",
               n.ledger->LastEventSeq()));
}

void Sim::RestoreNode(NodeSim& n) {
  if (n.backups.empty()) return;
  const size_t which = U(n.backups.size());
  const std::string backup = n.backups[which];
  Trace(StrCat(n.id, " RESTORE from backup #", which, " (last event before: ",
               n.ledger->LastEventSeq(), ")"));
  restores_happened_ = true;
  n.restored = true;
  const std::map<std::string, std::string> fulfilments_before = FulfilmentStates(n);
  ++stats_.restores;
  EndStream(n, "restoring from backup", true);
  n.engine.reset();
  n.ledger.reset();
  auto s = node::Ledger::RestoreFromBackup(backup, n.path);
  if (!s.ok()) {
    Fail(StrCat(n.id, ": restore failed: ", StatusText(s)));
    return;
  }
  if (!OpenNode(n)) return;
  // Backups are copies of an epoch that is now retired: no longer usable.
  for (const auto& b : n.backups) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(b + suffix);
  }
  n.backups.clear();
  const uint64_t last = n.ledger->LastSeq();
  const uint64_t last_event = n.ledger->LastEventSeq();
  // Requests the restore lost (their events are beyond the backup's) would run again. A wave
  // writes no event: kept only if the backup has newer events than the wave (conservative).
  std::erase_if(n.requests, [&](const NodeSim::Request& r) {
    return r.event_bound > last_event || (r.op.has_wave() && r.event_bound >= last_event);
  });
  // Fulfilments whose state here the restore changed: exempt from the agreement check.
  {
    const std::map<std::string, std::string> after = FulfilmentStates(n);
    int changed = 0;
    for (const auto& [id, state] : fulfilments_before) {
      auto it = after.find(id);
      if (it == after.end() || it->second != state) {
        changed += n.restored_fulfilments.insert(id).second ? 1 : 0;
      }
    }
    if (changed > 0) Trace(StrCat(n.id, " restore rewound ", changed, " fulfilments"));
  }
  n.last_hlc = 0;
  n.max_feed_ack = 0;  // the backup's feed mark may be older
  n.epoch_confirmed = false;
  if (last > 0) {
    node::MovementFilter f;
    f.after_seq = last - 1;
    f.limit = 1;
    auto m = n.ledger->ListMovements(f);
    if (m.ok() && m->movements_size() == 1) n.last_hlc = m->movements(0).hlc();
  }
  auto id = n.ledger->GetIdentity();
  Trace(StrCat(n.id, " restored: last event ", n.ledger->LastEventSeq(), ", previous_last_seq ",
               id.previous_last_seq));
}

void Sim::Import() {
  ++stats_.imports;
  const int kind = static_cast<int>(U(3));
  std::string what, csv, k;
  if (kind == 0 || (kind == 2 && spare_skus_.empty())) {
    // Change attributes of existing SKUs (never tracking: stock is on hand).
    std::vector<std::string> codes;
    for (auto& [code, s] : skus_) {
      if (Chance(50)) {
        s.name = StrCat(s.name.substr(0, s.name.find(" v")), " v", ++import_counter_);
        if (code == "B") s.safety = Range(0, 4);
        codes.push_back(code);
      }
    }
    if (codes.empty()) codes.push_back("A");
    k = "skus";
    csv = SkuCsv(codes);
    what = StrCat("skus ", absl::StrJoin(codes, " "), " updated");
  } else if (kind == 1 || spare_skus_.empty()) {
    NodeSim& n = *nodes_[U(nodes_.size())];
    std::vector<std::string> codes;
    for (const auto& b : spare_bins_) {
      if (!bins_[n.id].count(b)) {
        codes.push_back(b);
        break;
      }
    }
    if (codes.empty()) codes.push_back("A2");  // re-import: a new version of an existing bin
    for (const auto& c : codes) {
      auto& b = bins_[n.id][c];
      if (b.zone.empty()) b.zone = c.substr(0, 1);
      b.walk = Range(0, 9);
    }
    k = "bins";
    csv = BinCsv(n.id, codes);
    what = StrCat("bins ", absl::StrJoin(codes, " "), " at ", n.id);
  } else {
    std::string code = spare_skus_.back();
    spare_skus_.pop_back();
    skus_[code] = code == "C" ? SkuModel{"Lot without expiry", "lot", false, false, 0}
                              : SkuModel{"Late arrival", "none", false, false, 1};
    k = "skus";
    csv = SkuCsv({code});
    what = StrCat("new sku ", code);
  }
  auto r = store_->Import(k, csv);
  Trace(StrCat("central IMPORT ", what, r.ok() ? "" : StrCat(" -> ", StatusText(r.status()))));
  if (!r.ok()) Fail(StrCat("central import of ", what, " failed: ", StatusText(r.status())));
}

void Sim::AdvanceClocks() {
  const int64_t dt = Range(1, 400);
  central_clock_.Advance(dt * kMs);
  for (auto& n : nodes_) n->clock->Advance((dt + Range(0, 40)) * kMs);
  std::string line = StrCat("clocks +", dt, "ms");
  if (Chance(12)) {
    NodeSim& n = *nodes_[U(nodes_.size())];
    const int64_t back = Range(1, 5000);
    n.clock->Advance(-back * kMs);
    ++stats_.clock_back_steps;
    absl::StrAppend(&line, ", ", n.id, " clock steps BACK ", back, "ms");
  }
  Trace(line);
}

void Sim::PumpNode(NodeSim& n, int64_t advance_ms) {
  n.clock->Advance(advance_ms * kMs);
  std::vector<v1::NodeMessage> out;
  n.engine->Pump(&out);
  if (!out.empty() || !quiescing_) {
    std::vector<std::string> what;
    for (const auto& m : out) what.push_back(Describe(m));
    Trace(StrCat(n.id, " pump +", advance_ms, "ms: ", what.empty() ? "-" : absl::StrJoin(what, " ")));
  }
  SendUp(n, out);
}

void Sim::PumpFeed(NodeSim& n) {
  if (!n.stream_open) return;
  std::vector<v1::CentralMessage> out;
  central_->PumpFeed(n.session, &out);
  if (!out.empty() || !quiescing_) {
    std::vector<std::string> what;
    for (const auto& m : out) what.push_back(Describe(m));
    Trace(StrCat("central pump feed ", n.id, ": ", what.empty() ? "-" : absl::StrJoin(what, " ")));
  }
  SendDown(n, out);
}

// ---------------------------------------------------------------------------------------------
// Local operations

std::string Sim::DescribeOp(const v1::Operation& op) {
  auto lot = [](const std::string& l) { return l.empty() ? std::string() : StrCat(" lot=", l); };
  auto rq = [](const std::string& r) { return r.empty() ? std::string() : StrCat(" rq=", r); };
  switch (op.op_case()) {
    case v1::Operation::kReceipt: {
      const auto& r = op.receipt();
      return StrCat("receipt ", r.sku(), " ", r.bin(), " ", r.quantity(), lot(r.lot()),
                    rq(r.request_id()));
    }
    case v1::Operation::kMove: {
      const auto& r = op.move();
      return StrCat("move ", r.sku(), " ", r.from_bin(), "->", r.to_bin(), " ", r.quantity(),
                    lot(r.lot()), rq(r.request_id()));
    }
    case v1::Operation::kAdjust: {
      const auto& r = op.adjust();
      return StrCat("adjust ", r.sku(), " ", r.bin(), " ", r.quantity(), " ", r.reason(),
                    lot(r.lot()), rq(r.request_id()));
    }
    case v1::Operation::kScrap: {
      const auto& r = op.scrap();
      return StrCat("scrap ", r.sku(), " ", r.bin(), " ", r.quantity(), lot(r.lot()),
                    rq(r.request_id()));
    }
    case v1::Operation::kReserve: {
      const auto& r = op.reserve();
      return StrCat("reserve ", r.sku(), " ", r.reference(), " ", r.quantity(),
                    rq(r.request_id()));
    }
    case v1::Operation::kRelease: {
      const auto& r = op.release();
      return StrCat("release ", r.sku(), " ", r.reference(), " ", r.quantity(),
                    rq(r.request_id()));
    }
    case v1::Operation::kConsume: {
      const auto& r = op.consume();
      return StrCat("consume ", r.sku(), " ", r.reference(), " ", r.quantity(),
                    r.bin().empty() ? "" : StrCat(" ", r.bin()), lot(r.lot()),
                    rq(r.request_id()));
    }
    case v1::Operation::kWave:
      return StrCat("wave max ", op.wave().max_orders(), rq(op.wave().request_id()));
    case v1::Operation::kPick: {
      const auto& r = op.pick();
      return StrCat("pick ", r.fulfilment_id(), " ", r.item(), " ", r.bin(), " ", r.quantity(),
                    lot(r.lot()), rq(r.request_id()));
    }
    case v1::Operation::kShortPick: {
      const auto& r = op.short_pick();
      return StrCat("short ", r.fulfilment_id(), " line ", r.line_no(), " ", r.quantity(), " ",
                    r.reason(), rq(r.request_id()));
    }
    case v1::Operation::kPack: {
      const auto& r = op.pack();
      std::string what;
      for (const auto& p : r.packages()) {
        absl::StrAppend(&what, " [", p.weight_g(), "g ", p.length_mm(), "x", p.width_mm(), "x",
                        p.height_mm(), p.items().empty() ? "" : " items", "]");
      }
      return StrCat("pack ", r.fulfilment_id(), what, rq(r.request_id()));
    }
    case v1::Operation::kShip: {
      const auto& r = op.ship();
      return StrCat("ship ", r.fulfilment_id(), " ", r.carrier(), " ", r.tracking(),
                    rq(r.request_id()));
    }
    case v1::Operation::kLocalOrder: {
      const auto& r = op.local_order();
      std::vector<std::string> lines;
      for (const auto& l : r.lines()) lines.push_back(StrCat(l.sku(), "x", l.quantity()));
      return StrCat(r.kind() == v1::COUNTER_SALE ? "counter-sale " : "click-and-collect ",
                    absl::StrJoin(lines, " "), rq(r.request_id()));
    }
    case v1::Operation::kHandOut:
      return StrCat("hand-out ", op.hand_out().fulfilment_id(), rq(op.hand_out().request_id()));
    default: return "empty";
  }
}

v1::Operation Sim::RandomOperation(NodeSim& n) {
  std::vector<std::string> skus;
  for (const auto& [code, s] : skus_) skus.push_back(code);
  std::vector<std::string> bins;
  for (const auto& [code, b] : bins_[n.id]) bins.push_back(code);
  bins.push_back("Z9");  // never imported: NotFound
  const std::string sku = Pick(skus);
  const SkuModel& model = skus_[sku];
  const bool lot_tracked = model.tracking == "lot";
  static const std::vector<std::string> kLots = {"L1", "L2", "L3"};
  std::string lot = lot_tracked ? Pick(kLots) : "";
  auto expiry_of = [&](const std::string& l) {
    return model.expiry && !l.empty() ? StrCat("2030-01-0", l.substr(1)) : std::string();
  };
  auto bin = [&] { return Chance(97) ? bins[U(bins.size() - 1)] : bins.back(); };
  // Most decrements draw on stock or reservations that exist, so that more of them succeed.
  // Unless stock_ops_touch_orders, they leave alone what orders own: the staging bin and the
  // reservations of fulfilments (references other than R1..R4).
  static const std::vector<std::string> kRefs = {"R1", "R2", "R3", "R4"};
  std::optional<v1::Balance> balance;
  if (Chance(75)) {
    auto stock = n.ledger->GetStock(sku, "");
    if (stock.ok()) {
      std::vector<const v1::Balance*> usable;
      for (const auto& b : stock->balances()) {
        if (opt_.stock_ops_touch_orders || b.bin() != node::kStagingBin) usable.push_back(&b);
      }
      if (!usable.empty()) balance = *usable[U(usable.size())];
    }
  }
  std::optional<v1::Reservation> reservation;
  if (Chance(75)) {
    auto open = n.ledger->ListReservations(sku);
    if (open.ok()) {
      std::vector<const v1::Reservation*> usable;
      for (const auto& r : open->reservations()) {
        if (opt_.stock_ops_touch_orders ||
            std::find(kRefs.begin(), kRefs.end(), r.reference()) != kRefs.end()) {
          usable.push_back(&r);
        }
      }
      if (!usable.empty()) reservation = *usable[U(usable.size())];
    }
  }
  auto take = [&](int64_t max) {
    return balance && balance->on_hand() > 0 ? Range(1, std::min(balance->on_hand(), max))
                                             : Range(1, max);
  };
  std::string request_id;
  if (Chance(25)) request_id = StrCat("rq-", n.id, "-", ++n.request_counter);

  v1::Operation op;
  const int kind = static_cast<int>(U(100));
  if (kind < 28) {
    auto* r = op.mutable_receipt();
    r->set_sku(sku);
    r->set_bin(bin());
    r->set_quantity(Chance(97) ? Range(1, 20) : 0);
    r->set_lot(lot);
    r->set_expiry(expiry_of(lot));
    r->set_request_id(request_id);
  } else if (kind < 41) {
    auto* r = op.mutable_move();
    r->set_sku(sku);
    if (balance) lot = balance->lot();
    r->set_from_bin(balance ? balance->bin() : bin());
    r->set_to_bin(bin());
    r->set_quantity(take(10));
    r->set_lot(lot);
    r->set_request_id(request_id);
  } else if (kind < 52) {
    auto* r = op.mutable_adjust();
    r->set_sku(sku);
    static const std::vector<std::string> kReasons = {"damaged", "lost", "found", "count"};
    const std::string reason = Pick(kReasons);
    const bool down = reason == "damaged" || reason == "lost" || (reason == "count" && Chance(50));
    if (down && balance) lot = balance->lot();
    r->set_bin(down && balance ? balance->bin() : bin());
    r->set_quantity(down ? -take(6) : Range(1, 6));
    r->set_reason(reason);
    r->set_lot(lot);
    if (!down) r->set_expiry(expiry_of(lot));
    r->set_request_id(request_id);
  } else if (kind < 59) {
    auto* r = op.mutable_scrap();
    r->set_sku(sku);
    if (balance) lot = balance->lot();
    r->set_bin(balance ? balance->bin() : bin());
    r->set_quantity(take(5));
    r->set_lot(lot);
    r->set_reason("damaged");
    r->set_request_id(request_id);
  } else if (kind < 75) {
    auto* r = op.mutable_reserve();
    r->set_sku(sku);
    r->set_reference(Pick(kRefs));
    r->set_quantity(Range(1, 8));
    r->set_request_id(request_id);
  } else if (kind < 85) {
    auto* r = op.mutable_release();
    r->set_sku(sku);
    r->set_reference(reservation ? reservation->reference() : Pick(kRefs));
    r->set_quantity(reservation ? Range(0, reservation->quantity()) : Range(0, 4));
    r->set_request_id(request_id);
  } else {
    auto* r = op.mutable_consume();
    r->set_sku(sku);
    r->set_reference(reservation ? reservation->reference() : Pick(kRefs));
    r->set_quantity(reservation ? Range(1, reservation->quantity()) : Range(1, 4));
    if (Chance(40)) r->set_bin(balance ? balance->bin() : bin());
    if (lot_tracked && Chance(40)) r->set_lot(balance ? balance->lot() : lot);
    r->set_request_id(request_id);
  }
  return op;
}

void Sim::ApplyOps(NodeSim& n, const std::vector<v1::Operation>& ops, const std::string& what) {
  RequestContext ctx{StrCat("op-", n.id), "sim"};
  const uint64_t before = n.ledger->LastSeq();
  std::vector<absl::StatusOr<v1::OperationResult>> results;
  if (ops.size() == 1) {
    results.push_back(n.ledger->Apply(ctx, ops[0]));
  } else {
    std::vector<node::WriteItem> items;
    for (const auto& op : ops) items.push_back({&ctx, &op});
    results = n.ledger->ApplyBatch(items);
  }
  uint64_t expect = before + 1;
  for (size_t i = 0; i < ops.size(); ++i) {
    const auto& r = results[i];
    std::string line = StrCat(n.id, " ", what, " ", DescribeOp(ops[i]), " -> ");
    if (!r.ok()) {
      ++stats_.ops_refused;
      if (r.status().code() == absl::StatusCode::kNotFound) ++stats_.ops_not_found;
      if (node::fulfilment::IsFulfilmentOp(ops[i])) ++stats_.order_ops_refused;
      Trace(line + StatusText(r.status()));
      continue;
    }
    ++stats_.ops_ok;
    if (node::fulfilment::IsFulfilmentOp(ops[i])) CountOrderOp(ops[i]);
    std::vector<std::string> seqs;
    for (const auto& m : r->movements()) {
      seqs.push_back(StrCat(m.seq()));
      if (m.seq() != expect) {
        Fail(StrCat(n.id, ": movement seq ", m.seq(), " where ", expect, " was next"));
      }
      expect = m.seq() + 1;
      if (m.hlc() <= n.last_hlc) {
        Fail(StrCat(n.id, ": movement ", m.seq(), " has HLC ", m.hlc(),
                    " not above the previous movement's ", n.last_hlc, " (invariant 7)"));
      }
      n.last_hlc = std::max(n.last_hlc, m.hlc());
    }
    std::string outcome;
    if (r->has_fulfilment()) {
      const auto& f = r->fulfilment();
      outcome = StrCat(" ", f.fulfilment_id(), " ", orders::StatusName(f.status()));
    } else if (r->has_wave()) {
      outcome = StrCat(" ", r->wave().wave_id(), " (", r->wave().fulfilment_ids_size(),
                       " fulfilments, ", r->wave().tasks_size(), " tasks)");
    }
    Trace(line + "ok seq " + absl::StrJoin(seqs, ",") + outcome);
    if (!node::RequestIdOf(ops[i]).empty()) {
      n.requests.push_back({ops[i], r->movements_size() > 0 ? r->movements(0).seq() : 0,
                            n.ledger->LastEventSeq()});
    }
  }
  if (n.ledger->LastSeq() != expect - 1) {
    Fail(StrCat(n.id, ": last seq ", n.ledger->LastSeq(), " after the writes, expected ",
                expect - 1));
  }
}

void Sim::ReplayRequest(NodeSim& n) {
  const NodeSim::Request& req = n.requests[U(n.requests.size())];
  const v1::Operation& op = req.op;
  const uint64_t first_seq = req.first_seq;
  RequestContext ctx{StrCat("op-", n.id), "sim"};
  const uint64_t before = n.ledger->LastSeq();
  const uint64_t events_before = n.ledger->LastEventSeq();
  auto r = n.ledger->Apply(ctx, op);
  ++stats_.replays;
  if (node::fulfilment::IsFulfilmentOp(op)) ++stats_.order_replays;
  std::string line = StrCat(n.id, " REPLAY ", DescribeOp(op), " -> ");
  if (!r.ok()) {
    Trace(line + StatusText(r.status()));
    Fail(StrCat(n.id, ": replaying request ", node::RequestIdOf(op),
                " failed: ", StatusText(r.status())));
    return;
  }
  Trace(StrCat(line, r->replayed() ? "replayed" : "NOT replayed", " seq ",
               r->movements_size() > 0 ? r->movements(0).seq() : 0));
  if (!r->replayed() || n.ledger->LastSeq() != before ||
      n.ledger->LastEventSeq() != events_before ||
      (r->movements_size() > 0 && r->movements(0).seq() != first_seq) ||
      (r->movements_size() == 0 && first_seq != 0)) {
    Fail(StrCat(n.id, ": replaying request ", node::RequestIdOf(op),
                " wrote again or returned another result"));
  }
}

void Sim::LocalOp(NodeSim& n) {
  if (!n.requests.empty() && Chance(6)) {
    ReplayRequest(n);
    return;
  }
  if (Chance(12)) {
    std::vector<v1::Operation> ops;
    const int count = static_cast<int>(Range(2, 4));
    for (int i = 0; i < count; ++i) ops.push_back(RandomOperation(n));
    ApplyOps(n, ops, "batch");
    return;
  }
  ApplyOps(n, {RandomOperation(n)}, "op");
}

// ---------------------------------------------------------------------------------------------
// Cycle counts (invariant 6: on hand after the adjustment = counted + net movements after the
// count's start seq). A count of one SKU in one bin is created and started; later steps count
// it (the current balance, sometimes off by a few units), and a supervisor approves or rejects
// what is out of tolerance. Every stock operation of the schedule goes on in between.

void Sim::CountStep(NodeSim& n) {
  static const RequestContext kCounter{"counter", "sim"};
  static const RequestContext kSupervisor{"supervisor", "sim"};
  const int r = static_cast<int>(U(100));
  if (r < 40 || n.counts.empty()) {
    std::vector<std::string> skus;
    for (const auto& [code, m] : skus_) {
      if (!m.negative) skus.push_back(code);
    }
    if (skus.empty()) return;
    const std::string sku = Pick(skus);
    auto stock = n.ledger->GetStock(sku, "");
    if (!stock.ok() || stock->balances().empty()) return;
    const v1::Balance& b = stock->balances(static_cast<int>(U(stock->balances_size())));
    if (b.bin() == node::kStagingBin) return;
    v1::Operation op;
    op.mutable_count_create()->set_sku(sku);
    op.mutable_count_create()->set_bin(b.bin());
    op.mutable_count_create()->set_start(true);
    auto res = n.ledger->Apply(kCounter, op);
    Trace(StrCat(n.id, " count create ", sku, "@", b.bin(), " -> ",
                 res.ok() ? res->count().count_id() : StatusText(res.status())));
    if (res.ok()) {
      ++stats_.counts_created;
      n.counts.push_back(res->count().count_id());
    }
    return;
  }
  const size_t i = U(n.counts.size());
  const std::string id = n.counts[i];
  auto task = n.ledger->GetCount(id);
  if (!task.ok()) {  // a restore took it away
    Trace(StrCat(n.id, " count ", id, ": ", StatusText(task.status())));
    n.counts.erase(n.counts.begin() + static_cast<std::ptrdiff_t>(i));
    return;
  }
  if (task->status() == v1::COUNT_DONE) {
    n.counts.erase(n.counts.begin() + static_cast<std::ptrdiff_t>(i));
    return;
  }
  std::set<uint32_t> open_before;
  for (const auto& l : task->lines()) {
    if (l.status() != v1::COUNT_LINE_POSTED) open_before.insert(l.line_no());
  }
  v1::Operation op;
  const RequestContext* who = &kCounter;
  std::string what;
  if (task->status() == v1::COUNT_PENDING_APPROVAL) {
    auto* review = op.mutable_count_review();
    review->set_count_id(id);
    review->set_approve(Chance(70));
    who = &kSupervisor;
    what = review->approve() ? "approve" : "reject";
  } else {
    bool needs_start = false;
    for (const auto& l : task->lines()) needs_start |= l.status() == v1::COUNT_LINE_OPEN && !l.started();
    if (needs_start) {
      op.mutable_count_start()->set_count_id(id);
      what = "start";
    } else {
      auto* submit = op.mutable_count_submit();
      submit->set_count_id(id);
      for (const auto& l : task->lines()) {
        if (l.status() != v1::COUNT_LINE_OPEN) continue;
        int64_t on_hand = 0;
        auto stock = n.ledger->GetStock(l.sku(), l.bin());
        if (stock.ok()) {
          for (const auto& b : stock->balances()) {
            if (b.sku() == l.sku() && b.bin() == l.bin() && b.lot() == l.lot()) on_hand = b.on_hand();
          }
        }
        // The counter finds what is there, or a few units more or less (found, lost).
        const int64_t off = Chance(50) ? 0 : Chance(70) ? Range(-2, 2) : Range(-8, 8);
        auto* c = submit->add_lines();
        c->set_line_no(l.line_no());
        c->set_counted(std::max<int64_t>(0, on_hand + off));
      }
      what = "submit";
    }
  }
  auto res = n.ledger->Apply(*who, op);
  Trace(StrCat(n.id, " count ", what, " ", id, " -> ",
               res.ok() ? StrCat("ok, ", v1::CountStatus_Name(res->count().status()))
                        : StatusText(res.status())));
  if (!res.ok()) {
    ++stats_.count_ops_refused;
    return;
  }
  for (const auto& l : res->count().lines()) {
    if (l.status() == v1::COUNT_LINE_POSTED && open_before.count(l.line_no())) {
      ++stats_.count_lines_posted;
      if (l.adjustment_seq() != 0) ++stats_.count_adjustments;
      CheckCountLine(n, l);
    }
  }
}

// Invariant 6 for a line that just posted (nothing else ran since): its balance now equals the
// counted quantity plus the net effect on (sku, bin, lot) of every movement after the count's
// start seq other than the count's own adjustment.
void Sim::CheckCountLine(NodeSim& n, const v1::CountLine& line) {
  int64_t net = 0;
  node::MovementFilter f;
  f.sku = line.sku();
  f.after_seq = line.start_seq();
  f.limit = 1000;
  for (;;) {
    auto page = n.ledger->ListMovements(f);
    if (!page.ok()) {
      Fail(StrCat(n.id, ": cannot list movements: ", StatusText(page.status())));
      return;
    }
    for (const auto& m : page->movements()) {
      f.after_seq = m.seq();
      if (m.seq() == line.adjustment_seq() || m.lot() != line.lot()) continue;
      const auto fx = EffectsOf(m);
      for (int k = 0; k < fx.stock_count; ++k) {
        if (fx.stock[k].bin == line.bin()) net += fx.stock[k].delta;
      }
    }
    if (page->movements_size() < static_cast<int>(f.limit)) break;
  }
  if (net != 0) ++stats_.counts_with_moves_after_start;
  int64_t on_hand = 0;
  auto stock = n.ledger->GetStock(line.sku(), line.bin());
  if (stock.ok()) {
    for (const auto& b : stock->balances()) {
      if (b.sku() == line.sku() && b.bin() == line.bin() && b.lot() == line.lot()) on_hand = b.on_hand();
    }
  }
  if (on_hand != line.counted() + net) {
    Fail(StrCat("invariant 6: ", n.id, " count line ", line.sku(), "@", line.bin(),
                line.lot().empty() ? "" : StrCat(" lot ", line.lot()), ": on hand ", on_hand,
                " after the adjustment, counted ", line.counted(), " + ", net,
                " net after seq ", line.start_seq()));
  }
}

// ---------------------------------------------------------------------------------------------
// The schedule

void Sim::RandomStep() {
  NodeSim& n = *nodes_[U(nodes_.size())];
  // Transport watchdog: a stream whose Welcome never arrived is abandoned and reopened.
  if (n.stream_open && !n.engine->Status().connected &&
      n.clock->NowMicros() / kMs - n.stream_opened_ms > 3000) {
    Trace(StrCat(n.id, " welcome timeout: reconnecting"));
    ++stats_.welcome_timeouts;
    EndStream(n, "welcome timeout", true);
    Connect(n);
    return;
  }
  // The transport reconnects on its own (with some backoff) while the link is up.
  if (n.link_up && !n.stream_open && Chance(30)) {
    Connect(n);
    return;
  }
  // Cycle counts (invariant 6) run while everything else goes on.
  if (Chance(3)) {
    CountStep(n);
    return;
  }
  // Orders take a share of the steps; the rest keeps the stock-only schedule's proportions.
  if (opt_.orders && Chance(20)) {
    OrderStep(n);
    return;
  }
  const int r = static_cast<int>(U(1000));
  if (r < 280) {
    LocalOp(n);
  } else if (r < 470) {
    if (!Deliver(n, true, true) && !Deliver(n, false, true)) PumpNode(n, Range(0, 100));
  } else if (r < 660) {
    if (!Deliver(n, false, true) && !Deliver(n, true, true)) PumpNode(n, Range(0, 100));
  } else if (r < 780) {
    PumpNode(n, Range(0, 250));
  } else if (r < 830) {
    PumpFeed(n);
  } else if (r < 880) {
    AdvanceClocks();
  } else if (r < 920) {
    if (n.link_up && !n.stream_open) {
      Connect(n);
    } else if (!n.late_close.empty()) {
      LateClose(n, true);
    } else {
      PumpNode(n, Range(0, 100));
    }
  } else if (r < 930) {
    Partition(n);
  } else if (r < 960) {
    Heal(n);
  } else if (r < 967) {
    CrashNode(n);
  } else if (r < 969) {
    CrashCentral();
  } else if (r < 976) {
    PumpNode(n, Range(0, 100));
  } else if (r < 983) {
    Import();
  } else if (r < 992) {
    BackupNode(n);
  } else if (r < 995) {
    RestoreNode(n);
  } else {
    if (n.stream_open) {
      Trace(StrCat(n.id, " transport resets the stream"));
      EndStream(n, "stream reset", true);
    }
    Connect(n);
  }
}

// ---------------------------------------------------------------------------------------------
// Orders (invariant 5)

void Sim::ImportChannels() {
  // web: every site, splits allowed. market: the last two sites in that order, no splits, orders
  // worth more than 200.00 held for review.
  std::vector<std::string> market;
  for (int i = static_cast<int>(nodes_.size()) - 1; i >= 0 && market.size() < 2; --i) {
    market.push_back(nodes_[i]->id);
  }
  const std::string csv =
      StrCat("id,name,site_priority,allow_split,review_above_cents\n", "web,Web shop,,true,0\n",
             "market,Marketplace,", absl::StrJoin(market, "|"), ",false,20000\n");
  auto r = store_->Import("channels", csv);
  if (!r.ok()) Fail(StrCat("initial import of channels failed: ", StatusText(r.status())));
  Trace(StrCat("setup imported channels web (every site, splits) and market (",
               absl::StrJoin(market, " then "), ", no splits, review above 200.00)"));
}

namespace {

std::string FulfilmentIdOf(const v1::Operation& op) {
  switch (op.op_case()) {
    case v1::Operation::kPick: return op.pick().fulfilment_id();
    case v1::Operation::kShortPick: return op.short_pick().fulfilment_id();
    case v1::Operation::kPack: return op.pack().fulfilment_id();
    case v1::Operation::kShip: return op.ship().fulfilment_id();
    case v1::Operation::kHandOut: return op.hand_out().fulfilment_id();
    default: return "";
  }
}

bool IsShipped(v1::FulfilmentStatus s) {
  return s == v1::FULFILMENT_SHIPPED || s == v1::FULFILMENT_DELIVERED;
}

std::string DescribeOrder(const v1::Order& o) {
  std::vector<std::string> parts;
  for (const auto& f : o.fulfilments()) {
    std::vector<std::string> lines;
    for (const auto& l : f.lines()) lines.push_back(StrCat(l.sku(), "x", l.quantity()));
    parts.push_back(StrCat(f.fulfilment_id(), "@", f.site(), "[", absl::StrJoin(lines, " "), "] ",
                           orders::StatusName(f.status()),
                           f.cancel_requested() ? " cancel-asked" : ""));
  }
  return StrCat(o.order_id(), " ", orders::OrderStatusName(o.status()),
                parts.empty() ? "" : ": ", absl::StrJoin(parts, ", "),
                o.routing_note().empty() ? "" : StrCat(" (", o.routing_note(), ")"));
}

}  // namespace

void Sim::OrderStep(NodeSim& n) {
  const int r = static_cast<int>(U(100));
  if (r < 18) {
    CaptureOrder();
  } else if (r < 22) {
    CancelOrder();
  } else if (r < 29) {
    RoutingPass();
  } else if (r < 31) {
    ReviewOrder();
  } else if (r < 33) {
    ConfirmDelivery();
  } else {
    NodeOrderOp(n);
  }
}

void Sim::CaptureOrder() {
  v1::CaptureOrderRequest req;
  std::string expect_order;      // an identical repeat must return this order, replayed
  bool expect_conflict = false;  // the same external id with other content must be refused
  const int kind = static_cast<int>(U(100));
  if (!recent_captures_.empty() && kind < 6) {
    const auto& [first, id] = recent_captures_[U(recent_captures_.size())];
    req = first;
    expect_order = id;
  } else if (!recent_captures_.empty() && kind < 9) {
    req = recent_captures_[U(recent_captures_.size())].first;
    req.mutable_lines(0)->set_quantity(req.lines(0).quantity() + 1);
    expect_conflict = true;
  } else {
    req.set_channel(Chance(97) ? (Chance(60) ? "web" : "market") : "nope");
    req.set_external_id(StrCat("X", ++external_counter_));
    req.set_service_level(Chance(70) ? "standard" : "express");
    auto* a = req.mutable_ship_to();
    a->set_name("Ada");
    a->set_line1("1 Main St");
    a->set_city(Chance(97) ? "Springfield" : "");  // an incomplete address is held for review
    a->set_postal_code("12345");
    a->set_country("DE");
    const int region = static_cast<int>(U(10));
    a->set_region(region < 5 ? "north" : region < 9 ? "south" : "west");  // no site is west
    std::vector<std::string> skus;
    for (const auto& [code, model] : skus_) skus.push_back(code);
    const int lines = static_cast<int>(Range(1, 3));
    for (int i = 0; i < lines; ++i) {
      auto* l = req.add_lines();
      l->set_sku(Chance(98) ? Pick(skus) : "Z9");        // Z9: unknown, refused
      l->set_quantity(Chance(99) ? Range(1, 3) : 0);    // 0: invalid, refused
      l->set_unit_price_cents(Range(100, 9000));
    }
  }
  std::vector<std::string> lines;
  for (const auto& l : req.lines()) lines.push_back(StrCat(l.sku(), "x", l.quantity()));
  const std::string line =
      StrCat("central CAPTURE ", req.channel(), " ", req.external_id(), " [",
             absl::StrJoin(lines, " "), "] to ", req.ship_to().region(), " -> ");
  auto r = orders_->Capture(req, "sim");
  if (!r.ok()) {
    ++stats_.orders_refused;
    Trace(line + StatusText(r.status()));
    if (!expect_order.empty()) {
      Fail(StrCat("capture idempotency: repeating ", req.external_id(), " was refused: ",
                  StatusText(r.status())));
    } else if (expect_conflict && r.status().code() != absl::StatusCode::kAlreadyExists) {
      Fail(StrCat("capture idempotency: ", req.external_id(), " with other content: ",
                  StatusText(r.status()), " instead of ALREADY_EXISTS"));
    }
    return;
  }
  const v1::Order& o = r->order();
  Trace(line + DescribeOrder(o) + (r->replayed() ? " (replayed)" : ""));
  if (expect_conflict) {
    Fail(StrCat("capture idempotency: ", req.external_id(), " with other content was accepted"));
    return;
  }
  if (!expect_order.empty()) {
    ++stats_.capture_replays;
    if (!r->replayed() || o.order_id() != expect_order) {
      Fail(StrCat("capture idempotency: repeating ", req.external_id(), " returned ",
                  o.order_id(), r->replayed() ? " replayed" : " as new", ", first ",
                  expect_order));
    }
    return;
  }
  if (r->replayed()) {
    Fail(StrCat("capture of new external id ", req.external_id(), " answered as a replay"));
    return;
  }
  ++stats_.orders_captured;
  order_ids_.push_back(o.order_id());
  recent_captures_.emplace_back(req, o.order_id());
  if (recent_captures_.size() > 16) recent_captures_.pop_front();
}

void Sim::CancelOrder() {
  if (order_ids_.empty()) return;
  v1::CancelOrderRequest req;
  req.set_order_id(Pick(order_ids_));
  req.set_reason("customer");
  auto r = orders_->Cancel(req, "sim");
  if (!r.ok()) {
    ++stats_.cancels_refused;
    Trace(StrCat("central CANCEL ", req.order_id(), " -> ", StatusText(r.status())));
    return;
  }
  ++stats_.cancels_asked;
  Trace(StrCat("central CANCEL ", req.order_id(), " -> ", DescribeOrder(*r)));
}

void Sim::RoutingPass() {
  auto r = orders_->RunRoutingPass();
  ++stats_.routing_passes;
  if (!r.ok()) {
    Fail(StrCat("routing pass failed: ", StatusText(r.status())));
    return;
  }
  stats_.rerouted += *r;
  Trace(StrCat("central ROUTING PASS -> ", *r, " orders changed"));
}

void Sim::ReviewOrder() {
  v1::ListOrdersRequest list;
  list.set_status(v1::ORDER_ON_HOLD);
  list.set_limit(20);
  auto held = orders_->List(list);
  if (!held.ok()) {
    Fail(StrCat("listing held orders failed: ", StatusText(held.status())));
    return;
  }
  if (held->orders().empty()) return;
  v1::ReviewOrderRequest req;
  req.set_order_id(held->orders(U(held->orders_size())).order_id());
  req.set_approve(Chance(80));
  req.set_note("checked");
  auto r = orders_->Review(req, "sim");
  ++stats_.reviews;
  Trace(StrCat("central REVIEW ", req.order_id(), req.approve() ? " approve" : " reject", " -> ",
               r.ok() ? DescribeOrder(*r) : StatusText(r.status())));
  if (!r.ok()) Fail(StrCat("review of held order ", req.order_id(), ": ", StatusText(r.status())));
}

void Sim::ConfirmDelivery() {
  if (order_ids_.empty()) return;
  auto o = orders_->Get(Pick(order_ids_));
  if (!o.ok()) {
    Fail(StrCat("Get of a captured order failed: ", StatusText(o.status())));
    return;
  }
  std::vector<std::string> shipped;
  for (const auto& f : o->fulfilments()) {
    if (f.status() == v1::FULFILMENT_SHIPPED) shipped.push_back(f.fulfilment_id());
  }
  if (shipped.empty()) return;
  v1::DeliveryRequest req;
  req.set_order_id(o->order_id());
  req.set_fulfilment_id(Pick(shipped));
  req.set_failed(Chance(10));
  if (req.failed()) req.set_note("nobody home");
  auto r = orders_->ConfirmDelivery(req, "carrier");
  ++stats_.deliveries;
  Trace(StrCat("central DELIVERY ", req.fulfilment_id(), req.failed() ? " failed" : "", " -> ",
               r.ok() ? DescribeOrder(*r) : StatusText(r.status())));
  if (!r.ok()) Fail(StrCat("delivery of ", req.fulfilment_id(), ": ", StatusText(r.status())));
}

// Every fulfilment of the node, serialized (to see what a restore changed).
std::map<std::string, std::string> Sim::FulfilmentStates(NodeSim& n) {
  std::map<std::string, std::string> out;
  if (!opt_.orders) return out;
  auto list = n.ledger->ListFulfilments(v1::FULFILMENT_STATUS_UNSPECIFIED, "", 10000);
  if (!list.ok()) {
    Fail(StrCat(n.id, ": ListFulfilments: ", StatusText(list.status())));
    return out;
  }
  for (const auto& f : list->fulfilments()) out[f.fulfilment_id()] = f.SerializeAsString();
  return out;
}

void Sim::CountOrderOp(const v1::Operation& op) {
  switch (op.op_case()) {
    case v1::Operation::kWave: ++stats_.waves; break;
    case v1::Operation::kPick: ++stats_.picks; break;
    case v1::Operation::kShortPick: ++stats_.shorts; break;
    case v1::Operation::kPack: ++stats_.packs; break;
    case v1::Operation::kShip: ++stats_.ships; break;
    case v1::Operation::kLocalOrder:
      if (op.local_order().kind() == v1::COUNTER_SALE) {
        ++stats_.counter_sales;
      } else {
        ++stats_.collects;
      }
      break;
    case v1::Operation::kHandOut: ++stats_.hand_outs; break;
    default: break;
  }
}

// One step of order work at a node: what a warehouse would do next (wave, pick the wave's
// tasks, short what cannot be found, pack, ship), counter sales and click-and-collect, or a
// deliberately wrong action. Everything goes through Ledger::Apply / ApplyBatch like the stock
// operations (ApplyOps), with request ids that LocalOp replays now and then.
void Sim::NodeOrderOp(NodeSim& n) {
  if (!n.requests.empty() && Chance(5)) {
    ReplayRequest(n);
    return;
  }
  std::vector<v1::NodeFulfilment> open;
  for (auto status : {v1::FULFILMENT_ACCEPTED, v1::FULFILMENT_PICKING, v1::FULFILMENT_PICKED,
                      v1::FULFILMENT_PACKED}) {
    auto list = n.ledger->ListFulfilments(status, "", 20);
    if (!list.ok()) {
      Fail(StrCat(n.id, ": ListFulfilments: ", StatusText(list.status())));
      return;
    }
    for (auto& f : *list->mutable_fulfilments()) open.push_back(std::move(f));
  }
  std::vector<const v1::NodeFulfilment*> packed, picked, unwaved, shortable, collectable;
  std::map<std::string, const v1::NodeFulfilment*> by_id;
  std::set<std::string> waves;
  auto open_of = [](const v1::NodeFulfilment& f, const std::string& sku) {
    int64_t n = 0;
    for (const auto& l : f.lines()) {
      if (l.sku() == sku) n += std::max<int64_t>(0, l.reserved() - l.picked());
    }
    return n;
  };
  for (const auto& f : open) {
    by_id[f.fulfilment_id()] = &f;
    const bool local = f.local_kind() != v1::LOCAL_ORDER_KIND_UNSPECIFIED;
    if (f.local_kind() == v1::CLICK_AND_COLLECT) collectable.push_back(&f);
    if (f.status() == v1::FULFILMENT_PACKED) packed.push_back(&f);
    if (f.status() == v1::FULFILMENT_PICKED) picked.push_back(&f);
    if (f.status() == v1::FULFILMENT_ACCEPTED || f.status() == v1::FULFILMENT_PICKING) {
      if (!local && f.wave_id().empty()) unwaved.push_back(&f);
      if (!f.wave_id().empty()) waves.insert(f.wave_id());
      for (const auto& l : f.lines()) {
        if (!local && l.reserved() > l.picked()) {
          shortable.push_back(&f);
          break;
        }
      }
    }
  }
  // Open pick tasks of (up to two of) the waves, capped at what the fulfilment still needs.
  std::vector<v1::PickTask> tasks;
  std::vector<std::string> wave_ids(waves.begin(), waves.end());
  for (int i = 0; i < 2 && !wave_ids.empty(); ++i) {
    const size_t k = U(wave_ids.size());
    auto w = n.ledger->GetWave(wave_ids[k]);
    wave_ids.erase(wave_ids.begin() + static_cast<std::ptrdiff_t>(k));
    if (!w.ok()) {
      Fail(StrCat(n.id, ": GetWave: ", StatusText(w.status())));
      return;
    }
    for (const auto& t : w->tasks()) {
      auto it = by_id.find(t.fulfilment_id());
      if (t.picked() >= t.quantity() || it == by_id.end()) continue;
      const auto st = it->second->status();
      if (st != v1::FULFILMENT_ACCEPTED && st != v1::FULFILMENT_PICKING) continue;
      const int64_t need = std::min(t.quantity() - t.picked(), open_of(*it->second, t.sku()));
      if (need <= 0) continue;
      tasks.push_back(t);
      tasks.back().set_quantity(need);
    }
  }

  enum Act { kShip, kPack, kPick, kFlow, kWave, kShort, kLocal, kHandOut, kWrong };
  std::vector<std::pair<Act, int>> acts;
  if (!packed.empty()) acts.push_back({kShip, 20});
  if (!picked.empty()) acts.push_back({kPack, 18});
  if (!tasks.empty()) acts.push_back({kPick, 16});
  if (!tasks.empty()) acts.push_back({kFlow, 14});
  if (!unwaved.empty()) acts.push_back({kWave, 12});
  if (!shortable.empty()) acts.push_back({kShort, tasks.empty() ? 8 : 3});
  acts.push_back({kLocal, 6});
  if (!collectable.empty()) acts.push_back({kHandOut, 5});
  acts.push_back({kWrong, 2});
  int total = 0;
  for (const auto& a : acts) total += a.second;
  int roll = static_cast<int>(U(total));
  Act act = acts.back().first;
  for (const auto& a : acts) {
    if (roll < a.second) {
      act = a.first;
      break;
    }
    roll -= a.second;
  }
  if (act == kWrong) {
    WrongAction(n, open, tasks);
    return;
  }

  auto request_id = [&]() -> std::string {
    return Chance(25) ? StrCat("rq-", n.id, "-", ++n.request_counter) : std::string();
  };
  std::vector<v1::Operation> ops;
  switch (act) {
    case kShip: {
      const auto* f = packed[U(packed.size())];
      auto* s = ops.emplace_back().mutable_ship();
      s->set_fulfilment_id(f->fulfilment_id());
      static const std::vector<std::string> kCarriers = {"DHL", "UPS", "GLS"};
      s->set_carrier(Pick(kCarriers));
      s->set_tracking(StrCat("TR", n.index + 1, "-", ++n.tracking_counter));
      s->set_request_id(request_id());
      break;
    }
    case kPack: {
      const auto* f = picked[U(picked.size())];
      auto* p = ops.emplace_back().mutable_pack();
      p->set_fulfilment_id(f->fulfilment_id());
      auto* pkg = p->add_packages();
      pkg->set_weight_g(Range(100, 20000));
      pkg->set_length_mm(Range(50, 800));
      pkg->set_width_mm(Range(50, 600));
      pkg->set_height_mm(Range(20, 400));
      if (Chance(25)) {  // name the items (they must add up to what was picked)
        std::map<std::string, int64_t> items;
        for (const auto& l : f->lines()) {
          if (l.picked() > 0) items[l.sku()] += l.picked();
        }
        for (const auto& [sku, q] : items) {
          auto* item = pkg->add_items();
          item->set_sku(sku);
          item->set_quantity(q);
        }
      }
      p->set_request_id(request_id());
      break;
    }
    case kPick: {
      const int count = Chance(35) ? static_cast<int>(Range(2, 3)) : 1;
      for (int i = 0; i < count && !tasks.empty(); ++i) {
        const size_t k = U(tasks.size());
        const v1::PickTask t = tasks[k];
        tasks.erase(tasks.begin() + static_cast<std::ptrdiff_t>(k));
        auto* p = ops.emplace_back().mutable_pick();
        p->set_fulfilment_id(t.fulfilment_id());
        p->set_bin(t.bin());
        p->set_item(t.sku());
        p->set_lot(t.lot());
        p->set_quantity(Chance(60) ? t.quantity() : Range(1, t.quantity()));
        p->set_request_id(request_id());
      }
      break;
    }
    case kFlow: {
      // One fulfilment's open tasks, then (when they cover everything) pack and maybe ship, in
      // one group commit: later operations see what the earlier ones wrote.
      const std::string id = tasks[U(tasks.size())].fulfilment_id();
      const v1::NodeFulfilment& f = *by_id.at(id);
      int64_t covered = 0, open_units = 0;
      for (const auto& l : f.lines()) open_units += std::max<int64_t>(0, l.reserved() - l.picked());
      for (const auto& t : tasks) {
        if (t.fulfilment_id() != id || ops.size() >= 4) continue;
        auto* p = ops.emplace_back().mutable_pick();
        p->set_fulfilment_id(id);
        p->set_bin(t.bin());
        p->set_item(t.sku());
        p->set_lot(t.lot());
        p->set_quantity(t.quantity());
        p->set_request_id(request_id());
        covered += t.quantity();
      }
      bool short_rest = false;
      for (const auto& l : f.lines()) short_rest |= l.short_quantity() > 0;
      if (covered >= open_units && !short_rest && Chance(80)) {
        auto* p = ops.emplace_back().mutable_pack();
        p->set_fulfilment_id(id);
        auto* pkg = p->add_packages();
        pkg->set_weight_g(Range(100, 20000));
        pkg->set_length_mm(Range(50, 800));
        pkg->set_width_mm(Range(50, 600));
        pkg->set_height_mm(Range(20, 400));
        p->set_request_id(request_id());
        if (Chance(70)) {
          auto* s = ops.emplace_back().mutable_ship();
          s->set_fulfilment_id(id);
          s->set_carrier("DHL");
          s->set_tracking(StrCat("TR", n.index + 1, "-", ++n.tracking_counter));
          s->set_request_id(request_id());
        }
      }
      break;
    }
    case kWave: {
      auto* w = ops.emplace_back().mutable_wave();
      w->set_max_orders(static_cast<uint32_t>(Range(1, 6)));
      if (Chance(15)) w->set_service_level("express");
      w->set_request_id(request_id());
      break;
    }
    case kShort: {
      const auto* f = shortable[U(shortable.size())];
      std::vector<const v1::FulfilmentLine*> lines;
      for (const auto& l : f->lines()) {
        if (l.reserved() > l.picked()) lines.push_back(&l);
      }
      const auto* l = lines[U(lines.size())];
      auto* s = ops.emplace_back().mutable_short_pick();
      s->set_fulfilment_id(f->fulfilment_id());
      s->set_line_no(l->line_no());
      s->set_quantity(Chance(50) ? 0 : Range(1, l->reserved() - l->picked()));
      static const std::vector<std::string> kReasons = {"not_found", "damaged", "wrong_item",
                                                        "other"};
      s->set_reason(Pick(kReasons));
      s->set_request_id(request_id());
      break;
    }
    case kLocal: {
      auto* o = ops.emplace_back().mutable_local_order();
      o->set_kind(Chance(60) ? v1::COUNTER_SALE : v1::CLICK_AND_COLLECT);
      std::vector<std::string> skus;
      for (const auto& [code, model] : skus_) skus.push_back(code);
      const int lines = Chance(75) ? 1 : 2;
      for (int i = 0; i < lines; ++i) {
        auto* l = o->add_lines();
        // Mostly what the shop has (the rest is refused: unknown here, or not available).
        std::string sku = Pick(skus);
        int64_t max = 3;
        if (Chance(85)) {
          for (int attempt = 0; attempt < 3; ++attempt) {
            auto atp = n.ledger->GetAtp(sku);
            if (atp.ok() && atp->available() > 0) {
              max = std::min<int64_t>(max, atp->available());
              break;
            }
            sku = Pick(skus);
          }
        }
        l->set_sku(sku);
        l->set_quantity(Range(1, max));
        l->set_unit_price_cents(Range(100, 5000));
      }
      o->set_customer("walk-in");
      o->set_request_id(request_id());
      break;
    }
    case kHandOut: {
      const auto* f = collectable[U(collectable.size())];
      auto* h = ops.emplace_back().mutable_hand_out();
      h->set_fulfilment_id(f->fulfilment_id());
      h->set_request_id(request_id());
      break;
    }
    case kWrong: break;
  }
  // Now and then a stock operation shares the group commit.
  if (Chance(10)) ops.push_back(RandomOperation(n));
  ApplyOps(n, ops, ops.size() > 1 ? "batch" : "op");
}

// A deliberately wrong action at a node: it must be refused and change nothing.
void Sim::WrongAction(NodeSim& n, const std::vector<v1::NodeFulfilment>& open,
                      const std::vector<v1::PickTask>& tasks) {
  std::vector<std::pair<std::string, v1::Operation>> cands;
  auto add = [&](const std::string& why) -> v1::Operation& {
    cands.emplace_back(why, v1::Operation());
    return cands.back().second;
  };
  std::vector<const v1::NodeFulfilment*> not_packed, not_picked, picked_all, not_collect, pickable;
  for (const auto& f : open) {
    const bool local = f.local_kind() != v1::LOCAL_ORDER_KIND_UNSPECIFIED;
    if (f.status() != v1::FULFILMENT_PACKED) not_packed.push_back(&f);
    if (!local && (f.status() == v1::FULFILMENT_ACCEPTED || f.status() == v1::FULFILMENT_PICKING)) {
      not_picked.push_back(&f);
    }
    if (f.status() == v1::FULFILMENT_PICKED || f.status() == v1::FULFILMENT_PACKED) {
      picked_all.push_back(&f);
    }
    if (f.local_kind() != v1::CLICK_AND_COLLECT) not_collect.push_back(&f);
  }
  if (!not_packed.empty()) {
    const auto* f = not_packed[U(not_packed.size())];
    auto* s =
        add(StrCat("ship before pack (", orders::StatusName(f->status()), ")")).mutable_ship();
    s->set_fulfilment_id(f->fulfilment_id());
    s->set_carrier("DHL");
    s->set_tracking("TR-early");
  }
  if (!tasks.empty()) {
    const v1::PickTask& t = tasks[U(tasks.size())];
    int64_t open_units = 0;
    for (const auto& f : open) {
      if (f.fulfilment_id() != t.fulfilment_id()) continue;
      for (const auto& l : f.lines()) {
        if (l.sku() == t.sku()) open_units += std::max<int64_t>(0, l.reserved() - l.picked());
      }
    }
    auto* p = add(StrCat("pick more than open (", open_units, ")")).mutable_pick();
    p->set_fulfilment_id(t.fulfilment_id());
    p->set_bin(t.bin());
    p->set_item(t.sku());
    p->set_lot(t.lot());
    p->set_quantity(open_units + Range(1, 3));
    auto* q = add("pick from the staging bin").mutable_pick();
    *q = *p;
    q->set_bin(node::kStagingBin);
    q->set_quantity(1);
  }
  if (!not_picked.empty()) {
    const auto* f = not_picked[U(not_picked.size())];
    auto* p = add(StrCat("pack before picking (", orders::StatusName(f->status()), ")"))
                  .mutable_pack();
    p->set_fulfilment_id(f->fulfilment_id());
    auto* pkg = p->add_packages();
    pkg->set_weight_g(500);
    pkg->set_length_mm(300);
    pkg->set_width_mm(200);
    pkg->set_height_mm(100);
  }
  if (!picked_all.empty()) {
    const auto* f = picked_all[U(picked_all.size())];
    auto* s = add(StrCat("short after picking (", orders::StatusName(f->status()), ")"))
                  .mutable_short_pick();
    s->set_fulfilment_id(f->fulfilment_id());
    s->set_line_no(f->lines(0).line_no());
    s->set_reason("not_found");
    if (f->status() == v1::FULFILMENT_PICKED) {
      auto* p = add("pack with no weight").mutable_pack();
      p->set_fulfilment_id(f->fulfilment_id());
      auto* pkg = p->add_packages();
      pkg->set_length_mm(300);
      pkg->set_width_mm(200);
      pkg->set_height_mm(100);
    }
  }
  if (!not_collect.empty()) {
    const auto* f = not_collect[U(not_collect.size())];
    add("hand out what is not click-and-collect")
        .mutable_hand_out()
        ->set_fulfilment_id(f->fulfilment_id());
  }
  for (auto status : {v1::FULFILMENT_SHIPPED, v1::FULFILMENT_CANCELLED}) {
    auto done = n.ledger->ListFulfilments(status, "", 3);
    if (!done.ok() || done->fulfilments().empty()) continue;
    const auto& f = done->fulfilments(U(done->fulfilments_size()));
    auto* s = add(StrCat("ship a ", orders::StatusName(status), " fulfilment")).mutable_ship();
    s->set_fulfilment_id(f.fulfilment_id());
    s->set_carrier("DHL");
    s->set_tracking("TR-again");
    if (!f.lines().empty()) {
      auto* p =
          add(StrCat("pick for a ", orders::StatusName(status), " fulfilment")).mutable_pick();
      p->set_fulfilment_id(f.fulfilment_id());
      p->set_bin("A1");
      p->set_item(f.lines(0).sku());
      p->set_quantity(1);
    }
  }
  {
    auto* s = add("ship an unknown fulfilment").mutable_ship();
    s->set_fulfilment_id("NOPE-1");
    s->set_carrier("DHL");
    s->set_tracking("TR-none");
  }
  const auto& [why, op] = cands[U(cands.size())];
  const std::string fid = FulfilmentIdOf(op);
  // Stock changes only through movements: no new movement, no new event and the same
  // fulfilment mean nothing changed.
  auto state = [&]() {
    auto f = n.ledger->GetFulfilment(fid);
    return StrCat(f.ok() ? f->SerializeAsString() : StatusText(f.status()), "|",
                  n.ledger->LastSeq(), "|", n.ledger->LastEventSeq());
  };
  const std::string before = state();
  RequestContext ctx{StrCat("op-", n.id), "sim"};
  auto r = n.ledger->Apply(ctx, op);
  const std::string after = state();
  Trace(StrCat(n.id, " WRONG (", why, ") ", DescribeOp(op), " -> ",
               r.ok() ? "ACCEPTED" : StatusText(r.status())));
  if (r.ok()) {
    Fail(StrCat("invariant 5 (wrong action accepted) at ", n.id, ": ", why, ": ",
                DescribeOp(op)));
  } else if (before != after) {
    Fail(StrCat("invariant 5 (refused action changed state) at ", n.id, ": ", why, ": ",
                DescribeOp(op)));
  } else {
    ++stats_.wrong_refused;
  }
}

// Invariant 5 after convergence (see sim.h).
void Sim::CheckOrders() {
  std::vector<v1::Order> orders;
  {
    v1::ListOrdersRequest list;
    list.set_limit(1000);
    while (true) {
      auto page = orders_->List(list);
      if (!page.ok()) {
        Fail(StrCat("listing orders failed: ", StatusText(page.status())));
        return;
      }
      for (auto& o : *page->mutable_orders()) orders.push_back(std::move(o));
      if (page->next_after().empty()) break;
      list.set_after(page->next_after());
    }
  }
  std::map<std::string, NodeSim*> node_of;
  std::map<std::string, std::map<std::string, v1::NodeFulfilment>> at;  // site -> id -> state
  std::map<std::string, std::vector<const v1::NodeFulfilment*>> by_order;
  for (auto& n : nodes_) {
    node_of[n->id] = n.get();
    auto list = n->ledger->ListFulfilments(v1::FULFILMENT_STATUS_UNSPECIFIED, "", 10000);
    if (!list.ok()) {
      Fail(StrCat(n->id, ": ListFulfilments: ", StatusText(list.status())));
      return;
    }
    auto& mine = at[n->id];
    for (const auto& f : list->fulfilments()) mine[f.fulfilment_id()] = f;
  }
  auto exempt = [&](const std::string& site, const std::string& id) {
    auto it = node_of.find(site);
    return it != node_of.end() && it->second->restored_fulfilments.count(id) > 0;
  };
  // Orders with a fulfilment a restore changed: central may hold a state the node no longer
  // has (and, for sales at the counter, a restored node may even reuse the sale's id for a new
  // sale: see sim.h), so only the fulfilments the restore did not touch are checked for them.
  std::set<std::string> restored_orders;
  for (const auto& [site, mine] : at) {
    for (const auto& [id, f] : mine) {
      if (exempt(site, id)) {
        restored_orders.insert(f.order_id());
      } else {
        by_order[f.order_id()].push_back(&f);
      }
    }
  }
  for (const v1::Order& o : orders) {
    for (const v1::Fulfilment& f : o.fulfilments()) {
      if (exempt(f.site(), f.fulfilment_id())) restored_orders.insert(o.order_id());
    }
  }
  auto fail5 = [&](const std::string& what) { Fail(StrCat("invariant 5 ", what)); };
  auto lines_of = [](const auto& f) {
    std::vector<std::string> out;
    for (const auto& l : f.lines()) {
      out.push_back(StrCat(l.line_no(), ":", l.sku(), " q", l.quantity(), " r", l.reserved(),
                           " p", l.picked(), " s", l.short_quantity(), " x", l.shipped()));
    }
    return absl::StrJoin(out, ", ");
  };

  std::map<std::string, std::string> central_site;  // fulfilment -> site it was released to
  for (const v1::Order& o : orders) {
    std::map<uint32_t, int64_t> central_live, node_live;
    bool any_shipped = false;
    std::vector<std::string> shipped_after_cancel;
    for (const v1::Fulfilment& f : o.fulfilments()) {
      central_site[f.fulfilment_id()] = f.site();
      const bool shipped = IsShipped(f.status());
      any_shipped |= shipped;
      if (o.local_site().empty()) ++stats_.released;
      if (shipped) ++stats_.shipped_final;
      if (f.cancel_requested() && f.status() == v1::FULFILMENT_CANCELLED) {
        ++stats_.cancels_confirmed;
      }
      if (f.cancel_requested() && shipped) shipped_after_cancel.push_back(f.fulfilment_id());
      if (f.status() != v1::FULFILMENT_CANCELLED) {
        for (const auto& l : f.lines()) {
          central_live[l.line_no()] += l.quantity() - l.short_quantity();
        }
      }
      // (a) Node and central agree on the fulfilment's state (a fulfilment a restore changed is
      // compared too, but a difference is only counted: see sim.h).
      const bool restored = exempt(f.site(), f.fulfilment_id());
      if (restored) ++stats_.restore_exempt;
      const auto& mine = at[f.site()];
      auto it = mine.find(f.fulfilment_id());
      if (it == mine.end() && restored) {
        ++stats_.restore_disagree;
        continue;
      }
      if (it == mine.end()) {
        fail5(StrCat("(agreement): central released ", f.fulfilment_id(), " of ", o.order_id(),
                     " to ", f.site(), " (central: ", orders::StatusName(f.status()),
                     "), which the node does not have"));
        continue;
      }
      const v1::NodeFulfilment& nf = it->second;
      const v1::FulfilmentStatus want =
          f.status() == v1::FULFILMENT_DELIVERED ? v1::FULFILMENT_SHIPPED : f.status();
      std::vector<std::string> diff;
      if (nf.status() != want) {
        diff.push_back(StrCat("status: central ", orders::StatusName(f.status()), ", node ",
                              orders::StatusName(nf.status())));
      }
      if (nf.cancel_requested() != f.cancel_requested()) {
        diff.push_back(StrCat("cancel requested: central ", f.cancel_requested(), ", node ",
                              nf.cancel_requested()));
      }
      if (lines_of(f) != lines_of(nf)) {
        diff.push_back(StrCat("lines: central [", lines_of(f), "], node [", lines_of(nf), "]"));
      }
      if (!diff.empty() && restored) {
        ++stats_.restore_disagree;
      } else if (!diff.empty()) {
        fail5(StrCat("(agreement): ", f.fulfilment_id(), " of ", o.order_id(), " at ", f.site(),
                     ": ", absl::StrJoin(diff, "; ")));
      }
    }
    if (restored_orders.count(o.order_id())) continue;  // (a) checked the others
    for (const v1::NodeFulfilment* nf : by_order[o.order_id()]) {
      if (nf->status() == v1::FULFILMENT_CANCELLED) continue;
      for (const auto& l : nf->lines()) node_live[l.line_no()] += l.quantity() - l.short_quantity();
    }
    // (b) Released to at most one site at a time: units in live fulfilments (as central sees
    // them, and as the nodes do) plus cancelled units never exceed the line.
    int64_t shipped_units = 0;
    for (const auto& l : o.lines()) {
      shipped_units += l.shipped();
      for (const auto& [who, live] : {std::pair{"central", &central_live},
                                      std::pair{"the nodes", &node_live}}) {
        const int64_t units = (*live)[l.line_no()];
        if (units + l.cancelled() > l.quantity()) {
          fail5(StrCat("(released at most once): ", o.order_id(), " line ", l.line_no(), " (",
                       l.sku(), " x", l.quantity(), "): ", units, " units in live fulfilments (",
                       who, ") + ", l.cancelled(), " cancelled: ", DescribeOrder(o)));
        }
      }
      if (l.shipped() > l.quantity()) {
        fail5(StrCat("(released at most once): ", o.order_id(), " line ", l.line_no(),
                     " shipped ", l.shipped(), " of ", l.quantity()));
      }
    }
    // (c) Never both shipped and cancelled without an exception.
    if (!shipped_after_cancel.empty()) {
      v1::ListExceptionsRequest q;
      q.set_kind("cancel_after_ship");
      q.set_order_id(o.order_id());
      q.set_include_resolved(true);
      auto list = real_store_->orders()->QueryExceptions(q);
      if (!list.ok()) {
        Fail(StrCat("QueryExceptions: ", StatusText(list.status())));
        return;
      }
      for (const auto& id : shipped_after_cancel) {
        ++stats_.cancel_after_ship;
        bool listed = false;
        for (const auto& e : list->exceptions()) listed |= e.fulfilment_id() == id;
        if (!listed) {
          fail5(StrCat("(shipped and cancelled): ", id, " of ", o.order_id(),
                       " shipped although its cancellation was asked, and central lists no "
                       "cancel_after_ship exception for it: ", DescribeOrder(o)));
        }
      }
    }
    if (o.status() == v1::ORDER_CANCELLED && (shipped_units > 0 || any_shipped)) {
      fail5(StrCat("(shipped and cancelled): ", o.order_id(), " is cancelled but shipped ",
                   shipped_units, " units: ", DescribeOrder(o)));
    }
  }
  // (a) The other way: every fulfilment a node has is one central released to that node (or a
  // local sale central recorded there).
  for (const auto& [site, mine] : at) {
    for (const auto& [id, f] : mine) {
      if (exempt(site, id)) continue;
      auto it = central_site.find(id);
      if (it == central_site.end()) {
        fail5(StrCat("(agreement): ", site, " has fulfilment ", id, " (",
                     orders::StatusName(f.status()), "), which central does not know"));
      } else if (it->second != site) {
        fail5(StrCat("(agreement): ", site, " has fulfilment ", id, ", which central released to ",
                     it->second));
      }
    }
  }
  // (d) Stock: the staging bin holds exactly the picked units of fulfilments not shipped or
  // cancelled (the mirror check and Verify cover the rest).
  for (auto& n : nodes_) {
    std::map<std::string, int64_t> want, have;
    for (const auto& [id, f] : at[n->id]) {
      if (orders::IsFinal(f.status())) continue;
      for (const auto& l : f.lines()) {
        if (l.picked() != 0) want[l.sku()] += l.picked();
      }
    }
    auto staging = n->ledger->GetStock("", node::kStagingBin);
    if (!staging.ok()) {
      Fail(StrCat(n->id, ": staging stock: ", StatusText(staging.status())));
      continue;
    }
    for (const auto& b : staging->balances()) {
      if (b.on_hand() != 0) have[b.sku()] += b.on_hand();
    }
    if (want != have) {
      std::vector<std::string> w, h;
      for (const auto& [k, v] : want) w.push_back(StrCat(k, "x", v));
      for (const auto& [k, v] : have) h.push_back(StrCat(k, "x", v));
      fail5(StrCat("(stock) at ", n->id, ": the staging bin holds [", absl::StrJoin(h, " "),
                   "], the open fulfilments picked [", absl::StrJoin(w, " "), "]"));
    }
  }
  // (e) No conflicting or unknown fulfilment updates, except for fulfilments a restore rewound.
  for (const char* kind : {"conflict", "unknown_fulfilment"}) {
    v1::ListExceptionsRequest q;
    q.set_kind(kind);
    q.set_include_resolved(true);
    auto list = real_store_->orders()->QueryExceptions(q);
    if (!list.ok()) {
      Fail(StrCat("QueryExceptions: ", StatusText(list.status())));
      return;
    }
    for (const auto& e : list->exceptions()) {
      if (exempt(e.node_id(), e.fulfilment_id())) continue;
      fail5(StrCat("(exceptions): central raised ", kind, " for ", e.fulfilment_id(), " at ",
                   e.node_id(), ": ", e.message()));
    }
  }
  std::map<std::string, int> by_status;
  for (const auto& [site, mine] : at) {
    for (const auto& [id, f] : mine) ++by_status[orders::StatusName(f.status())];
  }
  std::vector<std::string> hist;
  for (const auto& [st, k] : by_status) hist.push_back(StrCat(st, " ", k));
  Trace(StrCat("node fulfilments: ", absl::StrJoin(hist, ", ")));
  Trace(StrCat("orders checked: ", orders.size(), " orders, ", stats_.released,
               " fulfilments released, ", stats_.shipped_final, " shipped, ",
               stats_.cancels_confirmed, " cancelled on request, ", stats_.cancel_after_ship,
               " shipped after a cancel request, ", stats_.restore_exempt,
               " changed by a restore (", stats_.restore_disagree, " disagreeing)"));
}

// ---------------------------------------------------------------------------------------------
// Convergence and invariants

bool Sim::Converged(NodeSim& n, std::string* why) {
  auto st = n.engine->Status();
  auto rec = real_store_->GetNode(n.id);
  if (!rec.ok()) {
    *why = StrCat("GetNode: ", StatusText(rec.status()));
    return false;
  }
  const uint64_t last = n.ledger->LastEventSeq();
  std::vector<std::string> lag;
  if (!n.stream_open) lag.push_back("no stream");
  if (!st.connected) lag.push_back("not welcomed");
  if (rec->applied_seq != last) {
    lag.push_back(StrCat("central applied ", rec->applied_seq, " of ", last));
  }
  if (n.ledger->OutboxAcked() != last || n.ledger->OutboxDepth() != 0) {
    lag.push_back(StrCat("outbox acked ", n.ledger->OutboxAcked(), " of ", last, ", depth ",
                         n.ledger->OutboxDepth()));
  }
  if (n.ledger->FeedMark() != rec->feed_seq) {
    lag.push_back(StrCat("feed applied ", n.ledger->FeedMark(), " of ", rec->feed_seq));
  }
  if (rec->feed_acked != rec->feed_seq) {
    lag.push_back(StrCat("central saw feed ack ", rec->feed_acked, " of ", rec->feed_seq));
  }
  *why = absl::StrJoin(lag, ", ");
  return lag.empty();
}

bool Sim::Quiesce() {
  quiescing_ = true;
  Trace("heal everything, faults off");
  for (auto& n : nodes_) {
    n->link_up = true;
    while (!n->late_close.empty()) LateClose(*n, false);
    Connect(*n);
  }
  std::map<std::string, int> unwelcomed_rounds;
  for (quiesce_round_ = 1; quiesce_round_ <= opt_.quiesce_rounds; ++quiesce_round_) {
    central_clock_.Advance(250 * kMs);
    for (auto& n : nodes_) n->clock->Advance(250 * kMs);
    for (auto& n : nodes_) {
      if (!n->stream_open) Connect(*n);
      if (n->stream_open && !n->engine->Status().connected) {
        if (++unwelcomed_rounds[n->id] > 3) {  // its Welcome was lost before the heal
          Trace(StrCat(n->id, " welcome timeout: reconnecting"));
          ++stats_.welcome_timeouts;
          unwelcomed_rounds[n->id] = 0;
          EndStream(*n, "welcome timeout", false);
          Connect(*n);
        }
      } else {
        unwelcomed_rounds[n->id] = 0;
      }
      PumpNode(*n, 0);
      PumpFeed(*n);
    }
    // Deliver until nothing moves (answers produce further messages).
    for (int guard = 0; guard < 10000; ++guard) {
      bool moved = false;
      for (auto& n : nodes_) {
        moved |= Deliver(*n, true, false);
        moved |= Deliver(*n, false, false);
      }
      if (!moved) break;
    }
    bool all = true;
    for (auto& n : nodes_) {
      std::string why;
      if (!Converged(*n, &why)) all = false;
    }
    if (all) {
      Trace(StrCat("converged after ", quiesce_round_, " rounds"));
      stats_.quiesce_rounds = quiesce_round_;
      stats_.max_quiesce_rounds = quiesce_round_;
      return true;
    }
  }
  std::vector<std::string> lag;
  for (auto& n : nodes_) {
    std::string why;
    if (!Converged(*n, &why)) {
      auto st = n->engine->Status();
      lag.push_back(StrCat(n->id, ": ", why, " (engine: acked ", st.acked_seq, ", sent ",
                           st.sent_seq, ", last error '", st.last_error, "')"));
    }
  }
  Fail(StrCat("no convergence within ", opt_.quiesce_rounds,
              " rounds after healing: ", absl::StrJoin(lag, "; ")));
  return false;
}

absl::StatusOr<SiteMirror> Sim::NodeStock(NodeSim& n) {
  SiteMirror out;
  auto skus = n.ledger->ListSkus("", 1000);
  if (!skus.ok()) return skus.status();
  for (const auto& sku : skus->skus()) {
    auto stock = n.ledger->GetStock(sku.code(), "");
    if (!stock.ok()) return stock.status();
    for (const auto& b : stock->balances()) out.on_hand[{b.sku(), b.lot()}] += b.on_hand();
    if (stock->atp().reserved() != 0) out.reserved[sku.code()] = stock->atp().reserved();
  }
  std::erase_if(out.on_hand, [](const auto& kv) { return kv.second == 0; });
  return out;
}

absl::StatusOr<std::vector<v1::Movement>> Sim::AllMovements(NodeSim& n) {
  std::vector<v1::Movement> all;
  node::MovementFilter f;
  f.limit = 1000;
  while (true) {
    auto page = n.ledger->ListMovements(f);
    if (!page.ok()) return page.status();
    for (const auto& m : page->movements()) all.push_back(m);
    if (page->next_after_seq() == 0) break;
    f.after_seq = page->next_after_seq();
  }
  return all;
}

std::string MirrorDiff(const SiteMirror& node, const SiteMirror& central,
                       const char* a_name = "node", const char* b_name = "central") {
  std::vector<std::string> d;
  std::set<std::pair<std::string, std::string>> keys;
  for (auto& [k, v] : node.on_hand) keys.insert(k);
  for (auto& [k, v] : central.on_hand) keys.insert(k);
  for (const auto& k : keys) {
    auto a = node.on_hand.count(k) ? node.on_hand.at(k) : 0;
    auto b = central.on_hand.count(k) ? central.on_hand.at(k) : 0;
    if (a != b) {
      d.push_back(StrCat("on hand ", k.first, k.second.empty() ? "" : "/", k.second, ": ", a_name,
                         " ", a, ", ", b_name, " ", b));
    }
  }
  std::set<std::string> skus;
  for (auto& [k, v] : node.reserved) skus.insert(k);
  for (auto& [k, v] : central.reserved) skus.insert(k);
  for (const auto& k : skus) {
    auto a = node.reserved.count(k) ? node.reserved.at(k) : 0;
    auto b = central.reserved.count(k) ? central.reserved.at(k) : 0;
    if (a != b) d.push_back(StrCat("reserved ", k, ": ", a_name, " ", a, ", ", b_name, " ", b));
  }
  return absl::StrJoin(d, "; ");
}

void Sim::CheckConvergence(NodeSim& n, const std::vector<v1::Movement>& movements) {
  auto mine = NodeStock(n);
  auto theirs = store_->Mirror(n.id);
  if (!mine.ok() || !theirs.ok()) {
    Fail(StrCat(n.id, ": cannot read stock: ", StatusText(mine.status()), " / ",
                StatusText(theirs.status())));
    return;
  }
  std::string diff = MirrorDiff(*mine, *theirs);
  if (!diff.empty()) Fail(StrCat("invariant 1 (convergence) at ", n.id, ": ", diff));

  // Events: the node's chain is gap-free from 1 to LastEventSeq. Movements ride on some of them
  // (the others carry fulfilment updates): central's digest is the sum of EventHash(event seq,
  // movement) over them, and it counts every event of the chain.
  const uint64_t last_event = n.ledger->LastEventSeq();
  uint64_t sum = 0;
  for (const auto& m : movements) {
    auto it = n.event_of_movement.find({m.seq(), m.hlc()});
    if (it == n.event_of_movement.end()) {
      Fail(StrCat(n.id, ": movement ", m.seq(), " was never sent as an event"));
      return;
    }
    sum += EventHash(it->second.second, m);
    // What the node sent is what it has.
    auto sent = n.sent.find(it->second);
    v1::Event e;
    if (sent == n.sent.end() || !e.ParseFromString(sent->second) ||
        e.movement().SerializeAsString() != m.SerializeAsString()) {
      Fail(StrCat(n.id, ": event ", it->second.second, " as sent differs from movement ",
                  m.seq()));
      return;
    }
  }
  auto digest = store_->EventDigest(n.id);
  if (!digest.ok()) {
    Fail(StrCat(n.id, ": EventDigest: ", StatusText(digest.status())));
    return;
  }
  if (digest->second != last_event || digest->first != sum) {
    Fail(StrCat("invariant 1 (event digest) at ", n.id, ": central has ", digest->second,
                " events digest ", digest->first, ", the node ", last_event, " events (",
                movements.size(), " movements) digest ", sum));
  }
  auto verify = n.ledger->Verify();
  if (!verify.ok() || !verify->ok()) {
    std::string what;
    if (verify.ok()) {
      what = StrCat(verify->differences_size(), " differences");
      for (int i = 0; i < std::min(4, verify->differences_size()); ++i) {
        const auto& d = verify->differences(i);
        absl::StrAppend(&what, i == 0 ? ": " : "; ", d.what(), " ", d.key(), " stored ",
                        d.stored(), " recomputed ", d.recomputed());
      }
    } else {
      what = StatusText(verify.status());
    }
    Fail(StrCat(n.id, ": ledger verify: ", what));
  }
}

void Sim::CheckMasterData(NodeSim& n) {
  auto skus = n.ledger->ListSkus("", 1000);
  auto bins = n.ledger->ListBins();
  if (!skus.ok() || !bins.ok()) {
    Fail(StrCat(n.id, ": cannot read master data"));
    return;
  }
  std::map<std::string, SkuModel> have;
  for (const auto& s : skus->skus()) {
    have[s.code()] = {s.name(), s.tracking() == v1::TRACKING_LOT ? "lot" : "none",
                      s.expiry_tracked(), s.allow_negative(), s.safety_stock()};
  }
  for (const auto& [code, want] : skus_) {
    auto it = have.find(code);
    if (it == have.end()) {
      Fail(StrCat("invariant 1 (master data) at ", n.id, ": SKU ", code, " missing"));
      continue;
    }
    const SkuModel& got = it->second;
    if (got.name != want.name || got.tracking != want.tracking || got.expiry != want.expiry ||
        got.negative != want.negative || got.safety != want.safety) {
      Fail(StrCat("invariant 1 (master data) at ", n.id, ": SKU ", code, " is '", got.name,
                  "' safety ", got.safety, ", central has '", want.name, "' safety ",
                  want.safety));
    }
  }
  if (have.size() != skus_.size()) {
    Fail(StrCat("invariant 1 (master data) at ", n.id, ": ", have.size(), " SKUs, central ",
                skus_.size()));
  }
  std::map<std::string, BinModel> bhave;
  for (const auto& b : bins->bins()) bhave[b.code()] = {b.zone(), b.walk_order()};
  const auto& bwant = bins_[n.id];
  for (const auto& [code, want] : bwant) {
    auto it = bhave.find(code);
    if (it == bhave.end() || it->second.zone != want.zone || it->second.walk != want.walk) {
      Fail(StrCat("invariant 1 (master data) at ", n.id, ": bin ", code,
                  it == bhave.end() ? " missing" : " differs"));
    }
  }
  if (bhave.size() != bwant.size()) {
    Fail(StrCat("invariant 1 (master data) at ", n.id, ": ", bhave.size(), " bins, central ",
                bwant.size()));
  }
}

void Sim::CheckExactlyOnce(NodeSim& n) {
  auto mirror0 = store_->Mirror(n.id);
  auto digest0 = store_->EventDigest(n.id);
  const uint64_t last = n.ledger->LastEventSeq();
  if (!mirror0.ok() || !digest0.ok()) {
    Fail(StrCat(n.id, ": cannot read central before the replay"));
    return;
  }
  // A fresh session: the node reconnects, then every batch it ever sent arrives once more.
  EndStream(n, "replay check", false);
  v1::NodeMessage hello = n.engine->Connect();
  std::vector<v1::CentralMessage> out;
  auto sid = central_->Open(hello.hello(), &out);
  if (!sid.ok()) {
    Fail(StrCat(n.id, ": fresh session for the replay refused: ", StatusText(sid.status())));
    return;
  }
  const uint64_t epoch = n.ledger->GetIdentity().epoch;
  std::vector<v1::Event> events;
  for (const auto& [key, bytes] : n.sent) {
    if (key.first != epoch) continue;  // other epochs: refused on this stream by design
    v1::Event e;
    e.ParseFromString(bytes);
    events.push_back(std::move(e));
  }
  // Contiguous chunks of random size, sent in random order, then everything at once.
  std::vector<v1::NodeMessage> batches;
  for (size_t i = 0; i < events.size();) {
    const size_t len = std::min<size_t>(events.size() - i, Range(1, 30));
    v1::NodeMessage m;
    for (size_t j = i; j < i + len; ++j) *m.mutable_events()->add_events() = events[j];
    batches.push_back(std::move(m));
    i += len;
  }
  for (size_t i = batches.size(); i > 1; --i) std::swap(batches[i - 1], batches[U(i)]);
  if (!events.empty()) {
    v1::NodeMessage all;
    for (const auto& e : events) *all.mutable_events()->add_events() = e;
    batches.push_back(std::move(all));
  }
  bool mark_moved = false;
  for (const auto& b : batches) {
    out.clear();
    auto s = central_->Handle(*sid, b, &out);
    if (!s.ok()) {
      Fail(StrCat("invariant 4 (exactly-once) at ", n.id, ": replaying ", Describe(b),
                  " closed the stream: ", StatusText(s)));
      break;
    }
    for (const auto& m : out) {
      if (m.has_ack() && m.ack().applied_seq() != last && !mark_moved) {
        mark_moved = true;
        Fail(StrCat("invariant 4 (exactly-once) at ", n.id, ": replaying ", Describe(b),
                    " moved central's mark to ", m.ack().applied_seq(), " (node's last event ",
                    last, ")"));
      }
    }
  }
  central_->Close(*sid);
  n.engine->Disconnect("replay check done");
  Trace(StrCat(n.id, " replayed ", events.size(), " events in ", batches.size(),
               " batches through a fresh session"));
  auto mirror1 = store_->Mirror(n.id);
  auto digest1 = store_->EventDigest(n.id);
  if (!mirror1.ok() || !digest1.ok()) {
    Fail(StrCat(n.id, ": cannot read central after the replay"));
    return;
  }
  std::string diff = MirrorDiff(*mirror0, *mirror1, "before", "after");
  if (!diff.empty()) {
    Fail(StrCat("invariant 4 (exactly-once) at ", n.id, ": the replay changed the mirror: ",
                diff));
  }
  if (*digest0 != *digest1) {
    Fail(StrCat("invariant 4 (exactly-once) at ", n.id, ": the replay changed the digest: ",
                digest0->second, " -> ", digest1->second, " events"));
  }

  // The other direction: the whole feed once more changes nothing at the node.
  auto feed = store_->ReadFeed(n.id, 0, 1000000);
  if (!feed.ok()) {
    Fail(StrCat(n.id, ": ReadFeed: ", StatusText(feed.status())));
    return;
  }
  const uint64_t mark = n.ledger->FeedMark();
  auto skus0 = n.ledger->ListSkus("", 1000);
  auto bins0 = n.ledger->ListBins();
  auto again = n.ledger->ApplyFeed(*feed);
  auto skus1 = n.ledger->ListSkus("", 1000);
  auto bins1 = n.ledger->ListBins();
  if (!again.ok() || *again != mark || n.ledger->FeedMark() != mark) {
    Fail(StrCat("invariant 4 (exactly-once) at ", n.id, ": re-applying the feed moved the mark ",
                mark, " -> ", again.ok() ? StrCat(*again) : StatusText(again.status())));
  }
  if (!skus0.ok() || !skus1.ok() || !bins0.ok() || !bins1.ok() ||
      skus0->SerializeAsString() != skus1->SerializeAsString() ||
      bins0->SerializeAsString() != bins1->SerializeAsString()) {
    Fail(StrCat("invariant 4 (exactly-once) at ", n.id,
                ": re-applying the feed changed the master data"));
  }
}

void Sim::CheckClocks(NodeSim& n, const std::vector<v1::Movement>& movements) {
  uint64_t prev = 0, expect = 1;
  for (const auto& m : movements) {
    if (m.seq() != expect) {
      Fail(StrCat(n.id, ": movement seq ", m.seq(), " where ", expect, " was expected (gap)"));
      return;
    }
    ++expect;
    if (m.hlc() <= prev) {
      Fail(StrCat("invariant 7 (clocks) at ", n.id, ": movement ", m.seq(), " HLC ", m.hlc(),
                  " <= previous ", prev));
      return;
    }
    prev = m.hlc();
  }
}

void Sim::CheckExceptions() {
  auto list = store_->ListExceptions("", "");
  if (!list.ok()) {
    Fail(StrCat("ListExceptions: ", StatusText(list.status())));
    return;
  }
  for (const auto& e : list->exceptions()) {
    Trace(StrCat("central exception ", e.kind(), " ", e.node_id(), ": ", e.message()));
    // Restores legitimately lose events; nothing else in this world should raise one.
    if (e.kind() == "restore_lost_events" && restores_happened_) continue;
    if (e.kind() == "clock_ahead") continue;  // node clocks may run ahead; flagged, not wrong
    // Selling rights: a loss (negative adjustment, scrap) that over-claims is reported by
    // design; a restore rewinds the node's book, so its re-sent grants mismatch central's.
    if (e.kind() == "rights_loss") continue;
    if ((e.kind() == "rights_seq" || e.kind() == "rights_conflict") && restores_happened_) continue;
    // The naive baseline ships without rights: central's book clamps and says so.
    if (!opt_.selling_rights && e.kind().rfind("rights_", 0) == 0) continue;
    // What orders raise in normal business (conflict and unknown_fulfilment: CheckOrders).
    if (opt_.orders && (e.kind() == "short_pick" || e.kind() == "stock_discrepancy" ||
                        e.kind() == "cancel_after_ship" || e.kind() == "failed_shipment" ||
                        e.kind() == "conflict" || e.kind() == "unknown_fulfilment")) {
      continue;
    }
    Fail(StrCat("unexpected central exception ", e.kind(), " for ", e.node_id(), ": ",
                e.message()));
  }
}

// Invariants 2 (conservation) and 3 (no silent oversell) across the processes, after
// convergence (nothing in flight): every (site, SKU) book at the node equals central's row for
// it, counter by counter; central's own identities and commitments hold (VerifyRights; the
// node's hold through Verify, a running check); and no release of central's found fewer units
// than it was allocated unless a reported loss explains it. A node restored from a backup
// rewinds its book while central keeps what it learned (docs/SYNC.md): its books are counted,
// not compared.
void Sim::CheckRights() {
  auto* orders = real_store_->orders();
  if (orders == nullptr) return;
  if (!opt_.selling_rights) {
    CountNaiveOversells();
    return;
  }
  std::set<std::string> restored;
  for (auto& n : nodes_) {
    if (n->restored) restored.insert(n->id);
  }
  auto verify = orders->VerifyRights();
  if (!verify.ok()) {
    Fail(StrCat("central VerifyRights: ", StatusText(verify.status())));
  } else {
    for (const auto& v : *verify) {
      bool exempt = false;
      for (const auto& id : restored) exempt |= v.find(id) != std::string::npos;
      if (!exempt) Fail(StrCat("invariant 2 (central): ", v));
    }
  }
  for (auto& n : nodes_) {
    auto node_books = n->ledger->ListRights("");
    auto central_books = orders->ListRights(n->id, "");
    if (!node_books.ok() || !central_books.ok()) {
      Fail(StrCat(n->id, ": cannot list rights"));
      continue;
    }
    std::map<std::string, v1::CentralRights> central;
    for (const auto& c : central_books->rights()) central[c.sku()] = c;
    for (const auto& b : node_books->books()) {
      if (n->restored) {
        ++stats_.rights_restore_exempt;
        continue;
      }
      ++stats_.rights_books;
      stats_.rights_granted_units += b.granted_total();
      const v1::CentralRights c = central.count(b.sku()) ? central[b.sku()] : v1::CentralRights();
      const std::pair<const char*, std::pair<int64_t, int64_t>> pairs[] = {
          {"central rights", {b.central_granted(), c.central_rights()}},
          {"granted", {b.granted_total(), c.granted_total()}},
          {"released", {b.released_total(), c.released_total()}},
          {"returned", {b.returned_total(), c.returned_total()}},
          {"shipped/consumed", {b.shipped_total(), c.consumed_total()}},
          {"written off", {b.central_written_off_total(), c.written_off_total()}},
      };
      for (const auto& [what, v] : pairs) {
        if (v.first != v.second) {
          Fail(StrCat("invariant 2: ", n->id, "/", b.sku(), " ", what, ": node ", v.first,
                      ", central ", v.second));
        }
      }
      if (c.central_committed() > c.central_rights()) {
        Fail(StrCat("invariant 3: ", n->id, "/", b.sku(), " central committed ",
                    c.central_committed(), " > its rights ", c.central_rights()));
      }
    }
    auto all = n->ledger->ListFulfilments(v1::FULFILMENT_STATUS_UNSPECIFIED, "", 10000);
    if (!all.ok()) continue;
    for (const auto& f : all->fulfilments()) {
      for (const auto& l : f.lines()) {
        if (l.short_reason() != "no_stock_at_release") continue;
        if (n->restored) continue;
        stats_.oversold_units += l.short_quantity();
        Fail(StrCat("invariant 3: ", n->id, " ", f.fulfilment_id(), " line ", l.line_no(),
                    " oversold: ", l.short_quantity(), " of ", l.sku(),
                    " missing at release without a reported loss"));
      }
    }
  }
}

// The naive baseline (SimOptions.selling_rights = false): no books to compare; the units
// central's releases found missing at a node are counted (they are what rights prevent).
void Sim::CountNaiveOversells() {
  for (auto& n : nodes_) {
    if (n->restored) continue;
    auto all = n->ledger->ListFulfilments(v1::FULFILMENT_STATUS_UNSPECIFIED, "", 10000);
    if (!all.ok()) {
      Fail(StrCat(n->id, ": cannot list fulfilments"));
      continue;
    }
    for (const auto& f : all->fulfilments()) {
      for (const auto& l : f.lines()) {
        if (l.short_reason() == "no_stock_at_release") stats_.oversold_units += l.short_quantity();
      }
    }
  }
}

void Sim::CheckInvariants() {
  for (auto& n : nodes_) {
    auto movements = AllMovements(*n);
    if (!movements.ok()) {
      Fail(StrCat(n->id, ": cannot list movements: ", StatusText(movements.status())));
      continue;
    }
    stats_.events_final += movements->size();
    // The engine's own view agrees once everything is acknowledged.
    auto st = n->engine->Status();
    if (st.acked_seq != n->ledger->LastEventSeq() || !st.connected) {
      Fail(StrCat(n->id, ": sync status after convergence says acked ", st.acked_seq, " of ",
                  n->ledger->LastEventSeq(), st.connected ? "" : " (not connected)",
                  " although central applied everything and the outbox is trimmed"));
    }
    CheckConvergence(*n, *movements);
    CheckMasterData(*n);
    CheckClocks(*n, *movements);
  }
  if (opt_.orders) CheckOrders();
  CheckRights();
  shadow_.forgetting = true;  // Sabotage::kForgetMark strikes from here on
  for (auto& n : nodes_) CheckExactlyOnce(*n);
  CheckExceptions();
}

SimResult Sim::Run() {
  const auto t0 = std::chrono::steady_clock::now();
  if (Setup()) {
    for (step_ = 1; step_ <= opt_.steps && result_.failures.size() < 5; ++step_) RandomStep();
    if (result_.failures.size() < 5 && Quiesce()) CheckInvariants();
  }
  for (auto& n : nodes_) {
    n->engine.reset();
    n->ledger.reset();
  }
  orders_.reset();
  central_.reset();
  store_.reset();
  if (!dir_.empty() && !opt_.keep_dir) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  } else if (!dir_.empty()) {
    Trace(StrCat("files kept in ", dir_));
  }
  result_.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return std::move(result_);
}

}  // namespace

void SimStats::Add(const SimStats& o) {
  runs += o.runs;
  ops_ok += o.ops_ok;
  ops_refused += o.ops_refused;
  ops_not_found += o.ops_not_found;
  replays += o.replays;
  messages_sent += o.messages_sent;
  delivered += o.delivered;
  dropped += o.dropped;
  duplicated += o.duplicated;
  reordered += o.reordered;
  delayed += o.delayed;
  lost_in_flight += o.lost_in_flight;
  event_batches += o.event_batches;
  events_sent += o.events_sent;
  events_resent += o.events_resent;
  feed_entries_sent += o.feed_entries_sent;
  connects += o.connects;
  open_refused += o.open_refused;
  node_stream_errors += o.node_stream_errors;
  central_stream_errors += o.central_stream_errors;
  partitions += o.partitions;
  node_crashes += o.node_crashes;
  central_crashes += o.central_crashes;
  late_closes += o.late_closes;
  zombie_deliveries += o.zombie_deliveries;
  imports += o.imports;
  clock_back_steps += o.clock_back_steps;
  welcome_timeouts += o.welcome_timeouts;
  backups += o.backups;
  restores += o.restores;
  events_final += o.events_final;
  quiesce_rounds += o.quiesce_rounds;
  max_quiesce_rounds = std::max(max_quiesce_rounds, o.max_quiesce_rounds);
  orders_captured += o.orders_captured;
  capture_replays += o.capture_replays;
  orders_refused += o.orders_refused;
  reviews += o.reviews;
  cancels_asked += o.cancels_asked;
  cancels_refused += o.cancels_refused;
  routing_passes += o.routing_passes;
  rerouted += o.rerouted;
  deliveries += o.deliveries;
  waves += o.waves;
  picks += o.picks;
  shorts += o.shorts;
  packs += o.packs;
  ships += o.ships;
  counter_sales += o.counter_sales;
  collects += o.collects;
  hand_outs += o.hand_outs;
  order_ops_refused += o.order_ops_refused;
  order_replays += o.order_replays;
  wrong_refused += o.wrong_refused;
  released += o.released;
  shipped_final += o.shipped_final;
  cancels_confirmed += o.cancels_confirmed;
  cancel_after_ship += o.cancel_after_ship;
  restore_exempt += o.restore_exempt;
  restore_disagree += o.restore_disagree;
  rights_books += o.rights_books;
  rights_granted_units += o.rights_granted_units;
  oversold_units += o.oversold_units;
  counts_created += o.counts_created;
  count_lines_posted += o.count_lines_posted;
  count_adjustments += o.count_adjustments;
  counts_with_moves_after_start += o.counts_with_moves_after_start;
  count_ops_refused += o.count_ops_refused;
  rights_restore_exempt += o.rights_restore_exempt;
}

SimResult RunSimulation(const SimOptions& options) { return Sim(options).Run(); }

std::vector<SimResult> RunSeeds(const SimOptions& base, uint64_t start, int count, int jobs,
                                const std::function<void(const SimResult&)>& on_done) {
  std::vector<SimResult> results(std::max(0, count));
  std::atomic<int> next{0};
  std::mutex mu;
  auto worker = [&] {
    while (true) {
      const int i = next.fetch_add(1);
      if (i >= count) return;
      SimOptions o = base;
      o.seed = start + static_cast<uint64_t>(i);
      SimResult r = RunSimulation(o);
      if (r.ok()) r.trace.clear();
      std::lock_guard<std::mutex> lock(mu);
      if (on_done) on_done(r);
      results[i] = std::move(r);
    }
  };
  std::vector<std::thread> threads;
  for (int j = 1; j < std::max(1, jobs); ++j) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  return results;
}

std::string ReplayCommand(const SimOptions& o) {
  std::string cmd = StrCat("depot-sim --trace ", o.seed, " --nodes ", o.nodes, " --steps ", o.steps);
  if (o.avoid_known_engine_bugs) absl::StrAppend(&cmd, " --avoid-known-bugs");
  if (o.unconfirmed_backups) absl::StrAppend(&cmd, " --unconfirmed-backups");
  if (o.sabotage == Sabotage::kDoubleApply) absl::StrAppend(&cmd, " --sabotage double-apply");
  if (o.sabotage == Sabotage::kForgetMark) absl::StrAppend(&cmd, " --sabotage forget-mark");
  if (o.sabotage == Sabotage::kDropCancel) absl::StrAppend(&cmd, " --sabotage drop-cancel");
  if (!o.orders) absl::StrAppend(&cmd, " --no-orders");
  if (o.stock_ops_touch_orders) absl::StrAppend(&cmd, " --stock-ops-touch-orders");
  if (!o.selling_rights) absl::StrAppend(&cmd, " --naive");
  return cmd;
}

std::string FormatFailure(const SimResult& r, const SimOptions& o, size_t max_trace_lines) {
  SimOptions replay = o;
  replay.seed = r.seed;
  std::string out = StrCat("seed ", r.seed, " FAILED (", r.failures.size(), " failures)\n");
  for (const auto& f : r.failures) absl::StrAppend(&out, "  - ", f, "\n");
  absl::StrAppend(&out, "replay: ", ReplayCommand(replay), "\n");
  if (!r.trace.empty() && max_trace_lines > 0) {
    const size_t from = r.trace.size() > max_trace_lines ? r.trace.size() - max_trace_lines : 0;
    absl::StrAppend(&out, "trace (", r.trace.size(), " lines", from ? ", the last ones" : "",
                    "):\n");
    for (size_t i = from; i < r.trace.size(); ++i) absl::StrAppend(&out, "  ", r.trace[i], "\n");
  }
  return out;
}

std::string FormatStats(const SimStats& s) {
  return StrCat(
      "runs ", s.runs, "; ops ok ", s.ops_ok, ", refused ", s.ops_refused, " (not found ",
      s.ops_not_found, "), idempotent replays ", s.replays, "; messages sent ", s.messages_sent,
      ", delivered ", s.delivered, ", dropped ", s.dropped, ", duplicated ", s.duplicated,
      ", reordered ", s.reordered, ", delayed ", s.delayed, ", lost in flight ",
      s.lost_in_flight, "; event batches ", s.event_batches, ", events sent ", s.events_sent,
      " (resent ", s.events_resent, "), feed entries sent ", s.feed_entries_sent, "; connects ",
      s.connects, ", refused ", s.open_refused, ", stream errors node/central ",
      s.node_stream_errors, "/", s.central_stream_errors, ", welcome timeouts ",
      s.welcome_timeouts, "; partitions ", s.partitions, ", node crashes ", s.node_crashes,
      ", central crashes ", s.central_crashes, ", late closes ", s.late_closes,
      " (old-stream messages read ", s.zombie_deliveries, "), imports ",
      s.imports, ", clock back-steps ", s.clock_back_steps, ", backups ", s.backups,
      ", restores ", s.restores, "; final events ", s.events_final,
      ", quiesce rounds total ", s.quiesce_rounds, " max ", s.max_quiesce_rounds,
      "; orders captured ", s.orders_captured, ", replayed ", s.capture_replays, ", refused ",
      s.orders_refused, ", reviews ", s.reviews, ", cancel calls ", s.cancels_asked,
      " (refused ", s.cancels_refused, "), routing passes ", s.routing_passes, " (orders changed ",
      s.rerouted, "), deliveries ", s.deliveries, "; node waves ", s.waves, ", picks ", s.picks,
      ", shorts ", s.shorts, ", packs ", s.packs, ", ships ", s.ships, ", counter sales ",
      s.counter_sales, ", click-and-collect ", s.collects, " (handed out ", s.hand_outs,
      "), order ops refused ", s.order_ops_refused, ", replayed ", s.order_replays,
      ", wrong actions refused ", s.wrong_refused,
      "; final: fulfilments released ", s.released, ", shipped ", s.shipped_final,
      ", cancelled on request ", s.cancels_confirmed, ", shipped after cancel request ",
      s.cancel_after_ship, ", changed by a restore ", s.restore_exempt, " (disagreeing ",
      s.restore_disagree, "); rights: books compared ", s.rights_books, ", units granted ",
      s.rights_granted_units, ", oversold ", s.oversold_units, ", books exempt after a restore ",
      s.rights_restore_exempt, "; counts: created ", s.counts_created, ", lines posted ",
      s.count_lines_posted, " (adjusted ", s.count_adjustments, ", moved after start ",
      s.counts_with_moves_after_start, "), refused ", s.count_ops_refused);
}

}  // namespace depot::sim
