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
#include "central/sqlite_store.h"
#include "common/clock.h"
#include "common/request_context.h"
#include "common/stock_rules.h"
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
    return real_->ReadFeed(node_id, after, limit);
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
  std::map<uint64_t, std::string> feed_seen;  // feed seq -> serialized entry, as central sent it
  uint64_t max_mark_seen = 0;                 // central's highest mark told to this node (epoch)
  uint64_t mark_epoch = 0;
  uint64_t max_feed_ack = 0;
  bool mark_regression_reported = false;

  // Local write bookkeeping.
  uint64_t last_hlc = 0;      // HLC of the newest movement (invariant 7, checked as we go)
  int request_counter = 0;
  std::vector<std::pair<v1::Operation, uint64_t>> requests;  // op with request_id, its first seq
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
  Shadow shadow_;

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
  return true;
}

bool Sim::OpenNode(NodeSim& n) {
  auto ledger = node::Ledger::Open({.path = n.path,
                                    .node_id = n.id,
                                    .durable = false,
                                    .central_managed = true,
                                    .clock = n.clock.get(),
                                    .read_connections = 1});
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
  for (auto& n : nodes_) absl::StrAppend(&sites, n->id, ",Site ", n->index + 1, ",warehouse,eu\n");
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
  std::erase_if(n.requests, [&](const auto& r) { return r.second > last; });
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
  static const std::vector<std::string> kRefs = {"R1", "R2", "R3", "R4"};
  std::string lot = lot_tracked ? Pick(kLots) : "";
  auto expiry_of = [&](const std::string& l) {
    return model.expiry && !l.empty() ? StrCat("2030-01-0", l.substr(1)) : std::string();
  };
  auto bin = [&] { return Chance(97) ? bins[U(bins.size() - 1)] : bins.back(); };
  // Most decrements draw on stock or reservations that exist, so that more of them succeed.
  std::optional<v1::Balance> balance;
  if (Chance(75)) {
    auto stock = n.ledger->GetStock(sku, "");
    if (stock.ok() && stock->balances_size() > 0) {
      balance = stock->balances(U(stock->balances_size()));
    }
  }
  std::optional<v1::Reservation> reservation;
  if (Chance(75)) {
    auto open = n.ledger->ListReservations(sku);
    if (open.ok() && open->reservations_size() > 0) {
      reservation = open->reservations(U(open->reservations_size()));
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

std::string RequestIdOf(const v1::Operation& op) {
  switch (op.op_case()) {
    case v1::Operation::kReceipt: return op.receipt().request_id();
    case v1::Operation::kMove: return op.move().request_id();
    case v1::Operation::kAdjust: return op.adjust().request_id();
    case v1::Operation::kScrap: return op.scrap().request_id();
    case v1::Operation::kReserve: return op.reserve().request_id();
    case v1::Operation::kRelease: return op.release().request_id();
    case v1::Operation::kConsume: return op.consume().request_id();
    default: return "";
  }
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
      Trace(line + StatusText(r.status()));
      continue;
    }
    ++stats_.ops_ok;
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
    Trace(line + "ok seq " + absl::StrJoin(seqs, ","));
    if (!RequestIdOf(ops[i]).empty() && r->movements_size() > 0) {
      n.requests.emplace_back(ops[i], r->movements(0).seq());
    }
  }
  if (n.ledger->LastSeq() != expect - 1) {
    Fail(StrCat(n.id, ": last seq ", n.ledger->LastSeq(), " after the writes, expected ",
                expect - 1));
  }
}

void Sim::ReplayRequest(NodeSim& n) {
  const auto& [op, first_seq] = n.requests[U(n.requests.size())];
  RequestContext ctx{StrCat("op-", n.id), "sim"};
  const uint64_t before = n.ledger->LastSeq();
  auto r = n.ledger->Apply(ctx, op);
  ++stats_.replays;
  std::string line = StrCat(n.id, " REPLAY ", DescribeOp(op), " -> ");
  if (!r.ok()) {
    Trace(line + StatusText(r.status()));
    Fail(StrCat(n.id, ": replaying request ", RequestIdOf(op),
                " failed: ", StatusText(r.status())));
    return;
  }
  Trace(StrCat(line, r->replayed() ? "replayed" : "NOT replayed", " seq ",
               r->movements_size() > 0 ? r->movements(0).seq() : 0));
  if (!r->replayed() || n.ledger->LastSeq() != before ||
      (r->movements_size() > 0 && r->movements(0).seq() != first_seq)) {
    Fail(StrCat(n.id, ": replaying request ", RequestIdOf(op),
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

  // Events: one per movement, seq = movement seq (the outbox refers to the movement rows).
  if (n.ledger->LastEventSeq() != n.ledger->LastSeq()) {
    Fail(StrCat(n.id, ": ", n.ledger->LastEventSeq(), " events for ", n.ledger->LastSeq(),
                " movements: the digest cannot be recomputed from the movements"));
    return;
  }
  uint64_t sum = 0;
  for (const auto& m : movements) sum += EventHash(m.seq(), m);
  auto digest = store_->EventDigest(n.id);
  if (!digest.ok()) {
    Fail(StrCat(n.id, ": EventDigest: ", StatusText(digest.status())));
    return;
  }
  if (digest->second != movements.size() || digest->first != sum) {
    Fail(StrCat("invariant 1 (event digest) at ", n.id, ": central has ", digest->second,
                " events digest ", digest->first, ", the node ", movements.size(),
                " events digest ", sum));
  }
  // What the node sent for its current epoch is what it has.
  const uint64_t epoch = n.ledger->GetIdentity().epoch;
  for (const auto& m : movements) {
    auto it = n.sent.find({epoch, m.seq()});
    if (it == n.sent.end()) continue;  // sent under an earlier epoch
    v1::Event e;
    e.ParseFromString(it->second);
    if (e.movement().SerializeAsString() != m.SerializeAsString()) {
      Fail(StrCat(n.id, ": event ", m.seq(), " as sent differs from the movement"));
      break;
    }
  }
  auto verify = n.ledger->Verify();
  if (!verify.ok() || !verify->ok()) {
    Fail(StrCat(n.id, ": ledger verify: ",
                verify.ok() ? StrCat(verify->differences_size(), " differences")
                            : StatusText(verify.status())));
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
    Fail(StrCat("unexpected central exception ", e.kind(), " for ", e.node_id(), ": ",
                e.message()));
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
      ", quiesce rounds total ", s.quiesce_rounds, " max ", s.max_quiesce_rounds);
}

}  // namespace depot::sim
