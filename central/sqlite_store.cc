#include "central/sqlite_store.h"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "common/master_csv.h"
#include "common/sqlite_db.h"
#include "common/stock_rules.h"

namespace depot::central {
namespace {

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
};

class SqliteStore : public CentralStore {
 public:
  explicit SqliteStore(std::unique_ptr<SQLite::Database> db) : db_(std::move(db)) {}

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
      while (q.executeStep()) out.push_back(ReadNode(q));
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
          auto col = lost.getColumn(2);
          if (!e.ParseFromArray(col.getBlob(), col.getBytes())) {
            return absl::DataLossError("corrupt event in central's log");
          }
          AddEffects(e, -1, &deltas);
          keys.emplace_back(lost.getColumn(0).getInt64(), lost.getColumn(1).getInt64());
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
        reversed = keys.size();
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
      std::vector<v1::FeedEntry> out;
      while (q.executeStep()) {
        auto col = q.getColumn(0);
        v1::FeedEntry e;
        if (!e.ParseFromArray(col.getBlob(), col.getBytes())) {
          q.reset();
          return absl::DataLossError("corrupt feed entry");
        }
        out.push_back(std::move(e));
      }
      q.reset();
      return out;
    });
  }

  absl::Status AckFeed(const std::string& node_id, uint64_t seq) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Guard([&]() -> absl::StatusOr<bool> {
             SQLite::Statement up(*db_,
                                  "UPDATE nodes SET feed_acked = MAX(feed_acked, ?) "
                                  "WHERE node_id = ?");
             up.bind(1, static_cast<int64_t>(seq));
             up.bind(2, node_id);
             up.exec();
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
                 "AND message = ?3");
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
    std::lock_guard<std::mutex> lock(mu_);
    return Guard([&]() -> absl::StatusOr<v1::ListExceptionsResponse> {
      SQLite::Statement q(*db_,
                          "SELECT id, kind, node_id, message, at_ms, count, first_at_ms "
                          "FROM exceptions "
                          "WHERE (?1 = '' OR node_id = ?1) AND (?2 = '' OR kind = ?2) "
                          "ORDER BY id DESC LIMIT 1000");
      q.bind(1, node_id);
      q.bind(2, kind);
      v1::ListExceptionsResponse out;
      while (q.executeStep()) {
        auto* e = out.add_exceptions();
        e->set_id(q.getColumn(0).getInt64());
        e->set_kind(q.getColumn(1).getString());
        e->set_node_id(q.getColumn(2).getString());
        e->set_message(q.getColumn(3).getString());
        e->set_at_ms(q.getColumn(4).getInt64());
        e->set_count(q.getColumn(5).getInt64());
        e->set_first_at_ms(q.getColumn(6).getInt64());
      }
      return out;
    });
  }

  absl::StatusOr<int64_t> Import(const std::string& kind, const std::string& text) override {
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
          SQLite::Statement exists(*db_, "SELECT 1 FROM sites WHERE id = ?");
          exists.bind(1, site.id());
          const bool fresh = !exists.executeStep();
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
        StrCat("unknown master data kind '", kind, "' (skus, sites, bins)"));
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

 private:
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
    return n;
  }

  std::vector<std::string> AllSites() {
    std::vector<std::string> out;
    SQLite::Statement q(*db_, "SELECT id FROM sites ORDER BY id");
    while (q.executeStep()) out.push_back(q.getColumn(0).getString());
    return out;
  }

  void AppendFeed(const std::string& node_id, v1::FeedEntry entry) {
    SQLite::Statement next(*db_, "SELECT COALESCE(MAX(seq), 0) + 1 FROM feed WHERE node_id = ?");
    next.bind(1, node_id);
    next.executeStep();
    entry.set_seq(next.getColumn(0).getInt64());
    std::string payload = entry.SerializeAsString();
    SQLite::Statement ins(*db_, "INSERT INTO feed(node_id, seq, payload) VALUES (?, ?, ?)");
    ins.bind(1, node_id);
    ins.bind(2, static_cast<int64_t>(entry.seq()));
    ins.bind(3, payload.data(), static_cast<int>(payload.size()));
    ins.exec();
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
};

}  // namespace

absl::StatusOr<std::unique_ptr<CentralStore>> OpenSqliteStore(const SqliteStoreOptions& options) {
  auto db = db::Open({.path = options.path, .durable = options.durable});
  if (!db.ok()) return db.status();
  if (auto s = db::Migrate(**db, kMigrations); !s.ok()) return s;
  return std::unique_ptr<CentralStore>(new SqliteStore(std::move(*db)));
}

}  // namespace depot::central
