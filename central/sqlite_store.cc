#include "central/sqlite_store.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "central/central_rights.h"
#include "central/channels_csv.h"
#include "central/orders.h"
#include "central/purchase_orders.h"
#include "central/transfers.h"
#include "central/returns.h"
#include "central/serials.h"
#include "common/master_csv.h"
#include "common/purchasing.h"
#include "common/sqlite_db.h"
#include "common/stock_rules.h"

namespace depot::central {
namespace {

// Parses the BLOB in `column` of q's current row into msg; false when it does not parse.
bool ParseBlob(SQLite::Statement& q, int column, google::protobuf::MessageLite* msg) {
  auto col = q.getColumn(column);
  return msg->ParseFromArray(col.getBlob(), col.getBytes());
}

// Every remaining row of q, its BLOB in `column` parsed as an M; DataLoss(corrupt) when one does
// not parse. Resets q.
template <class M>
absl::StatusOr<std::vector<M>> ReadMessages(SQLite::Statement& q, const char* corrupt,
                                            int column = 0) {
  std::vector<M> out;
  while (q.executeStep()) {
    if (!ParseBlob(q, column, &out.emplace_back())) {
      q.reset();
      return absl::DataLossError(corrupt);
    }
  }
  q.reset();
  return out;
}

using absl::StrCat;

constexpr db::Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE sites(id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL,
  region TEXT NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE skus(code TEXT PRIMARY KEY, gtin TEXT NOT NULL, name TEXT NOT NULL,
  unit TEXT NOT NULL, tracking INTEGER NOT NULL, expiry_tracked INTEGER NOT NULL,
  allow_negative INTEGER NOT NULL, safety_stock INTEGER NOT NULL,
  version INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE bins(site TEXT NOT NULL, code TEXT NOT NULL, zone TEXT NOT NULL,
  walk_order INTEGER NOT NULL, version INTEGER NOT NULL, PRIMARY KEY(site, code)) WITHOUT ROWID;

-- One row per site: its sync marks.
CREATE TABLE nodes(node_id TEXT PRIMARY KEY, epoch INTEGER NOT NULL DEFAULT 0,
  applied_seq INTEGER NOT NULL DEFAULT 0, last_event_hlc INTEGER NOT NULL DEFAULT 0,
  feed_acked INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE retired_epochs(node_id TEXT NOT NULL, epoch INTEGER NOT NULL,
  PRIMARY KEY(node_id, epoch)) WITHOUT ROWID;

-- Every applied event (audit, digests, and reversal after a restore).
CREATE TABLE events(node_id TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
  hlc INTEGER NOT NULL, hash INTEGER NOT NULL, payload BLOB NOT NULL,
  reversed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(node_id, epoch, seq)) WITHOUT ROWID;

-- The network-wide mirror, maintained in the same transaction as the events and the mark.
CREATE TABLE mirror_stock(site TEXT NOT NULL, sku TEXT NOT NULL, lot TEXT NOT NULL,
  on_hand INTEGER NOT NULL, PRIMARY KEY(site, sku, lot)) WITHOUT ROWID;
CREATE INDEX mirror_stock_by_sku ON mirror_stock(sku, site, lot);
CREATE TABLE mirror_reserved(site TEXT NOT NULL, sku TEXT NOT NULL, reserved INTEGER NOT NULL,
  PRIMARY KEY(site, sku)) WITHOUT ROWID;
CREATE INDEX mirror_reserved_by_sku ON mirror_reserved(sku, site);

-- Central -> node feed, seq gap-free per node.
CREATE TABLE feed(node_id TEXT NOT NULL, seq INTEGER NOT NULL, payload BLOB NOT NULL,
  PRIMARY KEY(node_id, seq)) WITHOUT ROWID;

CREATE TABLE exceptions(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, node_id TEXT NOT NULL,
  message TEXT NOT NULL, at_ms INTEGER NOT NULL, count INTEGER NOT NULL DEFAULT 1,
  first_at_ms INTEGER NOT NULL);
CREATE INDEX exceptions_by_node ON exceptions(node_id, kind, id);
)sql"},
    {2, R"sql(
-- Orders (issue 4). Exceptions name what they concern and are worked by people.
ALTER TABLE exceptions ADD COLUMN order_id TEXT NOT NULL DEFAULT '';
ALTER TABLE exceptions ADD COLUMN fulfilment_id TEXT NOT NULL DEFAULT '';
ALTER TABLE exceptions ADD COLUMN sku TEXT NOT NULL DEFAULT '';
ALTER TABLE exceptions ADD COLUMN assignee TEXT NOT NULL DEFAULT '';
ALTER TABLE exceptions ADD COLUMN resolved INTEGER NOT NULL DEFAULT 0;
ALTER TABLE exceptions ADD COLUMN resolution_note TEXT NOT NULL DEFAULT '';
ALTER TABLE exceptions ADD COLUMN resolved_at_ms INTEGER NOT NULL DEFAULT 0;
CREATE INDEX exceptions_by_order ON exceptions(order_id, id);

-- Central-only master data (never fed to nodes).
CREATE TABLE channels(id TEXT PRIMARY KEY, name TEXT NOT NULL, site_priority TEXT NOT NULL,
  allow_split INTEGER NOT NULL, review_above_cents INTEGER NOT NULL,
  version INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE kits(kit_sku TEXT NOT NULL, position INTEGER NOT NULL, component_sku TEXT NOT NULL,
  quantity INTEGER NOT NULL, PRIMARY KEY(kit_sku, position)) WITHOUT ROWID;

CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO counters VALUES ('order', 0);

-- One row per order: the whole Order message (lines, fulfilments, history) plus the columns
-- that filters, idempotency and the re-routing queue need.
CREATE TABLE orders(order_id TEXT PRIMARY KEY, channel TEXT NOT NULL, external_id TEXT NOT NULL,
  fingerprint INTEGER NOT NULL, status INTEGER NOT NULL, captured_ms INTEGER NOT NULL,
  needs_routing INTEGER NOT NULL, shipped_ms INTEGER NOT NULL, units_requested INTEGER NOT NULL,
  units_shipped INTEGER NOT NULL, body BLOB NOT NULL);
CREATE UNIQUE INDEX orders_by_external ON orders(channel, external_id);
CREATE INDEX orders_by_status ON orders(status, order_id);
CREATE INDEX orders_by_channel ON orders(channel, order_id);
-- Covers the KPI scan, so it never reads order bodies.
CREATE INDEX orders_by_captured ON orders(captured_ms, channel, shipped_ms, units_requested,
  units_shipped);
CREATE INDEX orders_to_route ON orders(order_id) WHERE needs_routing = 1;

-- Fulfilment index: which order a fulfilment belongs to, its site and status, and its KPI facts.
CREATE TABLE fulfilments(fulfilment_id TEXT PRIMARY KEY, order_id TEXT NOT NULL,
  site TEXT NOT NULL, status INTEGER NOT NULL, captured_ms INTEGER NOT NULL,
  shipped_ms INTEGER NOT NULL, units_requested INTEGER NOT NULL,
  units_shipped INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX fulfilments_by_site ON fulfilments(site, order_id);

-- Units in fulfilments still RELEASED (the node has not reserved them yet), per (site, sku):
-- routing subtracts them from availability.
CREATE TABLE released_units(site TEXT NOT NULL, sku TEXT NOT NULL, units INTEGER NOT NULL,
  PRIMARY KEY(site, sku)) WITHOUT ROWID;
CREATE INDEX released_units_by_sku ON released_units(sku, site);
)sql"},
    {3, R"sql(
-- Selling rights (docs/SYNC.md "Selling rights"): central's book per (site, SKU), maintained in
-- the same transactions as the events, releases and merges that change it.
CREATE TABLE rights(site TEXT NOT NULL, sku TEXT NOT NULL,
  central_rights INTEGER NOT NULL DEFAULT 0, central_committed INTEGER NOT NULL DEFAULT 0,
  granted_total INTEGER NOT NULL DEFAULT 0, released_total INTEGER NOT NULL DEFAULT 0,
  returned_total INTEGER NOT NULL DEFAULT 0, consumed_total INTEGER NOT NULL DEFAULT 0,
  written_off_total INTEGER NOT NULL DEFAULT 0, grant_seq INTEGER NOT NULL DEFAULT 0,
  release_seq INTEGER NOT NULL DEFAULT 0, request_pending_units INTEGER NOT NULL DEFAULT 0,
  request_at_ms INTEGER NOT NULL DEFAULT 0,
  node_book BLOB,  -- RightsBook of the node's latest rights event
  PRIMARY KEY(site, sku)) WITHOUT ROWID;
-- Covers routing's lookup by SKU.
CREATE INDEX rights_by_sku ON rights(sku, site, central_rights, central_committed);
CREATE TABLE rights_history(id INTEGER PRIMARY KEY, site TEXT NOT NULL, sku TEXT NOT NULL,
  hlc INTEGER NOT NULL, at_ms INTEGER NOT NULL, kind TEXT NOT NULL, units INTEGER NOT NULL,
  seq INTEGER NOT NULL, reference TEXT NOT NULL, note TEXT NOT NULL);
CREATE INDEX rights_history_by_key ON rights_history(site, sku, id);
CREATE INDEX rights_history_by_sku ON rights_history(sku, id);
-- Explicit split policies; a site without a row has the default of its kind.
CREATE TABLE rights_policies(site TEXT PRIMARY KEY, store_share_percent INTEGER NOT NULL,
  store_share_units INTEGER NOT NULL, floor_units INTEGER NOT NULL,
  refill_below INTEGER NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID;
ALTER TABLE channels ADD COLUMN listing_buffer INTEGER NOT NULL DEFAULT 0;
-- Routing allocates against central's rights now (their commitments replace it).
DROP TABLE released_units;
)sql"},
    {4, R"sql(
-- Cycle counts: one row per posted count line of a site (Event.count), for the inventory
-- accuracy KPI. Rows of events a restore lost are deleted with the epoch change.
CREATE TABLE count_results(site TEXT NOT NULL, count_id TEXT NOT NULL, line_no INTEGER NOT NULL,
  sku TEXT NOT NULL, bin TEXT NOT NULL, lot TEXT NOT NULL, counted INTEGER NOT NULL,
  expected INTEGER NOT NULL, variance INTEGER NOT NULL, within_tolerance INTEGER NOT NULL,
  counted_by TEXT NOT NULL, approved_by TEXT NOT NULL, posted_ms INTEGER NOT NULL,
  PRIMARY KEY(site, count_id, line_no)) WITHOUT ROWID;
CREATE INDEX count_results_by_time ON count_results(posted_ms);
)sql"},
    {5, R"sql(
-- Purchase orders (central/purchase_orders.h): the whole PurchaseOrder message plus the columns
-- filters need; received quantities come from the sites' receipt events. Supplier defaults.
CREATE TABLE purchase_orders(po_id TEXT PRIMARY KEY, site TEXT NOT NULL, supplier TEXT NOT NULL,
  status INTEGER NOT NULL, body BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX purchase_orders_by_site ON purchase_orders(site, po_id);
CREATE TABLE suppliers(id TEXT PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID;
)sql"},
    {6, R"sql(
-- Transfers between sites (central/transfers.h): the whole Transfer message as the nodes last
-- reported it (or as central ordered it), n in arrival order, request_id of central's orders.
CREATE TABLE transfers(transfer_id TEXT PRIMARY KEY, n INTEGER NOT NULL, source TEXT NOT NULL,
  destination TEXT NOT NULL, status INTEGER NOT NULL, origin TEXT NOT NULL,
  version INTEGER NOT NULL, request_id TEXT NOT NULL, body BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX transfers_by_n ON transfers(n);
CREATE INDEX transfers_by_status ON transfers(status, n);
CREATE INDEX transfers_by_request ON transfers(request_id) WHERE request_id <> '';
)sql"},
    {7, R"sql(
-- Returns (central/returns.h): RMAs and counter returns, the whole Return message in body
-- (rma_no > 0 for central's RMAs); serials the sites shipped, for the returns' serial check.
CREATE TABLE returns(return_id TEXT PRIMARY KEY, rma_no INTEGER NOT NULL, order_id TEXT NOT NULL,
  site TEXT NOT NULL, status INTEGER NOT NULL, created_ms INTEGER NOT NULL,
  body BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX returns_by_order ON returns(order_id);
CREATE INDEX returns_by_time ON returns(created_ms);
CREATE TABLE shipped_serials(site TEXT NOT NULL, reference TEXT NOT NULL, sku TEXT NOT NULL,
  serial TEXT NOT NULL, PRIMARY KEY(site, reference, sku, serial)) WITHOUT ROWID;
)sql"},
    {8, R"sql(
-- Serials across the network (central/serials.h): where every serial of the nodes' movements is
-- (state in_stock / in_transit / shipped / gone, at or by site), and its last shipment no return
-- came back from.
CREATE TABLE serials(sku TEXT NOT NULL, serial TEXT NOT NULL, state TEXT NOT NULL,
  site TEXT NOT NULL, reference TEXT NOT NULL, updated_hlc INTEGER NOT NULL,
  shipped_site TEXT NOT NULL DEFAULT '', shipped_reference TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(sku, serial)) WITHOUT ROWID;
)sql"},
};

class SqliteStore : public CentralStore, public OrderStore {
 public:
  // read_db: a second connection for order reads (a WAL snapshot that never waits for the
  // writer); nullptr = read through db.
  SqliteStore(std::unique_ptr<SQLite::Database> db, std::unique_ptr<SQLite::Database> read_db)
      : db_(std::move(db)), read_db_(std::move(read_db)) {}

  OrderStore* orders() override { return this; }

  absl::StatusOr<NodeRecord> GetNode(const std::string& node_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Guard([&]() -> absl::StatusOr<NodeRecord> { return GetNodeLocked(node_id); });
  }

  absl::StatusOr<std::vector<NodeRecord>> ListNodes() override {
    std::lock_guard<std::mutex> lock(mu_);
    return Guard([&]() -> absl::StatusOr<std::vector<NodeRecord>> {
      std::vector<NodeRecord> out;
      SQLite::Statement q(*db_,
                          "SELECT n.node_id, s.name, n.epoch, n.applied_seq, n.last_event_hlc, "
                          "n.feed_acked, (SELECT COALESCE(MAX(seq), 0) FROM feed f "
                          "WHERE f.node_id = n.node_id) FROM nodes n JOIN sites s "
                          "ON s.id = n.node_id ORDER BY n.node_id");
      while (q.executeStep()) {
        out.push_back(ReadNode(q));
        AddPendingAck(&out.back());
      }
      return out;
    });
  }

  absl::StatusOr<bool> IsRetiredEpoch(const std::string& node_id, uint64_t epoch) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Guard([&]() -> absl::StatusOr<bool> {
      SQLite::Statement q(*db_, "SELECT 1 FROM retired_epochs WHERE node_id = ? AND epoch = ?");
      q.bind(1, node_id);
      q.bind(2, static_cast<int64_t>(epoch));
      return q.executeStep();
    });
  }

  absl::StatusOr<uint64_t> BeginEpoch(const std::string& node_id, uint64_t new_epoch,
                                      uint64_t keep_through) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Guard([&]() -> absl::StatusOr<uint64_t> {
      db::WriteTransaction tx(*db_);
      auto node = GetNodeLocked(node_id);
      if (!node.ok()) return node.status();
      uint64_t reversed = 0;
      if (node->epoch != 0) {
        SQLite::Statement retire(*db_, "INSERT OR IGNORE INTO retired_epochs VALUES (?, ?)");
        retire.bind(1, node_id);
        retire.bind(2, static_cast<int64_t>(node->epoch));
        retire.exec();
        // Reverse the effects of applied events the node no longer has.
        SQLite::Statement lost(*db_,
                               "SELECT epoch, seq, payload FROM events WHERE node_id = ? AND "
                               "seq > ? AND reversed = 0 ORDER BY seq");
        lost.bind(1, node_id);
        lost.bind(2, static_cast<int64_t>(std::min<uint64_t>(keep_through, INT64_MAX)));
        std::vector<std::pair<int64_t, int64_t>> keys;
        Deltas deltas;
        while (lost.executeStep()) {
          v1::Event e;
          if (!ParseBlob(lost, 2, &e)) {
            return absl::DataLossError("corrupt event in central's log");
          }
          // Every lost event leaves the node's chain (the digest), but only stock movements are
          // reversed and counted. Fulfilment updates are not undone: central keeps the order
          // state it learned (the restored node is behind; its later updates merge forward and
          // older ones are ignored by the merge rules, common/order_state.h).
          keys.emplace_back(lost.getColumn(0).getInt64(), lost.getColumn(1).getInt64());
          if (e.has_count()) {  // the restored node no longer has this count result
            SQLite::Statement del(*db_,
                                  "DELETE FROM count_results WHERE site = ? AND count_id = ? "
                                  "AND line_no = ?");
            del.bind(1, node_id);
            del.bind(2, e.count().count_id());
            del.bind(3, static_cast<int64_t>(e.count().line_no()));
            del.exec();
          }
          if (!e.has_movement()) continue;
          if (e.movement().reason() == purchasing::kReceiptReason) {
            PoTxImpl po_tx(this);  // the PO's received quantity goes back too
            ApplyReceiptEvent(po_tx, node_id, e, -1);
          }
          AddEffects(e, -1, &deltas);
          ++reversed;
        }
        SQLite::Statement mark(*db_,
                               "UPDATE events SET reversed = 1 WHERE node_id = ? AND epoch = ? "
                               "AND seq = ?");
        for (auto& [ep, seq] : keys) {
          mark.bind(1, node_id);
          mark.bind(2, ep);
          mark.bind(3, seq);
          mark.exec();
          mark.reset();
        }
        WriteDeltas(node_id, deltas);
      }
      SQLite::Statement up(*db_, "UPDATE nodes SET epoch = ?, applied_seq = ? WHERE node_id = ?");
      up.bind(1, static_cast<int64_t>(new_epoch));
      up.bind(2, static_cast<int64_t>(std::min(node->applied_seq, keep_through)));
      up.bind(3, node_id);
      up.exec();
      tx.Commit();
      return reversed;
    });
  }

  // Group commit: concurrent callers (one per connected node) queue their batches; one of them
  // applies every queued batch in a single transaction, each in its own savepoint so a refused
  // batch does not affect the others, and commits once for all.
  absl::StatusOr<uint64_t> ApplyEvents(const std::string& node_id, uint64_t epoch,
                                       const std::vector<const v1::Event*>& events) override {
    PendingApply me{&node_id, epoch, &events};
    std::unique_lock<std::mutex> lk(gc_mu_);
    gc_queue_.push_back(&me);
    while (!me.done) {
      if (gc_leader_) {
        gc_cv_.wait(lk);
        continue;
      }
      gc_leader_ = true;
      std::vector<PendingApply*> batch(gc_queue_.begin(), gc_queue_.end());
      gc_queue_.clear();
      lk.unlock();
      ApplyGroup(batch);
      lk.lock();
      for (PendingApply* p : batch) p->done = true;
      gc_leader_ = false;
      gc_cv_.notify_all();
    }
    lk.unlock();
    if (me.result.ok() && !events.empty()) {
      std::lock_guard<std::mutex> lock(listener_mu_);
      if (listener_) listener_();
    }
    return std::move(me.result);
  }

  absl::StatusOr<std::pair<uint64_t, uint64_t>> EventDigest(const std::string& node_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Guard([&]() -> absl::StatusOr<std::pair<uint64_t, uint64_t>> {
      SQLite::Statement q(*db_,
                          "SELECT hash FROM events WHERE node_id = ? AND reversed = 0");
      q.bind(1, node_id);
      uint64_t sum = 0, count = 0;
      while (q.executeStep()) {
        sum += static_cast<uint64_t>(q.getColumn(0).getInt64());
        ++count;
      }
      return std::make_pair(sum, count);
    });
  }

  absl::StatusOr<std::vector<v1::FeedEntry>> ReadFeed(const std::string& node_id, uint64_t after,
                                                      uint32_t limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Guard([&]() -> absl::StatusOr<std::vector<v1::FeedEntry>> {
      auto& q = Stmt("SELECT payload FROM feed WHERE node_id = ? AND seq > ? ORDER BY seq LIMIT ?");
      q.bind(1, node_id);
      q.bind(2, static_cast<int64_t>(after));
      q.bind(3, static_cast<int64_t>(limit));
      return ReadMessages<v1::FeedEntry>(q, "corrupt feed entry", 0);
    });
  }

  // The stored feed mark is advisory (a reconnecting node's Hello names its own mark, and a
  // lower stored one only makes central resend entries the node skips), so acks are kept in
  // memory and written with the next write transaction, or at most once a second on their own:
  // a durable commit per ack cost central a quarter of its CPU under a stream of releases.
  absl::Status AckFeed(const std::string& node_id, uint64_t seq) override {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t& pending = pending_acks_[node_id];
    pending = std::max(pending, seq);
    if (std::chrono::steady_clock::now() - last_ack_flush_ < std::chrono::seconds(1)) {
      return absl::OkStatus();
    }
    return Guard([&]() -> absl::StatusOr<bool> {
             FlushAcksLocked();
             return true;
           })
        .status();
  }

  absl::Status AddException(const std::string& kind, const std::string& node_id,
                            const std::string& message, int64_t at_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Guard([&]() -> absl::StatusOr<bool> {
             // The same exception again (a refused node retrying) counts up the latest entry.
             SQLite::Statement again(
                 *db_,
                 "UPDATE exceptions SET count = count + 1, at_ms = ?4 WHERE id = (SELECT id FROM "
                 "exceptions WHERE node_id = ?2 AND kind = ?1 ORDER BY id DESC LIMIT 1) "
                 "AND message = ?3 AND resolved = 0");
             again.bind(1, kind);
             again.bind(2, node_id);
             again.bind(3, message);
             again.bind(4, at_ms);
             if (again.exec() > 0) return true;
             SQLite::Statement ins(*db_,
                                   "INSERT INTO exceptions(kind, node_id, message, at_ms, "
                                   "first_at_ms) VALUES (?, ?, ?, ?, ?)");
             ins.bind(1, kind);
             ins.bind(2, node_id);
             ins.bind(3, message);
             ins.bind(4, at_ms);
             ins.bind(5, at_ms);
             ins.exec();
             return true;
           })
        .status();
  }

  absl::StatusOr<v1::ListExceptionsResponse> ListExceptions(const std::string& node_id,
                                                            const std::string& kind) override {
    v1::ListExceptionsRequest r;
    r.set_node_id(node_id);
    r.set_kind(kind);
    r.set_include_resolved(true);
    return QueryExceptions(r);
  }

  absl::StatusOr<int64_t> Import(const std::string& kind, const std::string& text) override {
    auto r = ImportKind(kind, text);
    std::lock_guard<std::mutex> lock(mu_);
    master_cached_ = false;  // reloaded by the next order transaction
    return r;
  }

  absl::StatusOr<int64_t> ImportKind(const std::string& kind, const std::string& text) {
    if (kind == "channels") return ImportChannels(text);
    if (kind == "kits") return ImportKits(text);
    if (kind == "skus") {
      auto skus = csv::ParseSkus(text);
      if (!skus.ok()) return skus.status();
      return Write([&]() -> absl::StatusOr<int64_t> {
        std::vector<std::string> sites = AllSites();
        for (v1::Sku sku : *skus) {
          SQLite::Statement up(
              *db_,
              "INSERT INTO skus(code, gtin, name, unit, tracking, expiry_tracked, allow_negative, "
              "safety_stock, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) "
              "ON CONFLICT(code) DO UPDATE SET gtin = excluded.gtin, name = excluded.name, "
              "unit = excluded.unit, tracking = excluded.tracking, "
              "expiry_tracked = excluded.expiry_tracked, allow_negative = excluded.allow_negative, "
              "safety_stock = excluded.safety_stock, version = skus.version + 1 RETURNING version");
          up.bind(1, sku.code());
          up.bind(2, sku.gtin());
          up.bind(3, sku.name());
          up.bind(4, sku.unit());
          up.bind(5, static_cast<int>(sku.tracking()));
          up.bind(6, sku.expiry_tracked() ? 1 : 0);
          up.bind(7, sku.allow_negative() ? 1 : 0);
          up.bind(8, sku.safety_stock());
          up.executeStep();
          sku.set_version(up.getColumn(0).getInt64());
          v1::FeedEntry e;
          *e.mutable_sku() = sku;
          for (const auto& site : sites) AppendFeed(site, e);
        }
        return static_cast<int64_t>(skus->size());
      });
    }
    if (kind == "sites") {
      auto sites = csv::ParseSites(text);
      if (!sites.ok()) return sites.status();
      return Write([&]() -> absl::StatusOr<int64_t> {
        for (v1::Site site : *sites) {
          SQLite::Statement exists(*db_, "SELECT kind FROM sites WHERE id = ?");
          exists.bind(1, site.id());
          const bool fresh = !exists.executeStep();
          const bool kind_changed = !fresh && exists.getColumn(0).getString() != site.kind();
          SQLite::Statement up(*db_,
                               "INSERT INTO sites(id, name, kind, region, version) "
                               "VALUES (?, ?, ?, ?, 1) ON CONFLICT(id) DO UPDATE SET "
                               "name = excluded.name, kind = excluded.kind, "
                               "region = excluded.region, version = sites.version + 1 "
                               "RETURNING version");
          up.bind(1, site.id());
          up.bind(2, site.name());
          up.bind(3, site.kind());
          up.bind(4, site.region());
          up.executeStep();
          site.set_version(up.getColumn(0).getInt64());
          SQLite::Statement node(*db_, "INSERT OR IGNORE INTO nodes(node_id) VALUES (?)");
          node.bind(1, site.id());
          node.exec();
          v1::FeedEntry e;
          *e.mutable_site() = site;
          AppendFeed(site.id(), e);
          if (fresh || kind_changed) {  // its split policy may have changed with the kind
            v1::FeedEntry p;
            *p.mutable_rights_policy() =
                rights::EffectivePolicy(site, ExplicitPolicyLocked(site.id()));
            AppendFeed(site.id(), p);
          }
          if (fresh) {  // a new site gets every SKU
            SQLite::Statement q(*db_,
                                "SELECT code, gtin, name, unit, tracking, expiry_tracked, "
                                "allow_negative, safety_stock, version FROM skus ORDER BY code");
            while (q.executeStep()) {
              v1::FeedEntry s;
              auto* k = s.mutable_sku();
              k->set_code(q.getColumn(0).getString());
              k->set_gtin(q.getColumn(1).getString());
              k->set_name(q.getColumn(2).getString());
              k->set_unit(q.getColumn(3).getString());
              k->set_tracking(static_cast<v1::Tracking>(q.getColumn(4).getInt()));
              k->set_expiry_tracked(q.getColumn(5).getInt() != 0);
              k->set_allow_negative(q.getColumn(6).getInt() != 0);
              k->set_safety_stock(q.getColumn(7).getInt64());
              k->set_version(q.getColumn(8).getInt64());
              AppendFeed(site.id(), s);
            }
          }
        }
        return static_cast<int64_t>(sites->size());
      });
    }
    if (kind == "bins") {
      auto bins = csv::ParseBins(text, /*with_site=*/true);
      if (!bins.ok()) return bins.status();
      return Write([&]() -> absl::StatusOr<int64_t> {
        std::set<std::string> sites;
        for (const auto& s : AllSites()) sites.insert(s);
        for (const v1::Bin& b : *bins) {
          if (!sites.count(b.site())) {
            return absl::InvalidArgumentError(
                StrCat("nothing imported: bin '", b.code(), "' names unknown site '", b.site(),
                       "'"));
          }
        }
        for (v1::Bin bin : *bins) {
          SQLite::Statement up(*db_,
                               "INSERT INTO bins(site, code, zone, walk_order, version) "
                               "VALUES (?, ?, ?, ?, 1) ON CONFLICT(site, code) DO UPDATE SET "
                               "zone = excluded.zone, walk_order = excluded.walk_order, "
                               "version = bins.version + 1 RETURNING version");
          up.bind(1, bin.site());
          up.bind(2, bin.code());
          up.bind(3, bin.zone());
          up.bind(4, bin.walk_order());
          up.executeStep();
          bin.set_version(up.getColumn(0).getInt64());
          v1::FeedEntry e;
          *e.mutable_bin() = bin;
          AppendFeed(bin.site(), e);
        }
        return static_cast<int64_t>(bins->size());
      });
    }
    return absl::InvalidArgumentError(
        StrCat("unknown master data kind '", kind, "' (skus, sites, bins, channels, kits)"));
  }

  absl::StatusOr<v1::NetworkStockResponse> NetworkStock(const std::string& sku,
                                                        const std::string& site) override {
    if (sku.empty() && site.empty()) return absl::InvalidArgumentError("name a sku or a site");
    std::lock_guard<std::mutex> lock(mu_);
    return Guard([&]() -> absl::StatusOr<v1::NetworkStockResponse> {
      SQLite::Transaction snapshot(*db_);
      if (!site.empty()) {
        SQLite::Statement q(*db_, "SELECT 1 FROM sites WHERE id = ?");
        q.bind(1, site);
        if (!q.executeStep()) return absl::NotFoundError(StrCat("unknown site '", site, "'"));
      }
      if (!sku.empty()) {
        SQLite::Statement q(*db_, "SELECT 1 FROM skus WHERE code = ?");
        q.bind(1, sku);
        if (!q.executeStep()) return absl::NotFoundError(StrCat("unknown SKU '", sku, "'"));
      }
      std::map<std::pair<std::string, std::string>, v1::SiteSkuStock> rows;
      auto row = [&](const std::string& st, const std::string& k) -> v1::SiteSkuStock& {
        auto& r = rows[{st, k}];
        r.set_site(st);
        r.set_sku(k);
        return r;
      };
      SQLite::Statement q(*db_,
                          "SELECT site, sku, lot, on_hand FROM mirror_stock WHERE on_hand != 0 "
                          "AND (?1 = '' OR sku = ?1) AND (?2 = '' OR site = ?2) "
                          "ORDER BY site, sku, lot");
      q.bind(1, sku);
      q.bind(2, site);
      while (q.executeStep()) {
        auto& r = row(q.getColumn(0).getString(), q.getColumn(1).getString());
        r.set_on_hand(r.on_hand() + q.getColumn(3).getInt64());
        auto* lot = r.add_lots();
        lot->set_lot(q.getColumn(2).getString());
        lot->set_on_hand(q.getColumn(3).getInt64());
      }
      SQLite::Statement rq(*db_,
                           "SELECT site, sku, reserved FROM mirror_reserved WHERE reserved != 0 "
                           "AND (?1 = '' OR sku = ?1) AND (?2 = '' OR site = ?2)");
      rq.bind(1, sku);
      rq.bind(2, site);
      while (rq.executeStep()) {
        row(rq.getColumn(0).getString(), rq.getColumn(1).getString())
            .set_reserved(rq.getColumn(2).getInt64());
      }
      v1::NetworkStockResponse out;
      SQLite::Statement safety(*db_, "SELECT safety_stock FROM skus WHERE code = ?");
      for (auto& [key, r] : rows) {
        safety.bind(1, r.sku());
        r.set_safety_stock(safety.executeStep() ? safety.getColumn(0).getInt64() : 0);
        safety.reset();
        r.set_available(Available(r.on_hand(), r.reserved(), r.safety_stock()));
        out.set_total_on_hand(out.total_on_hand() + r.on_hand());
        out.set_total_available(out.total_available() + std::max<int64_t>(0, r.available()));
        *out.add_items() = std::move(r);
      }
      return out;
    });
  }

  absl::StatusOr<SiteMirror> Mirror(const std::string& site) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Guard([&]() -> absl::StatusOr<SiteMirror> {
      SiteMirror m;
      SQLite::Statement q(*db_,
                          "SELECT sku, lot, on_hand FROM mirror_stock WHERE site = ? "
                          "AND on_hand != 0");
      q.bind(1, site);
      while (q.executeStep()) {
        m.on_hand[{q.getColumn(0).getString(), q.getColumn(1).getString()}] =
            q.getColumn(2).getInt64();
      }
      SQLite::Statement r(*db_,
                          "SELECT sku, reserved FROM mirror_reserved WHERE site = ? "
                          "AND reserved != 0");
      r.bind(1, site);
      while (r.executeStep()) m.reserved[r.getColumn(0).getString()] = r.getColumn(1).getInt64();
      return m;
    });
  }

  // ---- OrderStore -----------------------------------------------------------------------------

  absl::Status RunBatch(const std::vector<TxFn*>& ops,
                        std::vector<absl::Status>* results) override {
    results->assign(ops.size(), absl::OkStatus());
    if (ops.empty()) return absl::OkStatus();
    std::lock_guard<std::mutex> lock(mu_);
    try {
      db::WriteTransaction wtx(*db_);
      Tx tx(this);
      const bool many = ops.size() > 1;
      for (size_t i = 0; i < ops.size(); ++i) {
        if (many) Stmt("SAVEPOINT op").exec();
        try {
          (*results)[i] = (*ops[i])(tx);
        } catch (const std::exception& e) {
          (*results)[i] = db::FromException(e);
        }
        if (many) {
          if (!(*results)[i].ok()) Stmt("ROLLBACK TO op").exec();
          Stmt("RELEASE op").exec();
        }
      }
      if (!many && !(*results)[0].ok()) return absl::OkStatus();  // rolled back by wtx
      wtx.Commit();
      return absl::OkStatus();
    } catch (const std::exception& e) {
      absl::Status s = db::FromException(e);
      results->assign(ops.size(), s);
      return s;
    }
  }

  absl::StatusOr<v1::Order> GetOrder(const std::string& order_id) override {
    return Read([&](Reader& r) -> absl::StatusOr<v1::Order> {
      auto& q = r.Stmt("SELECT body FROM orders WHERE order_id = ?");
      q.bind(1, order_id);
      if (!q.executeStep()) {
        q.reset();
        return absl::NotFoundError(StrCat("unknown order '", order_id, "'"));
      }
      v1::Order o;
      const bool ok = ParseBlob(q, 0, &o);
      q.reset();
      if (!ok) return absl::DataLossError(StrCat("corrupt order row ", order_id));
      return o;
    });
  }

  absl::StatusOr<v1::ListOrdersResponse> ListOrders(const v1::ListOrdersRequest& r) override {
    std::string sql = "SELECT body, order_id FROM orders o WHERE order_id > :after";
    if (r.status() != v1::ORDER_STATUS_UNSPECIFIED) sql += " AND status = :status";
    if (!r.channel().empty()) sql += " AND channel = :channel";
    if (!r.site().empty()) {
      sql += " AND EXISTS (SELECT 1 FROM fulfilments f WHERE f.site = :site AND "
             "f.order_id = o.order_id)";
    }
    sql += " ORDER BY order_id LIMIT :limit";
    return Read([&](Reader& rd) -> absl::StatusOr<v1::ListOrdersResponse> {
      SQLite::Statement& q = rd.Stmt(sql);
      q.bind(":after", r.after());
      if (r.status() != v1::ORDER_STATUS_UNSPECIFIED)
        q.bind(":status", static_cast<int>(r.status()));
      if (!r.channel().empty()) q.bind(":channel", r.channel());
      if (!r.site().empty()) q.bind(":site", r.site());
      q.bind(":limit", static_cast<int64_t>(r.limit()));
      v1::ListOrdersResponse out;
      while (q.executeStep()) {
        if (!ParseBlob(q, 0, out.add_orders())) {
          q.reset();
          return absl::DataLossError("corrupt order row");
        }
      }
      q.reset();
      if (out.orders_size() > 0 && static_cast<uint32_t>(out.orders_size()) == r.limit()) {
        out.set_next_after(out.orders(out.orders_size() - 1).order_id());
      }
      return out;
    });
  }

  absl::StatusOr<std::vector<std::string>> OrdersToRoute(const std::string& after,
                                                         uint32_t limit) override {
    return Read([&](Reader& r) -> absl::StatusOr<std::vector<std::string>> {
      auto& q = r.Stmt(
          "SELECT order_id FROM orders WHERE needs_routing = 1 AND order_id > ? "
          "ORDER BY order_id LIMIT ?");
      q.bind(1, after);
      q.bind(2, static_cast<int64_t>(limit));
      std::vector<std::string> out;
      while (q.executeStep()) out.push_back(q.getColumn(0).getString());
      q.reset();
      return out;
    });
  }

  absl::Status ScanKpiFacts(
      int64_t from_ms, int64_t to_ms, const std::function<void(const OrderKpiFacts&)>& on_order,
      const std::function<void(const FulfilmentKpiFacts&)>& on_fulfilment) override {
    return Read([&](Reader& r) -> absl::StatusOr<bool> {
             SQLite::Transaction snapshot(r.db);  // both scans see the same commits
             const int64_t to = to_ms == 0 ? INT64_MAX : to_ms;
             SQLite::Statement o(r.db,
                                 "SELECT channel, captured_ms, shipped_ms, units_requested, "
                                 "units_shipped FROM orders WHERE captured_ms >= ? AND "
                                 "captured_ms < ?");
             o.bind(1, from_ms);
             o.bind(2, to);
             OrderKpiFacts ok;
             while (o.executeStep()) {
               ok.channel = o.getColumn(0).getString();
               ok.captured_ms = o.getColumn(1).getInt64();
               ok.shipped_ms = o.getColumn(2).getInt64();
               ok.units_requested = o.getColumn(3).getInt64();
               ok.units_shipped = o.getColumn(4).getInt64();
               on_order(ok);
             }
             SQLite::Statement f(r.db,
                                 "SELECT site, captured_ms, shipped_ms, units_requested, "
                                 "units_shipped FROM fulfilments WHERE captured_ms >= ? AND "
                                 "captured_ms < ?");
             f.bind(1, from_ms);
             f.bind(2, to);
             FulfilmentKpiFacts fk;
             while (f.executeStep()) {
               fk.site = f.getColumn(0).getString();
               fk.captured_ms = f.getColumn(1).getInt64();
               fk.shipped_ms = f.getColumn(2).getInt64();
               fk.units_requested = f.getColumn(3).getInt64();
               fk.units_shipped = f.getColumn(4).getInt64();
               on_fulfilment(fk);
             }
             return true;
           })
        .status();
  }

  absl::StatusOr<v1::ListChannelsResponse> ListChannels() override {
    std::lock_guard<std::mutex> lock(mu_);
    return Guard([&]() -> absl::StatusOr<v1::ListChannelsResponse> {
      LoadMaster();
      v1::ListChannelsResponse out;
      for (const auto& [id, c] : channels_) *out.add_channels() = c;
      for (const auto& [kit, components] : kits_) {
        for (const auto& k : components) *out.add_kits() = k;
      }
      return out;
    });
  }

  // ---- Selling rights: reads --------------------------------------------------------------------

  absl::StatusOr<v1::ListRightsResponse> ListRights(const std::string& site,
                                                    const std::string& sku) override {
    return Read([&](Reader& r) -> absl::StatusOr<v1::ListRightsResponse> {
      auto& q = r.Stmt(
          "SELECT site, sku, central_rights, central_committed, granted_total, released_total, "
          "returned_total, consumed_total, written_off_total, grant_seq, release_seq, "
          "request_pending_units, request_at_ms, node_book FROM rights "
          "WHERE (?1 = '' OR site = ?1) AND (?2 = '' OR sku = ?2) ORDER BY site, sku");
      q.bind(1, site);
      q.bind(2, sku);
      v1::ListRightsResponse out;
      while (q.executeStep()) {
        RightsRow row;
        row.site = q.getColumn(0).getString();
        row.sku = q.getColumn(1).getString();
        ReadRightsCounters(q, 2, &row);
        v1::CentralRights* c = out.add_rights();
        c->set_site(row.site);
        c->set_sku(row.sku);
        c->set_central_rights(row.central_rights);
        c->set_central_committed(row.central_committed);
        c->set_available(row.Available());
        c->set_granted_total(row.granted_total);
        c->set_released_total(row.released_total);
        c->set_returned_total(row.returned_total);
        c->set_consumed_total(row.consumed_total);
        c->set_written_off_total(row.written_off_total);
        c->set_grant_seq(row.grant_seq);
        c->set_release_seq(row.release_seq);
        c->set_request_pending_units(row.request_pending_units);
        auto book = q.getColumn(13);
        if (!book.isNull() && book.getBytes() > 0 &&
            !c->mutable_node()->ParseFromArray(book.getBlob(), book.getBytes())) {
          q.reset();
          return absl::DataLossError(StrCat("corrupt node book of ", row.site, "/", row.sku));
        }
      }
      q.reset();
      return out;
    });
  }

  absl::StatusOr<v1::RightsHistoryResponse> RightsHistory(const std::string& site,
                                                          const std::string& sku,
                                                          uint32_t limit) override {
    std::string sql =
        "SELECT id, site, sku, hlc, at_ms, kind, units, seq, reference, note FROM rights_history "
        "WHERE 1";
    if (!site.empty()) sql += " AND site = :site";
    if (!sku.empty()) sql += " AND sku = :sku";
    sql += " ORDER BY id DESC LIMIT :limit";
    return Read([&](Reader& r) -> absl::StatusOr<v1::RightsHistoryResponse> {
      auto& q = r.Stmt(sql);
      if (!site.empty()) q.bind(":site", site);
      if (!sku.empty()) q.bind(":sku", sku);
      q.bind(":limit", static_cast<int64_t>(limit));
      v1::RightsHistoryResponse out;
      while (q.executeStep()) {
        v1::RightsHistoryEntry* h = out.add_entries();
        h->set_id(q.getColumn(0).getInt64());
        h->set_site(q.getColumn(1).getString());
        h->set_sku(q.getColumn(2).getString());
        h->set_hlc(q.getColumn(3).getInt64());
        h->set_at_ms(q.getColumn(4).getInt64());
        h->set_kind(q.getColumn(5).getString());
        h->set_units(q.getColumn(6).getInt64());
        h->set_seq(q.getColumn(7).getInt64());
        h->set_reference(q.getColumn(8).getString());
        h->set_note(q.getColumn(9).getString());
      }
      q.reset();
      return out;
    });
  }

  absl::StatusOr<v1::ListPoliciesResponse> ListPolicies() override {
    return Read([&](Reader& r) -> absl::StatusOr<v1::ListPoliciesResponse> {
      SQLite::Transaction snapshot(r.db);
      std::map<std::string, v1::RightsPolicy> explicit_policies;
      {
        auto& q = r.Stmt(StrCat("SELECT ", kPolicyColumns, " FROM rights_policies"));
        while (auto p = ReadPolicy(q)) explicit_policies[p->site()] = *p;
        q.reset();
      }
      v1::ListPoliciesResponse out;
      auto& q = r.Stmt("SELECT id, kind FROM sites ORDER BY id");
      while (q.executeStep()) {
        v1::Site site;
        site.set_id(q.getColumn(0).getString());
        site.set_kind(q.getColumn(1).getString());
        auto it = explicit_policies.find(site.id());
        *out.add_policies() = rights::EffectivePolicy(
            site, it == explicit_policies.end() ? std::nullopt
                                                : std::optional<v1::RightsPolicy>(it->second));
      }
      q.reset();
      return out;
    });
  }

  absl::StatusOr<std::map<std::string, int64_t>> AvailableBySku(
      const std::vector<std::string>& sites) override {
    const std::set<std::string> only(sites.begin(), sites.end());
    return Read([&](Reader& r) -> absl::StatusOr<std::map<std::string, int64_t>> {
      SQLite::Transaction snapshot(r.db);
      std::map<std::string, int64_t> out;
      auto& skus = r.Stmt("SELECT code FROM skus ORDER BY code");
      while (skus.executeStep()) out[skus.getColumn(0).getString()] = 0;
      skus.reset();
      auto& q = r.Stmt("SELECT site, sku, central_rights - central_committed FROM rights");
      while (q.executeStep()) {
        if (!only.empty() && !only.count(q.getColumn(0).getString())) continue;
        out[q.getColumn(1).getString()] += std::max<int64_t>(0, q.getColumn(2).getInt64());
      }
      q.reset();
      return out;
    });
  }

  absl::StatusOr<std::vector<v1::Transfer>> ListTransfers(v1::TransferStatus status,
                                                          const std::string& site,
                                                          uint32_t limit) override {
    return Read([&](Reader& r) -> absl::StatusOr<std::vector<v1::Transfer>> {
      auto& q = r.Stmt(
          "SELECT body FROM transfers WHERE (?1 = 0 OR status = ?1) AND (?2 = '' OR source = ?2 "
          "OR destination = ?2) ORDER BY n DESC LIMIT ?3");
      q.bind(1, static_cast<int>(status));
      q.bind(2, site);
      q.bind(3, limit == 0 ? int64_t{-1} : int64_t{limit});
      return ReadMessages<v1::Transfer>(q, "corrupt transfer row", 0);
    });
  }

  absl::StatusOr<v1::SerialRecord> GetSerial(const std::string& sku,
                                             const std::string& serial) override {
    return Read([&](Reader& r) -> absl::StatusOr<v1::SerialRecord> {
      auto row = ReadSerial(r.Stmt(kSerialSelect), sku, serial);
      if (!row) {
        return absl::NotFoundError(
            StrCat("serial '", serial, "' of SKU '", sku, "' is not known to central"));
      }
      return *row;
    });
  }

  absl::StatusOr<v1::Transfer> GetTransfer(const std::string& transfer_id) override {
    return Read([&](Reader& r) -> absl::StatusOr<v1::Transfer> {
      auto t = ReadTransfer(r.Stmt("SELECT body FROM transfers WHERE transfer_id = ?"),
                            transfer_id);
      if (!t) return absl::NotFoundError(StrCat("unknown transfer '", transfer_id, "'"));
      return *t;
    });
  }

  absl::StatusOr<std::vector<std::string>> VerifyRights() override {
    return Read([&](Reader& r) -> absl::StatusOr<std::vector<std::string>> {
      SQLite::Transaction snapshot(r.db);  // the book and the orders from the same commits
      std::map<std::pair<std::string, std::string>, RightsRow> rows;
      {
        auto& q = r.Stmt(
            "SELECT site, sku, central_rights, central_committed, granted_total, "
            "released_total, returned_total, consumed_total, written_off_total, grant_seq, "
            "release_seq, request_pending_units, request_at_ms FROM rights");
        while (q.executeStep()) {
          RightsRow row;
          row.site = q.getColumn(0).getString();
          row.sku = q.getColumn(1).getString();
          ReadRightsCounters(q, 2, &row);
          rows[{row.site, row.sku}] = row;
        }
        q.reset();
      }
      std::map<std::pair<std::string, std::string>, int64_t> open;
      {
        auto& q = r.Stmt(
            "SELECT body FROM orders WHERE order_id IN (SELECT order_id FROM fulfilments "
            "WHERE status NOT IN (6, 7, 8))");  // shipped, delivered, cancelled
        while (q.executeStep()) {
          v1::Order o;
          if (!ParseBlob(q, 0, &o)) {
            q.reset();
            return absl::DataLossError("corrupt order row");
          }
          if (!o.local_site().empty()) continue;
          for (const auto& f : o.fulfilments()) {
            if (!IsOpenStatus(f.status())) continue;
            for (const auto& l : f.lines()) {
              open[{f.site(), l.sku()}] +=
                  std::max<int64_t>(0, l.quantity() - l.shipped() - l.short_quantity());
            }
          }
        }
        q.reset();
      }
      {
        // Transfers central ordered and the source has not shipped or cancelled yet hold a
        // commitment of central's rights at the source (central/transfers.h).
        auto& q = r.Stmt(
            "SELECT body FROM transfers WHERE origin = 'central' AND status = 1");  // requested
        while (q.executeStep()) {
          v1::Transfer t;
          if (!ParseBlob(q, 0, &t)) {
            q.reset();
            return absl::DataLossError("corrupt transfer row");
          }
          for (const auto& l : t.lines()) open[{t.source(), l.sku()}] += l.quantity();
        }
        q.reset();
      }
      std::vector<std::string> out;
      for (const auto& [key, units] : open) {
        if (units != 0 && !rows.count(key)) {
          out.push_back(StrCat(key.first, "/", key.second, ": central_committed 0 (no rights row)",
                               " != ", units, " open units in central's fulfilments there"));
        }
      }
      for (const auto& [key, row] : rows) {
        const std::string at = StrCat(key.first, "/", key.second, ": ");
        const int64_t expected = row.granted_total - row.released_total - row.returned_total -
                                 row.consumed_total - row.written_off_total;
        if (row.central_rights != expected) {
          out.push_back(StrCat(at, "central_rights ", row.central_rights, " != granted ",
                               row.granted_total, " - released ", row.released_total,
                               " - returned ", row.returned_total, " - consumed ",
                               row.consumed_total, " - written_off ", row.written_off_total, " = ",
                               expected));
        }
        auto it = open.find(key);
        const int64_t units = it == open.end() ? 0 : it->second;
        if (row.central_committed != units) {
          out.push_back(StrCat(at, "central_committed ", row.central_committed, " != ", units,
                               " open units in central's fulfilments there"));
        }
        if (row.central_committed > row.central_rights) {
          out.push_back(StrCat(at, "central_committed ", row.central_committed,
                               " > central_rights ", row.central_rights));
        }
        const std::pair<const char*, int64_t> counters[] = {
            {"central_rights", row.central_rights},
            {"central_committed", row.central_committed},
            {"granted_total", row.granted_total},
            {"released_total", row.released_total},
            {"returned_total", row.returned_total},
            {"consumed_total", row.consumed_total},
            {"written_off_total", row.written_off_total},
            {"request_pending_units", row.request_pending_units}};
        for (const auto& [name, value] : counters) {
          if (value < 0) out.push_back(StrCat(at, name, " is negative: ", value));
        }
      }
      return out;
    });
  }

  absl::StatusOr<v1::ListExceptionsResponse> QueryExceptions(
      const v1::ListExceptionsRequest& r) override {
    std::string sql = StrCat("SELECT ", kExceptionColumns, " FROM exceptions WHERE 1");
    std::vector<std::pair<const char*, const std::string*>> binds;
    auto filter = [&](const char* column, const char* name, const std::string& value) {
      if (value.empty()) return;
      absl::StrAppend(&sql, " AND ", column, " = ", name);
      binds.emplace_back(name, &value);
    };
    filter("node_id", ":node", r.node_id());
    filter("kind", ":kind", r.kind());
    filter("order_id", ":order", r.order_id());
    filter("sku", ":sku", r.sku());
    filter("assignee", ":assignee", r.assignee());
    if (!r.include_resolved()) sql += " AND resolved = 0";
    sql += " ORDER BY id DESC LIMIT 1000";
    return Read([&](Reader& rd) -> absl::StatusOr<v1::ListExceptionsResponse> {
      SQLite::Statement& q = rd.Stmt(sql);
      for (const auto& [name, value] : binds) q.bind(name, *value);
      v1::ListExceptionsResponse out;
      while (q.executeStep()) ReadException(q, out.add_exceptions());
      q.reset();
      return out;
    });
  }

  absl::StatusOr<v1::ExceptionEntry> AssignException(uint64_t id,
                                                     const std::string& assignee) override {
    return Write([&]() -> absl::StatusOr<v1::ExceptionEntry> {
      auto e = ExceptionLocked(id);
      if (!e.ok()) return e;
      if (e->resolved()) {
        return absl::FailedPreconditionError(StrCat("exception ", id, " is resolved"));
      }
      SQLite::Statement up(*db_, "UPDATE exceptions SET assignee = ? WHERE id = ?");
      up.bind(1, assignee);
      up.bind(2, static_cast<int64_t>(id));
      up.exec();
      e->set_assignee(assignee);
      return e;
    });
  }

  absl::StatusOr<v1::ExceptionEntry> ResolveException(uint64_t id, const std::string& note,
                                                      int64_t at_ms) override {
    return Write([&]() -> absl::StatusOr<v1::ExceptionEntry> {
      auto e = ExceptionLocked(id);
      if (!e.ok()) return e;
      if (e->resolved()) {
        return absl::FailedPreconditionError(StrCat("exception ", id, " is already resolved"));
      }
      SQLite::Statement up(*db_,
                           "UPDATE exceptions SET resolved = 1, resolution_note = ?, "
                           "resolved_at_ms = ? WHERE id = ?");
      up.bind(1, note);
      up.bind(2, at_ms);
      up.bind(3, static_cast<int64_t>(id));
      up.exec();
      e->set_resolved(true);
      e->set_resolution_note(note);
      e->set_resolved_at_ms(at_ms);
      return e;
    });
  }

  void SetEventsAppliedListener(std::function<void()> listener) override {
    std::lock_guard<std::mutex> lock(listener_mu_);
    listener_ = std::move(listener);
  }

 private:
  // ---- Reads of committed order data -----------------------------------------------------------

  // The connection order reads use, with its own statement cache. One reader at a time.
  struct Reader {
    SQLite::Database& db;
    std::map<std::string, std::unique_ptr<SQLite::Statement>>* cache;
    SQLite::Statement& Stmt(const std::string& sql) {
      auto& slot = (*cache)[sql];
      if (!slot) slot = std::make_unique<SQLite::Statement>(db, sql);
      slot->tryReset();
      slot->clearBindings();
      return *slot;
    }
  };
  // Runs f(Reader&) on the read connection (under read_mu_), or on the main one (under mu_) when
  // there is none; exceptions become a Status.
  template <typename F>
  auto Read(F&& f) -> decltype(f(std::declval<Reader&>())) {
    if (read_db_) {
      std::lock_guard<std::mutex> lock(read_mu_);
      Reader r{*read_db_, &read_stmts_};
      return Guard([&] { return f(r); });
    }
    std::lock_guard<std::mutex> lock(mu_);
    Reader r{*db_, &dyn_stmts_};
    return Guard([&] { return f(r); });
  }

  // ---- Orders: the transaction view and helpers (callers hold mu_) ---------------------------

  class Tx : public OrderTx {
   public:
    explicit Tx(SqliteStore* s) : s_(s) {}

    std::optional<v1::Channel> FindChannel(const std::string& id) override {
      s_->LoadMaster();
      auto it = s_->channels_.find(id);
      if (it == s_->channels_.end()) return std::nullopt;
      return it->second;
    }
    std::vector<v1::KitComponent> KitComponents(const std::string& sku) override {
      s_->LoadMaster();
      auto it = s_->kits_.find(sku);
      if (it == s_->kits_.end()) return {};
      return it->second;
    }
    std::optional<int64_t> SafetyStock(const std::string& sku) override {
      auto& q = s_->Stmt("SELECT safety_stock FROM skus WHERE code = ?");
      q.bind(1, sku);
      std::optional<int64_t> out;
      if (q.executeStep()) out = q.getColumn(0).getInt64();
      q.reset();
      return out;
    }
    const std::vector<v1::Site>& Sites() override {
      s_->LoadMaster();
      return s_->sites_;
    }
    std::map<std::string, routing::SiteRights> RightsOf(const std::string& sku) override {
      std::map<std::string, routing::SiteRights> out;
      auto& q =
          s_->Stmt("SELECT site, central_rights, central_committed FROM rights WHERE sku = ?");
      q.bind(1, sku);
      while (q.executeStep()) {
        routing::SiteRights& r = out[q.getColumn(0).getString()];
        r.central_rights = q.getColumn(1).getInt64();
        r.central_committed = q.getColumn(2).getInt64();
      }
      q.reset();
      return out;
    }
    std::map<std::string, int64_t> MirrorSellable(const std::string& sku) override {
      std::map<std::string, int64_t> out;
      const int64_t safety = SafetyStock(sku).value_or(0);
      auto& on_hand = s_->Stmt(
          "SELECT site, SUM(on_hand) FROM mirror_stock WHERE sku = ? GROUP BY site");
      on_hand.bind(1, sku);
      while (on_hand.executeStep()) {
        out[on_hand.getColumn(0).getString()] = on_hand.getColumn(1).getInt64() - safety;
      }
      on_hand.reset();
      auto& reserved = s_->Stmt("SELECT site, reserved FROM mirror_reserved WHERE sku = ?");
      reserved.bind(1, sku);
      while (reserved.executeStep()) {
        auto it = out.find(reserved.getColumn(0).getString());
        if (it != out.end()) it->second -= reserved.getColumn(1).getInt64();
      }
      reserved.reset();
      return out;
    }
    std::optional<std::pair<std::string, uint64_t>> FindExternal(
        const std::string& channel, const std::string& external_id) override {
      auto& q = s_->Stmt(
          "SELECT order_id, fingerprint FROM orders WHERE channel = ? AND external_id = ?");
      q.bind(1, channel);
      q.bind(2, external_id);
      std::optional<std::pair<std::string, uint64_t>> out;
      if (q.executeStep()) {
        out.emplace(q.getColumn(0).getString(), static_cast<uint64_t>(q.getColumn(1).getInt64()));
      }
      q.reset();
      return out;
    }
    uint64_t NextOrderNumber() override {
      auto& q = s_->Stmt(
          "UPDATE counters SET value = value + 1 WHERE name = 'order' RETURNING value");
      q.executeStep();
      const uint64_t n = q.getColumn(0).getInt64();
      q.reset();
      return n;
    }
    std::optional<v1::Order> LoadOrder(const std::string& order_id) override {
      return s_->LoadOrderLocked(order_id);
    }
    std::optional<std::string> OrderOfFulfilment(const std::string& fulfilment_id) override {
      auto& q = s_->Stmt("SELECT order_id FROM fulfilments WHERE fulfilment_id = ?");
      q.bind(1, fulfilment_id);
      std::optional<std::string> out;
      if (q.executeStep()) out = q.getColumn(0).getString();
      q.reset();
      return out;
    }
    void SaveOrder(const v1::Order& o, const v1::Order* before, uint64_t fingerprint,
                   bool needs_routing) override {
      s_->SaveOrderLocked(o, before, fingerprint, needs_routing);
    }
    void AppendFeed(const std::string& site, v1::FeedEntry entry) override {
      s_->AppendFeed(site, std::move(entry));
    }
    void AddException(const v1::ExceptionEntry& e) override {
      auto& q = s_->Stmt(
          "INSERT INTO exceptions(kind, node_id, message, at_ms, first_at_ms, order_id, "
          "fulfilment_id, sku) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
      q.bind(1, e.kind());
      q.bind(2, e.node_id());
      q.bind(3, e.message());
      q.bind(4, e.at_ms());
      q.bind(5, e.at_ms());
      q.bind(6, e.order_id());
      q.bind(7, e.fulfilment_id());
      q.bind(8, e.sku());
      q.exec();
      q.reset();
    }
    std::vector<std::pair<std::string, std::string>> OpenFulfilmentsWith(
        const std::string& site, const std::string& sku) override {
      std::vector<std::string> order_ids;
      {
        auto& q = s_->Stmt(
            "SELECT DISTINCT order_id FROM fulfilments WHERE site = ? AND status NOT IN "
            "(6, 7, 8) ORDER BY order_id");  // shipped, delivered, cancelled
        q.bind(1, site);
        while (q.executeStep()) order_ids.push_back(q.getColumn(0).getString());
        q.reset();
      }
      std::vector<std::pair<std::string, std::string>> out;
      for (const std::string& id : order_ids) {
        std::optional<v1::Order> o = s_->LoadOrderLocked(id);
        if (!o || !o->local_site().empty()) continue;
        for (const auto& f : o->fulfilments()) {
          if (f.site() != site || !IsOpenStatus(f.status())) continue;
          for (const auto& l : f.lines()) {
            if (l.sku() != sku) continue;
            out.emplace_back(id, f.fulfilment_id());
            break;
          }
        }
      }
      return out;
    }
    RightsRow LoadRights(const std::string& site, const std::string& sku) override {
      auto& q = s_->Stmt(
          "SELECT central_rights, central_committed, granted_total, released_total, "
          "returned_total, consumed_total, written_off_total, grant_seq, release_seq, "
          "request_pending_units, request_at_ms FROM rights WHERE site = ? AND sku = ?");
      q.bind(1, site);
      q.bind(2, sku);
      RightsRow r;
      r.site = site;
      r.sku = sku;
      if (q.executeStep()) ReadRightsCounters(q, 0, &r);
      q.reset();
      return r;
    }
    void SaveRights(const RightsRow& r, const v1::RightsBook* node_book) override {
      std::string book;
      if (node_book) node_book->SerializeToString(&book);
      auto& q = node_book
                    ? s_->Stmt(
                          "INSERT OR REPLACE INTO rights(site, sku, central_rights, "
                          "central_committed, granted_total, released_total, returned_total, "
                          "consumed_total, written_off_total, grant_seq, release_seq, "
                          "request_pending_units, request_at_ms, node_book) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
                    : s_->Stmt(
                          "INSERT INTO rights(site, sku, central_rights, central_committed, "
                          "granted_total, released_total, returned_total, consumed_total, "
                          "written_off_total, grant_seq, release_seq, request_pending_units, "
                          "request_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                          "ON CONFLICT(site, sku) DO UPDATE SET "
                          "central_rights = excluded.central_rights, "
                          "central_committed = excluded.central_committed, "
                          "granted_total = excluded.granted_total, "
                          "released_total = excluded.released_total, "
                          "returned_total = excluded.returned_total, "
                          "consumed_total = excluded.consumed_total, "
                          "written_off_total = excluded.written_off_total, "
                          "grant_seq = excluded.grant_seq, release_seq = excluded.release_seq, "
                          "request_pending_units = excluded.request_pending_units, "
                          "request_at_ms = excluded.request_at_ms");
      q.bind(1, r.site);
      q.bind(2, r.sku);
      q.bind(3, r.central_rights);
      q.bind(4, r.central_committed);
      q.bind(5, r.granted_total);
      q.bind(6, r.released_total);
      q.bind(7, r.returned_total);
      q.bind(8, r.consumed_total);
      q.bind(9, r.written_off_total);
      q.bind(10, static_cast<int64_t>(r.grant_seq));
      q.bind(11, static_cast<int64_t>(r.release_seq));
      q.bind(12, r.request_pending_units);
      q.bind(13, r.request_at_ms);
      if (node_book) q.bindNoCopy(14, book.data(), static_cast<int>(book.size()));
      q.exec();
      q.reset();
    }
    void AddRightsHistory(const v1::RightsHistoryEntry& h) override {
      auto& q = s_->Stmt(
          "INSERT INTO rights_history(site, sku, hlc, at_ms, kind, units, seq, reference, note) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
      q.bind(1, h.site());
      q.bind(2, h.sku());
      q.bind(3, static_cast<int64_t>(h.hlc()));
      q.bind(4, h.at_ms());
      q.bind(5, h.kind());
      q.bind(6, h.units());
      q.bind(7, static_cast<int64_t>(h.seq()));
      q.bind(8, h.reference());
      q.bind(9, h.note());
      q.exec();
      q.reset();
    }
    std::optional<v1::RightsPolicy> ExplicitPolicy(const std::string& site) override {
      return s_->ExplicitPolicyLocked(site);
    }
    v1::RightsPolicy SavePolicy(const v1::RightsPolicy& p) override {
      auto& q = s_->Stmt(
          "INSERT INTO rights_policies(site, store_share_percent, store_share_units, "
          "floor_units, refill_below, version) VALUES (?, ?, ?, ?, ?, 1) "
          "ON CONFLICT(site) DO UPDATE SET store_share_percent = excluded.store_share_percent, "
          "store_share_units = excluded.store_share_units, floor_units = excluded.floor_units, "
          "refill_below = excluded.refill_below, version = rights_policies.version + 1 "
          "RETURNING version");
      q.bind(1, p.site());
      q.bind(2, p.store_share_percent());
      q.bind(3, p.store_share_units());
      q.bind(4, p.floor_units());
      q.bind(5, p.refill_below());
      q.executeStep();
      v1::RightsPolicy out = p;
      out.set_version(q.getColumn(0).getInt64());
      out.set_is_default(false);
      q.reset();
      return out;
    }

    // Transfers between sites (central/transfers.h).
    std::optional<v1::Transfer> LoadTransfer(const std::string& id) override {
      return s_->ReadTransfer(s_->Stmt("SELECT body FROM transfers WHERE transfer_id = ?"), id);
    }
    std::optional<v1::Transfer> TransferByRequest(const std::string& request_id) override {
      return s_->ReadTransfer(
          s_->Stmt("SELECT body FROM transfers WHERE request_id = ? AND request_id <> ''"),
          request_id);
    }
    uint64_t NextTransferNumber() override {
      auto& q = s_->Stmt("SELECT COUNT(*) FROM transfers WHERE origin = 'central'");
      q.executeStep();
      const uint64_t n = q.getColumn(0).getInt64() + 1;
      q.reset();
      return n;
    }
    void SaveTransfer(const v1::Transfer& t, const std::string& request_id) override {
      std::string body;
      t.SerializeToString(&body);
      auto& q = s_->Stmt(
          "INSERT INTO transfers(transfer_id, n, source, destination, status, origin, version, "
          "request_id, body) VALUES (?1, (SELECT COALESCE(MAX(n), 0) + 1 FROM transfers), ?2, "
          "?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(transfer_id) DO UPDATE SET "
          "status = excluded.status, version = excluded.version, body = excluded.body");
      q.bind(1, t.transfer_id());
      q.bind(2, t.source());
      q.bind(3, t.destination());
      q.bind(4, static_cast<int>(t.status()));
      q.bind(5, t.origin());
      q.bind(6, static_cast<int64_t>(t.version()));
      q.bind(7, request_id);
      q.bind(8, body.data(), static_cast<int>(body.size()));
      q.exec();
      q.reset();
    }

    // Returns (central/returns.h).
    uint64_t NextReturnNumber() override {
      auto& q = s_->Stmt("SELECT COALESCE(MAX(rma_no), 0) + 1 FROM returns");
      q.executeStep();
      const uint64_t n = q.getColumn(0).getInt64();
      q.reset();
      return n;
    }
    std::optional<v1::Return> LoadReturn(const std::string& id) override {
      auto& q = s_->Stmt("SELECT body FROM returns WHERE return_id = ?");
      q.bind(1, id);
      std::optional<v1::Return> out;
      if (q.executeStep()) {
        out.emplace();
        if (!ParseBlob(q, 0, &*out)) out.reset();
      }
      q.reset();
      return out;
    }
    void SaveReturn(const v1::Return& r) override {
      std::string body;
      r.SerializeToString(&body);
      int64_t rma_no = 0;
      if (r.authorised() && r.return_id().size() > 1 && r.return_id()[0] == 'R') {
        rma_no = std::atoll(r.return_id().c_str() + 1);
      }
      auto& q = s_->Stmt(
          "INSERT INTO returns(return_id, rma_no, order_id, site, status, created_ms, body) "
          "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(return_id) DO UPDATE SET "
          "site = excluded.site, status = excluded.status, body = excluded.body");
      q.bind(1, r.return_id());
      q.bind(2, rma_no);
      q.bind(3, r.order_id());
      q.bind(4, r.site());
      q.bind(5, static_cast<int>(r.status()));
      q.bind(6, r.created_ms());
      q.bind(7, body.data(), static_cast<int>(body.size()));
      q.exec();
      q.reset();
    }
    std::vector<v1::Return> FindReturns(const std::string& order_id, const std::string& site,
                                        v1::ReturnStatus status, uint32_t limit) override {
      auto& q = s_->Stmt(
          "SELECT body FROM returns WHERE (?1 = '' OR order_id = ?1) AND (?2 = '' OR site = ?2) "
          "AND (?3 = 0 OR status = ?3) ORDER BY created_ms DESC, return_id DESC LIMIT ?4");
      q.bind(1, order_id);
      q.bind(2, site);
      q.bind(3, static_cast<int>(status));
      q.bind(4, limit == 0 ? int64_t{-1} : static_cast<int64_t>(limit));
      std::vector<v1::Return> out;
      while (q.executeStep()) {
        if (!ParseBlob(q, 0, &out.emplace_back())) out.pop_back();
      }
      q.reset();
      return out;
    }
    void AddShippedSerial(const std::string& site, const std::string& reference,
                          const std::string& sku, const std::string& serial) override {
      auto& q = s_->Stmt(
          "INSERT INTO shipped_serials(site, reference, sku, serial) VALUES (?, ?, ?, ?) "
          "ON CONFLICT DO NOTHING");
      q.bind(1, site);
      q.bind(2, reference);
      q.bind(3, sku);
      q.bind(4, serial);
      q.exec();
      q.reset();
    }
    std::vector<std::string> ShippedSerials(const std::string& site, const std::string& reference,
                                            const std::string& sku) override {
      auto& q = s_->Stmt(
          "SELECT serial FROM shipped_serials WHERE site = ? AND reference = ? AND sku = ?");
      q.bind(1, site);
      q.bind(2, reference);
      q.bind(3, sku);
      std::vector<std::string> out;
      while (q.executeStep()) out.push_back(q.getColumn(0).getString());
      q.reset();
      return out;
    }
    std::optional<v1::SerialRecord> LoadSerial(const std::string& sku,
                                               const std::string& serial) override {
      return ReadSerial(s_->Stmt(kSerialSelect), sku, serial);
    }
    void SaveSerial(const v1::SerialRecord& r) override {
      auto& q = s_->Stmt(
          "INSERT OR REPLACE INTO serials(sku, serial, state, site, reference, updated_hlc, "
          "shipped_site, shipped_reference) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
      q.bind(1, r.sku());
      q.bind(2, r.serial());
      q.bind(3, r.state());
      q.bind(4, r.site());
      q.bind(5, r.reference());
      q.bind(6, static_cast<int64_t>(r.updated_hlc()));
      q.bind(7, r.shipped_site());
      q.bind(8, r.shipped_reference());
      q.exec();
      q.reset();
    }

   private:
    SqliteStore* s_;
  };

  static constexpr const char* kSerialSelect =
      "SELECT state, site, reference, updated_hlc, shipped_site, shipped_reference FROM serials "
      "WHERE sku = ? AND serial = ?";
  // The (sku, serial) row kSerialSelect finds, if any; resets q.
  static std::optional<v1::SerialRecord> ReadSerial(SQLite::Statement& q, const std::string& sku,
                                                    const std::string& serial) {
    q.bind(1, sku);
    q.bind(2, serial);
    std::optional<v1::SerialRecord> out;
    if (q.executeStep()) {
      v1::SerialRecord& r = out.emplace();
      r.set_sku(sku);
      r.set_serial(serial);
      r.set_state(q.getColumn(0).getString());
      r.set_site(q.getColumn(1).getString());
      r.set_reference(q.getColumn(2).getString());
      r.set_updated_hlc(static_cast<uint64_t>(q.getColumn(3).getInt64()));
      r.set_shipped_site(q.getColumn(4).getString());
      r.set_shipped_reference(q.getColumn(5).getString());
    }
    q.reset();
    return out;
  }

  // The transfer q (one bound parameter: key) finds, if any; resets q.
  static std::optional<v1::Transfer> ReadTransfer(SQLite::Statement& q, const std::string& key) {
    q.bind(1, key);
    std::optional<v1::Transfer> out;
    if (q.executeStep()) {
      v1::Transfer t;
      if (!ParseBlob(q, 0, &t)) {
        q.reset();
        throw std::runtime_error("corrupt transfer row " + key);
      }
      out = std::move(t);
    }
    q.reset();
    return out;
  }

  static bool IsOpenStatus(v1::FulfilmentStatus s) {
    return s != v1::FULFILMENT_SHIPPED && s != v1::FULFILMENT_DELIVERED &&
           s != v1::FULFILMENT_CANCELLED;
  }
  // Columns central_rights .. request_at_ms (11 of them) from column `first` on.
  static void ReadRightsCounters(SQLite::Statement& q, int first, RightsRow* r) {
    r->central_rights = q.getColumn(first + 0).getInt64();
    r->central_committed = q.getColumn(first + 1).getInt64();
    r->granted_total = q.getColumn(first + 2).getInt64();
    r->released_total = q.getColumn(first + 3).getInt64();
    r->returned_total = q.getColumn(first + 4).getInt64();
    r->consumed_total = q.getColumn(first + 5).getInt64();
    r->written_off_total = q.getColumn(first + 6).getInt64();
    r->grant_seq = q.getColumn(first + 7).getInt64();
    r->release_seq = q.getColumn(first + 8).getInt64();
    r->request_pending_units = q.getColumn(first + 9).getInt64();
    r->request_at_ms = q.getColumn(first + 10).getInt64();
  }
  // Steps q (selecting kPolicyColumns) once: the next policy, or nullopt at the end. The caller
  // holds the lock of q's connection.
  static std::optional<v1::RightsPolicy> ReadPolicy(SQLite::Statement& q) {
    if (!q.executeStep()) return std::nullopt;
    v1::RightsPolicy p;
    p.set_site(q.getColumn(0).getString());
    p.set_store_share_percent(q.getColumn(1).getInt());
    p.set_store_share_units(q.getColumn(2).getInt64());
    p.set_floor_units(q.getColumn(3).getInt64());
    p.set_refill_below(q.getColumn(4).getInt64());
    p.set_version(q.getColumn(5).getInt64());
    return p;
  }
  static constexpr const char* kPolicyColumns =
      "site, store_share_percent, store_share_units, floor_units, refill_below, version";
  // The site's explicit policy, on the write connection. Requires mu_.
  std::optional<v1::RightsPolicy> ExplicitPolicyLocked(const std::string& site) {
    auto& q = Stmt(
        "SELECT site, store_share_percent, store_share_units, floor_units, refill_below, "
        "version FROM rights_policies WHERE site = ?");
    q.bind(1, site);
    auto p = ReadPolicy(q);
    q.reset();
    return p;
  }

  std::optional<v1::Order> LoadOrderLocked(const std::string& order_id) {
    auto& q = Stmt("SELECT body FROM orders WHERE order_id = ?");
    q.bind(1, order_id);
    if (!q.executeStep()) {
      q.reset();
      return std::nullopt;
    }
    v1::Order o;
    const bool ok = ParseBlob(q, 0, &o);
    q.reset();
    if (!ok) throw std::runtime_error(StrCat("corrupt order row ", order_id));
    return o;
  }

  void SaveOrderLocked(const v1::Order& o, const v1::Order* before, uint64_t fingerprint,
                       bool needs_routing) {
    std::string body;
    o.SerializeToString(&body);
    const OrderKpiFacts kpi = KpiFactsOf(o);
    if (!before) {
      auto& q = Stmt(
          "INSERT INTO orders(order_id, channel, external_id, fingerprint, status, captured_ms, "
          "needs_routing, shipped_ms, units_requested, units_shipped, body) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      q.bind(1, o.order_id());
      q.bind(2, o.channel());
      q.bind(3, o.external_id());
      q.bind(4, static_cast<int64_t>(fingerprint));
      q.bind(5, static_cast<int>(o.status()));
      q.bind(6, o.captured_ms());
      q.bind(7, needs_routing ? 1 : 0);
      q.bind(8, kpi.shipped_ms);
      q.bind(9, kpi.units_requested);
      q.bind(10, kpi.units_shipped);
      q.bindNoCopy(11, body.data(), static_cast<int>(body.size()));
      q.exec();
      q.reset();
    } else {
      auto& q = Stmt(
          "UPDATE orders SET status = ?, needs_routing = ?, shipped_ms = ?, units_requested = ?, "
          "units_shipped = ?, body = ? WHERE order_id = ?");
      q.bind(1, static_cast<int>(o.status()));
      q.bind(2, needs_routing ? 1 : 0);
      q.bind(3, kpi.shipped_ms);
      q.bind(4, kpi.units_requested);
      q.bind(5, kpi.units_shipped);
      q.bindNoCopy(6, body.data(), static_cast<int>(body.size()));
      q.bind(7, o.order_id());
      q.exec();
      q.reset();
    }
    // Fulfilment rows: written when new or when their status or KPI facts changed.
    auto same = [](const FulfilmentKpiFacts& a, const FulfilmentKpiFacts& b) {
      return a.shipped_ms == b.shipped_ms && a.units_requested == b.units_requested &&
             a.units_shipped == b.units_shipped;
    };
    std::map<std::string, std::pair<int, FulfilmentKpiFacts>> old;
    if (before) {
      for (const auto& f : before->fulfilments()) {
        old[f.fulfilment_id()] = {f.status(), KpiFactsOf(*before, f)};
      }
    }
    for (const auto& f : o.fulfilments()) {
      const FulfilmentKpiFacts fk = KpiFactsOf(o, f);
      auto it = old.find(f.fulfilment_id());
      if (it != old.end() && it->second.first == f.status() && same(it->second.second, fk)) {
        continue;
      }
      auto& q = Stmt(
          "INSERT INTO fulfilments(fulfilment_id, order_id, site, status, captured_ms, "
          "shipped_ms, units_requested, units_shipped) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
          "ON CONFLICT(fulfilment_id) DO UPDATE SET status = excluded.status, "
          "shipped_ms = excluded.shipped_ms, units_requested = excluded.units_requested, "
          "units_shipped = excluded.units_shipped");
      q.bind(1, f.fulfilment_id());
      q.bind(2, o.order_id());
      q.bind(3, f.site());
      q.bind(4, static_cast<int>(f.status()));
      q.bind(5, fk.captured_ms);
      q.bind(6, fk.shipped_ms);
      q.bind(7, fk.units_requested);
      q.bind(8, fk.units_shipped);
      q.exec();
      q.reset();
    }
  }

  // Channels, kits and sites in memory; reloaded after every import.
  void LoadMaster() {
    if (master_cached_) return;
    channels_.clear();
    kits_.clear();
    sites_.clear();
    SQLite::Statement c(*db_,
                        "SELECT id, name, site_priority, allow_split, review_above_cents, version, "
                        "listing_buffer FROM channels ORDER BY id");
    while (c.executeStep()) {
      v1::Channel ch;
      ch.set_id(c.getColumn(0).getString());
      ch.set_name(c.getColumn(1).getString());
      for (absl::string_view site :
           absl::StrSplit(c.getColumn(2).getString(), '|', absl::SkipEmpty())) {
        ch.add_site_priority(std::string(site));
      }
      ch.set_allow_split(c.getColumn(3).getInt() != 0);
      ch.set_review_above_cents(c.getColumn(4).getInt64());
      ch.set_version(c.getColumn(5).getInt64());
      ch.set_listing_buffer(c.getColumn(6).getInt64());
      channels_[ch.id()] = std::move(ch);
    }
    SQLite::Statement k(*db_,
                        "SELECT kit_sku, component_sku, quantity FROM kits "
                        "ORDER BY kit_sku, position");
    while (k.executeStep()) {
      v1::KitComponent kc;
      kc.set_kit_sku(k.getColumn(0).getString());
      kc.set_component_sku(k.getColumn(1).getString());
      kc.set_quantity(k.getColumn(2).getInt64());
      kits_[kc.kit_sku()].push_back(std::move(kc));
    }
    SQLite::Statement s(*db_, "SELECT id, name, kind, region, version FROM sites ORDER BY id");
    while (s.executeStep()) {
      v1::Site site;
      site.set_id(s.getColumn(0).getString());
      site.set_name(s.getColumn(1).getString());
      site.set_kind(s.getColumn(2).getString());
      site.set_region(s.getColumn(3).getString());
      site.set_version(s.getColumn(4).getInt64());
      sites_.push_back(std::move(site));
    }
    master_cached_ = true;
  }

  absl::StatusOr<int64_t> ImportChannels(const std::string& text) {
    auto rows = ParseChannels(text);
    if (!rows.ok()) return rows.status();
    return Write([&]() -> absl::StatusOr<int64_t> {
      std::set<std::string> sites;
      for (const auto& s : AllSites()) sites.insert(s);
      std::vector<std::string> errors;
      for (const auto& row : *rows) {
        for (const auto& site : row.value.site_priority()) {
          if (!sites.count(site) && errors.size() < 20) {
            errors.push_back(StrCat("line ", row.line, ": channel '", row.value.id(),
                                    "' names unknown site '", site, "'"));
          }
        }
      }
      if (!errors.empty()) {
        return absl::InvalidArgumentError(
            StrCat("nothing imported: ", absl::StrJoin(errors, "; ")));
      }
      SQLite::Statement up(*db_,
                           "INSERT INTO channels(id, name, site_priority, allow_split, "
                           "review_above_cents, listing_buffer, version) "
                           "VALUES (?, ?, ?, ?, ?, ?, 1) "
                           "ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
                           "site_priority = excluded.site_priority, "
                           "allow_split = excluded.allow_split, "
                           "review_above_cents = excluded.review_above_cents, "
                           "listing_buffer = excluded.listing_buffer, "
                           "version = channels.version + 1");
      for (const auto& row : *rows) {
        const v1::Channel& c = row.value;
        up.bind(1, c.id());
        up.bind(2, c.name());
        up.bind(3, absl::StrJoin(c.site_priority(), "|"));
        up.bind(4, c.allow_split() ? 1 : 0);
        up.bind(5, c.review_above_cents());
        up.bind(6, c.listing_buffer());
        up.exec();
        up.reset();
      }
      return static_cast<int64_t>(rows->size());
    });
  }

  // A kit named in the file gets exactly the file's components (replacing what it had).
  absl::StatusOr<int64_t> ImportKits(const std::string& text) {
    auto rows = ParseKits(text);
    if (!rows.ok()) return rows.status();
    return Write([&]() -> absl::StatusOr<int64_t> {
      std::set<std::string> kits_in_file;
      for (const auto& row : *rows) kits_in_file.insert(row.value.kit_sku());
      std::set<std::string> kits_known;
      {
        SQLite::Statement q(*db_, "SELECT DISTINCT kit_sku FROM kits");
        while (q.executeStep()) kits_known.insert(q.getColumn(0).getString());
      }
      SQLite::Statement sku(*db_, "SELECT 1 FROM skus WHERE code = ?");
      auto is_sku = [&](const std::string& code) {
        sku.bind(1, code);
        const bool found = sku.executeStep();
        sku.reset();
        return found;
      };
      std::vector<std::string> errors;
      auto error = [&](int line, const std::string& msg) {
        if (errors.size() < 20) errors.push_back(StrCat("line ", line, ": ", msg));
      };
      for (const auto& row : *rows) {
        const v1::KitComponent& k = row.value;
        if (is_sku(k.kit_sku())) {
          error(row.line, StrCat("kit '", k.kit_sku(),
                                 "' is a stocked SKU; a kit needs a code of its own"));
        }
        if (kits_in_file.count(k.component_sku()) || kits_known.count(k.component_sku())) {
          error(row.line, StrCat("component '", k.component_sku(), "' of kit '", k.kit_sku(),
                                 "' is itself a kit (kits do not nest)"));
        } else if (!is_sku(k.component_sku())) {
          error(row.line, StrCat("kit '", k.kit_sku(), "' names unknown SKU '",
                                 k.component_sku(), "'"));
        }
      }
      if (!errors.empty()) {
        return absl::InvalidArgumentError(
            StrCat("nothing imported: ", absl::StrJoin(errors, "; ")));
      }
      SQLite::Statement del(*db_, "DELETE FROM kits WHERE kit_sku = ?");
      for (const auto& kit : kits_in_file) {
        del.bind(1, kit);
        del.exec();
        del.reset();
      }
      SQLite::Statement ins(*db_,
                            "INSERT INTO kits(kit_sku, position, component_sku, quantity) "
                            "VALUES (?, ?, ?, ?)");
      std::map<std::string, int> position;
      for (const auto& row : *rows) {
        const v1::KitComponent& k = row.value;
        ins.bind(1, k.kit_sku());
        ins.bind(2, position[k.kit_sku()]++);
        ins.bind(3, k.component_sku());
        ins.bind(4, k.quantity());
        ins.exec();
        ins.reset();
      }
      return static_cast<int64_t>(rows->size());
    });
  }

  static constexpr const char* kExceptionColumns =
      "id, kind, node_id, message, at_ms, count, first_at_ms, order_id, fulfilment_id, sku, "
      "assignee, resolved, resolution_note, resolved_at_ms";
  static void ReadException(SQLite::Statement& q, v1::ExceptionEntry* e) {
    e->set_id(q.getColumn(0).getInt64());
    e->set_kind(q.getColumn(1).getString());
    e->set_node_id(q.getColumn(2).getString());
    e->set_message(q.getColumn(3).getString());
    e->set_at_ms(q.getColumn(4).getInt64());
    e->set_count(q.getColumn(5).getInt64());
    e->set_first_at_ms(q.getColumn(6).getInt64());
    e->set_order_id(q.getColumn(7).getString());
    e->set_fulfilment_id(q.getColumn(8).getString());
    e->set_sku(q.getColumn(9).getString());
    e->set_assignee(q.getColumn(10).getString());
    e->set_resolved(q.getColumn(11).getInt() != 0);
    e->set_resolution_note(q.getColumn(12).getString());
    e->set_resolved_at_ms(q.getColumn(13).getInt64());
  }
  absl::StatusOr<v1::ExceptionEntry> ExceptionLocked(uint64_t id) {
    SQLite::Statement q(*db_,
                        StrCat("SELECT ", kExceptionColumns, " FROM exceptions WHERE id = ?"));
    q.bind(1, static_cast<int64_t>(id));
    if (!q.executeStep()) return absl::NotFoundError(StrCat("unknown exception ", id));
    v1::ExceptionEntry e;
    ReadException(q, &e);
    return e;
  }

  bool master_cached_ = false;
  std::map<std::string, v1::Channel> channels_;
  std::map<std::string, std::vector<v1::KitComponent>> kits_;
  std::vector<v1::Site> sites_;
  std::mutex listener_mu_;
  std::function<void()> listener_;  // guarded by listener_mu_

  struct PendingApply {
    const std::string* node_id;
    uint64_t epoch;
    const std::vector<const v1::Event*>* events;
    absl::StatusOr<uint64_t> result = absl::UnknownError("not applied");
    bool done = false;
  };

  void ApplyGroup(const std::vector<PendingApply*>& batch) {
    std::lock_guard<std::mutex> lock(mu_);
    try {
      db::WriteTransaction tx(*db_);
      for (PendingApply* p : batch) {
        if (batch.size() > 1) Stmt("SAVEPOINT apply").exec();
        try {
          p->result = ApplyOne(*p->node_id, p->epoch, *p->events);
        } catch (const std::exception& e) {
          p->result = db::FromException(e);
        }
        if (batch.size() > 1) {
          if (!p->result.ok()) Stmt("ROLLBACK TO apply").exec();
          Stmt("RELEASE apply").exec();
        }
      }
      if (batch.size() == 1 && !batch[0]->result.ok()) return;  // rolled back by tx
      FlushAcksLocked();
      tx.Commit();
    } catch (const std::exception& e) {
      for (PendingApply* p : batch) p->result = db::FromException(e);
    }
  }

  // One node's batch inside the group transaction.
  absl::StatusOr<uint64_t> ApplyOne(const std::string& node_id, uint64_t epoch,
                                    const std::vector<const v1::Event*>& events) {
    auto node = GetNodeLocked(node_id);
    if (!node.ok()) return node.status();
    if (node->epoch != epoch) {
      return absl::FailedPreconditionError(
          StrCat("epoch ", epoch, " is not node '", node_id, "''s current epoch"));
    }
    uint64_t mark = node->applied_seq, hlc = node->last_event_hlc;
    auto& ins = Stmt(
        "INSERT INTO events(node_id, epoch, seq, hlc, hash, payload) VALUES (?, ?, ?, ?, ?, ?)");
    std::string payload;
    Deltas deltas;  // mirror changes summed over the batch: one upsert per (sku, lot)
    for (const v1::Event* ep : events) {
      const v1::Event& e = *ep;
      if (e.seq() != mark + 1) {
        return absl::FailedPreconditionError(
            StrCat("event ", e.seq(), " of node '", node_id, "' is not the next (", mark + 1,
                   ")"));
      }
      // One deterministic serialization serves as the stored payload and the digest input.
      payload.clear();
      const uint64_t hash = SerializeAndHash(e, &payload);
      ins.bind(1, node_id);
      ins.bind(2, static_cast<int64_t>(epoch));
      ins.bind(3, static_cast<int64_t>(e.seq()));
      ins.bind(4, static_cast<int64_t>(e.hlc()));
      ins.bind(5, static_cast<int64_t>(hash));
      ins.bindNoCopy(6, payload.data(), static_cast<int>(payload.size()));
      ins.exec();
      ins.reset();
      AddEffects(e, +1, &deltas);
      if (e.has_fulfilment()) {
        Tx tx(this);
        ApplyNodeUpdate(tx, node_id, e);
      } else if (e.has_rights()) {
        Tx tx(this);
        rights::ApplyRightsEvent(tx, node_id, e);
      } else if (e.has_count()) {
        StoreCountResult(node_id, e.count());
      } else if (e.has_transfer()) {  // central/transfers.h
        Tx tx(this);
        transfers::ApplyTransferEvent(tx, node_id, e, static_cast<int64_t>(e.hlc() >> 16));
      } else if (e.has_return_update()) {  // central/returns.h
        Tx tx(this);
        ApplyReturnUpdate(tx, node_id, e);
      }
      if (e.has_movement() && e.movement().serials_size() > 0) {
        Tx tx(this);  // shipped serials, for the returns' serial check (central/returns.h)
        NoteShippedSerials(tx, node_id, e.movement());
        ApplySerialMovement(tx, node_id, e);  // the network's serial registry (central/serials.h)
      }
      if (e.has_movement() && e.movement().reason() == purchasing::kReceiptReason) {
        PoTxImpl tx(this);  // a receipt against a purchase order (central/purchase_orders.h)
        ApplyReceiptEvent(tx, node_id, e, +1);
      }
      mark = e.seq();
      hlc = std::max<uint64_t>(hlc, e.hlc());
    }
    WriteDeltas(node_id, deltas);
    auto& up = Stmt("UPDATE nodes SET applied_seq = ?, last_event_hlc = ? WHERE node_id = ?");
    up.bind(1, static_cast<int64_t>(mark));
    up.bind(2, static_cast<int64_t>(hlc));
    up.bind(3, node_id);
    up.exec();
    up.reset();
    return mark;
  }

  void StoreCountResult(const std::string& site, const v1::CountResult& c) {
    auto& ins = Stmt(
        "INSERT INTO count_results(site, count_id, line_no, sku, bin, lot, counted, expected, "
        "variance, within_tolerance, counted_by, approved_by, posted_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(site, count_id, line_no) DO NOTHING");
    ins.bind(1, site);
    ins.bind(2, c.count_id());
    ins.bind(3, static_cast<int64_t>(c.line_no()));
    ins.bind(4, c.sku());
    ins.bind(5, c.bin());
    ins.bind(6, c.lot());
    ins.bind(7, c.counted());
    ins.bind(8, c.expected());
    ins.bind(9, c.variance());
    ins.bind(10, c.within_tolerance() ? 1 : 0);
    ins.bind(11, c.counted_by());
    ins.bind(12, c.approved_by());
    ins.bind(13, static_cast<int64_t>(c.posted_hlc() >> 16));
    ins.exec();
    ins.reset();
  }

 public:
  absl::StatusOr<v1::InventoryAccuracyResponse> InventoryAccuracy(const std::string& site,
                                                                  int64_t from_ms,
                                                                  int64_t to_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Guard([&]() -> absl::StatusOr<v1::InventoryAccuracyResponse> {
      v1::InventoryAccuracyResponse out;
      SQLite::Statement q(*db_,
                          "SELECT site, COUNT(*), SUM(within_tolerance), SUM(ABS(variance)), "
                          "SUM(variance) FROM count_results WHERE (?1 = '' OR site = ?1) "
                          "AND posted_ms >= ?2 AND (?3 = 0 OR posted_ms < ?3) "
                          "GROUP BY site ORDER BY site");
      q.bind(1, site);
      q.bind(2, from_ms);
      q.bind(3, to_ms);
      v1::CountKpi* total = out.mutable_total();
      auto accuracy = [](v1::CountKpi* k) {
        k->set_accuracy(k->lines() > 0 ? static_cast<double>(k->within_tolerance()) /
                                             static_cast<double>(k->lines())
                                       : 0.0);
      };
      while (q.executeStep()) {
        v1::CountKpi* k = out.add_sites();
        k->set_site(q.getColumn(0).getString());
        k->set_lines(q.getColumn(1).getInt64());
        k->set_within_tolerance(q.getColumn(2).getInt64());
        k->set_abs_variance(q.getColumn(3).getInt64());
        k->set_net_variance(q.getColumn(4).getInt64());
        accuracy(k);
        total->set_lines(total->lines() + k->lines());
        total->set_within_tolerance(total->within_tolerance() + k->within_tolerance());
        total->set_abs_variance(total->abs_variance() + k->abs_variance());
        total->set_net_variance(total->net_variance() + k->net_variance());
      }
      accuracy(total);
      return out;
    });
  }

 private:
  std::mutex gc_mu_;
  std::condition_variable gc_cv_;
  std::deque<PendingApply*> gc_queue_;
  bool gc_leader_ = false;

  template <typename F>
  auto Guard(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const std::exception& e) {
      return db::FromException(e);
    }
  }
  // One write transaction around f (which returns StatusOr); rolled back on error.
  template <typename F>
  auto Write(F&& f) -> decltype(f()) {
    std::lock_guard<std::mutex> lock(mu_);
    return Guard([&]() -> decltype(f()) {
      db::WriteTransaction tx(*db_);
      auto r = f();
      if (r.ok()) tx.Commit();
      return r;
    });
  }

  // Writes the feed marks acknowledged since the last flush (inside the caller's transaction, or
  // autocommit). Requires mu_.
  void FlushAcksLocked() {
    last_ack_flush_ = std::chrono::steady_clock::now();
    for (const auto& [node_id, seq] : pending_acks_) {
      auto& up = Stmt("UPDATE nodes SET feed_acked = MAX(feed_acked, ?) WHERE node_id = ?");
      up.bind(1, static_cast<int64_t>(seq));
      up.bind(2, node_id);
      up.exec();
    }
    pending_acks_.clear();
  }
  // A node record read from the database, with an acknowledged feed mark not written yet.
  void AddPendingAck(NodeRecord* n) const {
    auto it = pending_acks_.find(n->node_id);
    if (it != pending_acks_.end()) n->feed_acked = std::max(n->feed_acked, it->second);
  }
  std::map<std::string, uint64_t> pending_acks_;  // guarded by mu_
  std::chrono::steady_clock::time_point last_ack_flush_{};

  SQLite::Statement& Stmt(const char* sql) {
    auto& slot = stmts_[sql];
    if (!slot) slot = std::make_unique<SQLite::Statement>(*db_, sql);
    slot->tryReset();
    slot->clearBindings();
    return *slot;
  }

  static NodeRecord ReadNode(SQLite::Statement& q) {
    NodeRecord n;
    n.node_id = q.getColumn(0).getString();
    n.name = q.getColumn(1).getString();
    n.epoch = q.getColumn(2).getInt64();
    n.applied_seq = q.getColumn(3).getInt64();
    n.last_event_hlc = q.getColumn(4).getInt64();
    n.feed_acked = q.getColumn(5).getInt64();
    n.feed_seq = q.getColumn(6).getInt64();
    return n;
  }

  absl::StatusOr<NodeRecord> GetNodeLocked(const std::string& node_id) {
    auto& q = Stmt(
        "SELECT n.node_id, s.name, n.epoch, n.applied_seq, n.last_event_hlc, n.feed_acked, "
        "(SELECT COALESCE(MAX(seq), 0) FROM feed f WHERE f.node_id = n.node_id) "
        "FROM nodes n JOIN sites s ON s.id = n.node_id WHERE n.node_id = ?");
    q.bind(1, node_id);
    if (!q.executeStep()) {
      q.reset();
      return absl::NotFoundError(StrCat("unknown node '", node_id, "'"));
    }
    NodeRecord n = ReadNode(q);
    q.reset();
    AddPendingAck(&n);
    return n;
  }

  std::vector<std::string> AllSites() {
    std::vector<std::string> out;
    SQLite::Statement q(*db_, "SELECT id FROM sites ORDER BY id");
    while (q.executeStep()) out.push_back(q.getColumn(0).getString());
    return out;
  }

  void AppendFeed(const std::string& node_id, v1::FeedEntry entry) {
    auto& next = Stmt("SELECT COALESCE(MAX(seq), 0) + 1 FROM feed WHERE node_id = ?");
    next.bind(1, node_id);
    next.executeStep();
    entry.set_seq(next.getColumn(0).getInt64());
    next.reset();
    std::string payload = entry.SerializeAsString();
    auto& ins = Stmt("INSERT INTO feed(node_id, seq, payload) VALUES (?, ?, ?)");
    ins.bind(1, node_id);
    ins.bind(2, static_cast<int64_t>(entry.seq()));
    ins.bindNoCopy(3, payload.data(), static_cast<int>(payload.size()));
    ins.exec();
    ins.reset();
  }

  struct Deltas {
    std::map<std::pair<std::string, std::string>, int64_t> on_hand;  // (sku, lot)
    std::map<std::string, int64_t> reserved;                          // sku
  };
  // Adds (sign +1) or removes (-1) one event's effects on the mirror to deltas.
  static void AddEffects(const v1::Event& e, int sign, Deltas* d) {
    if (!e.has_movement()) return;
    const v1::Movement& m = e.movement();
    const MovementEffects fx = EffectsOf(m);
    int64_t on_hand = 0;
    for (int i = 0; i < fx.stock_count; ++i) on_hand += fx.stock[i].delta;
    if (on_hand != 0) d->on_hand[{m.sku(), m.lot()}] += sign * on_hand;
    if (fx.reserved_delta != 0) d->reserved[m.sku()] += sign * fx.reserved_delta;
  }
  void WriteDeltas(const std::string& site, const Deltas& d) {
    for (const auto& [key, delta] : d.on_hand) {
      if (delta == 0) continue;
      auto& up = Stmt(
          "INSERT INTO mirror_stock(site, sku, lot, on_hand) VALUES (?, ?, ?, ?) "
          "ON CONFLICT(site, sku, lot) DO UPDATE SET on_hand = on_hand + excluded.on_hand");
      up.bind(1, site);
      up.bind(2, key.first);
      up.bind(3, key.second);
      up.bind(4, delta);
      up.exec();
      up.reset();
    }
    for (const auto& [sku, delta] : d.reserved) {
      if (delta == 0) continue;
      auto& up = Stmt(
          "INSERT INTO mirror_reserved(site, sku, reserved) VALUES (?, ?, ?) "
          "ON CONFLICT(site, sku) DO UPDATE SET reserved = reserved + excluded.reserved");
      up.bind(1, site);
      up.bind(2, sku);
      up.bind(3, delta);
      up.exec();
      up.reset();
    }
  }

  std::mutex mu_;
  std::unique_ptr<SQLite::Database> db_;
  std::unordered_map<const char*, std::unique_ptr<SQLite::Statement>> stmts_;
  // Reads through db_ when there is no read connection, by SQL text (after db_: destroyed first).
  std::map<std::string, std::unique_ptr<SQLite::Statement>> dyn_stmts_;
  std::mutex read_mu_;
  std::unique_ptr<SQLite::Database> read_db_;
  std::map<std::string, std::unique_ptr<SQLite::Statement>> read_stmts_;  // on read_db_

  // ---- Purchase orders (central/purchase_orders.h) -------------------------------------------
 public:
  PoStore* purchase_orders() override { return &po_store_; }

 private:
  // The PO tables inside a write transaction (callers hold mu_).
  class PoTxImpl : public PoTx {
   public:
    explicit PoTxImpl(SqliteStore* s) : s_(s), base_(s) {}
    OrderTx& base() override { return base_; }
    std::optional<v1::PurchaseOrder> LoadPo(const std::string& po_id) override {
      auto& q = s_->Stmt("SELECT body FROM purchase_orders WHERE po_id = ?");
      q.bind(1, po_id);
      std::optional<v1::PurchaseOrder> out;
      if (q.executeStep()) {
        out.emplace();
        if (!ParseBlob(q, 0, &*out)) {
          q.reset();
          throw std::runtime_error(StrCat("corrupt purchase order '", po_id, "'"));
        }
      }
      q.reset();
      return out;
    }
    void SavePo(const v1::PurchaseOrder& po) override {
      const std::string body = po.SerializeAsString();
      auto& q = s_->Stmt(
          "INSERT INTO purchase_orders(po_id, site, supplier, status, body) VALUES (?, ?, ?, ?, ?) "
          "ON CONFLICT(po_id) DO UPDATE SET site = excluded.site, supplier = excluded.supplier, "
          "status = excluded.status, body = excluded.body");
      q.bind(1, po.po_id());
      q.bind(2, po.site());
      q.bind(3, po.supplier());
      q.bind(4, static_cast<int>(po.status()));
      q.bindNoCopy(5, body.data(), static_cast<int>(body.size()));
      q.exec();
      q.reset();
    }
    std::optional<v1::Supplier> LoadSupplier(const std::string& id) override {
      auto& q = s_->Stmt("SELECT body FROM suppliers WHERE id = ?");
      q.bind(1, id);
      std::optional<v1::Supplier> out;
      if (q.executeStep()) {
        out.emplace();
        ParseBlob(q, 0, &*out);
      }
      q.reset();
      return out;
    }
    void SaveSupplier(const v1::Supplier& supplier) override {
      const std::string body = supplier.SerializeAsString();
      auto& q = s_->Stmt(
          "INSERT INTO suppliers(id, body) VALUES (?, ?) "
          "ON CONFLICT(id) DO UPDATE SET body = excluded.body");
      q.bind(1, supplier.id());
      q.bindNoCopy(2, body.data(), static_cast<int>(body.size()));
      q.exec();
      q.reset();
    }

   private:
    SqliteStore* s_;
    Tx base_;
  };
  class PoStoreImpl : public PoStore {
   public:
    explicit PoStoreImpl(SqliteStore* s) : s_(s) {}
    absl::Status RunPo(const std::function<absl::Status(PoTx&)>& fn) override {
      std::lock_guard<std::mutex> lock(s_->mu_);
      return s_->Guard([&]() -> absl::StatusOr<bool> {
                 db::WriteTransaction wtx(*s_->db_);
                 PoTxImpl tx(s_);
                 if (absl::Status st = fn(tx); !st.ok()) return st;
                 wtx.Commit();
                 return true;
               })
          .status();
    }
    absl::StatusOr<v1::PurchaseOrder> GetPo(const std::string& po_id) override {
      return s_->Read([&](Reader& r) -> absl::StatusOr<v1::PurchaseOrder> {
        auto& q = r.Stmt("SELECT body FROM purchase_orders WHERE po_id = ?");
        q.bind(1, po_id);
        if (!q.executeStep()) {
          q.reset();
          return absl::NotFoundError(StrCat("unknown purchase order '", po_id, "'"));
        }
        v1::PurchaseOrder po;
        const bool ok = ParseBlob(q, 0, &po);
        q.reset();
        if (!ok) return absl::DataLossError(StrCat("corrupt purchase order '", po_id, "'"));
        return po;
      });
    }
    absl::StatusOr<v1::ListPurchaseOrdersResponse> ListPos(const std::string& site,
                                                           const std::string& supplier,
                                                           v1::PurchaseOrderStatus status,
                                                           const std::string& after,
                                                           uint32_t limit) override {
      return s_->Read([&](Reader& r) -> absl::StatusOr<v1::ListPurchaseOrdersResponse> {
        auto& q = r.Stmt(
            "SELECT body FROM purchase_orders WHERE po_id > ?1 AND (?2 = '' OR site = ?2) "
            "AND (?3 = '' OR supplier = ?3) AND (?4 = 0 OR status = ?4) ORDER BY po_id LIMIT ?5");
        q.bind(1, after);
        q.bind(2, site);
        q.bind(3, supplier);
        q.bind(4, static_cast<int>(status));
        q.bind(5, static_cast<int64_t>(limit));
        v1::ListPurchaseOrdersResponse out;
        while (q.executeStep()) {
          if (!ParseBlob(q, 0, out.add_purchase_orders())) {
            q.reset();
            return absl::DataLossError("corrupt purchase order row");
          }
        }
        q.reset();
        return out;
      });
    }
    absl::StatusOr<v1::ListSuppliersResponse> ListSuppliers() override {
      return s_->Read([&](Reader& r) -> absl::StatusOr<v1::ListSuppliersResponse> {
        auto& q = r.Stmt("SELECT body FROM suppliers ORDER BY id");
        v1::ListSuppliersResponse out;
        while (q.executeStep()) {
          ParseBlob(q, 0, out.add_suppliers());
        }
        q.reset();
        return out;
      });
    }

   private:
    SqliteStore* s_;
  };
  PoStoreImpl po_store_{this};
};

}  // namespace

absl::StatusOr<std::unique_ptr<CentralStore>> OpenSqliteStore(const SqliteStoreOptions& options) {
  auto db = db::Open({.path = options.path, .durable = options.durable});
  if (!db.ok()) return db.status();
  if (auto s = db::Migrate(**db, kMigrations); !s.ok()) return s;
  // Order reads (GET, lists, KPIs, the re-routing queue) use their own connection: a WAL
  // snapshot that neither waits for nor delays the writer.
  std::unique_ptr<SQLite::Database> read_db;
  if (!options.path.empty() && options.path != ":memory:" &&
      options.path.rfind("file:", 0) != 0) {
    auto r = db::Open({.path = options.path, .durable = options.durable, .read_only = true});
    if (!r.ok()) return r.status();
    read_db = std::move(*r);
  }
  return std::unique_ptr<CentralStore>(new SqliteStore(std::move(*db), std::move(read_db)));
}

}  // namespace depot::central
