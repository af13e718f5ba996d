#include "node/ledger.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <filesystem>
#include <limits>

#include <SQLiteCpp/Backup.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/master_csv.h"
#include "common/ids.h"
#include "common/sqlite_db.h"
#include "common/stock_rules.h"
#include "node/counts.h"
#include "node/fulfilment.h"
#include "node/receiving.h"
#include "node/returns.h"
#include "node/rights_book.h"
#include "node/stmt_cache.h"
#include "node/transfers.h"
#include "spdlog/spdlog.h"

namespace depot::node {
namespace {

using absl::StrCat;

const db::Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

-- Master data: a read-only replica of central's (CSV import until the change feed exists).
CREATE TABLE skus(
  code TEXT PRIMARY KEY, gtin TEXT NOT NULL, name TEXT NOT NULL, unit TEXT NOT NULL,
  tracking INTEGER NOT NULL, expiry_tracked INTEGER NOT NULL, allow_negative INTEGER NOT NULL,
  safety_stock INTEGER NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE bins(
  code TEXT PRIMARY KEY, zone TEXT NOT NULL, walk_order INTEGER NOT NULL,
  version INTEGER NOT NULL) WITHOUT ROWID;

-- The ledger: immutable rows, gap-free seq.
CREATE TABLE movements(
  seq INTEGER PRIMARY KEY, op_seq INTEGER NOT NULL, hlc INTEGER NOT NULL, type INTEGER NOT NULL,
  sku TEXT NOT NULL, bin TEXT NOT NULL, to_bin TEXT NOT NULL, lot TEXT NOT NULL,
  expiry TEXT NOT NULL, quantity INTEGER NOT NULL, serials TEXT NOT NULL, reason TEXT NOT NULL,
  reference TEXT NOT NULL, operator TEXT NOT NULL, request_id TEXT NOT NULL);
CREATE INDEX movements_by_sku ON movements(sku, seq);
CREATE TRIGGER movements_no_update BEFORE UPDATE ON movements
  BEGIN SELECT RAISE(ABORT, 'ledger movements are immutable'); END;
CREATE TRIGGER movements_no_delete BEFORE DELETE ON movements
  BEGIN SELECT RAISE(ABORT, 'ledger movements are immutable'); END;

-- Derived state, maintained in the same transaction as the movements.
CREATE TABLE balances(
  sku TEXT NOT NULL, bin TEXT NOT NULL, lot TEXT NOT NULL, on_hand INTEGER NOT NULL,
  PRIMARY KEY(sku, bin, lot)) WITHOUT ROWID;
CREATE INDEX balances_by_bin ON balances(bin, sku, lot);
CREATE TABLE lots(sku TEXT NOT NULL, lot TEXT NOT NULL, expiry TEXT NOT NULL,
  PRIMARY KEY(sku, lot)) WITHOUT ROWID;
CREATE TABLE sku_totals(sku TEXT PRIMARY KEY, on_hand INTEGER NOT NULL,
  reserved INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE reservations(sku TEXT NOT NULL, reference TEXT NOT NULL, quantity INTEGER NOT NULL,
  PRIMARY KEY(sku, reference)) WITHOUT ROWID;
CREATE TABLE serials(sku TEXT NOT NULL, serial TEXT NOT NULL, bin TEXT NOT NULL,
  lot TEXT NOT NULL, PRIMARY KEY(sku, serial)) WITHOUT ROWID;

-- Idempotency keys: a retried request returns its first result.
CREATE TABLE requests(request_id TEXT PRIMARY KEY, op_seq INTEGER NOT NULL, rows INTEGER NOT NULL,
  fingerprint INTEGER NOT NULL) WITHOUT ROWID;

-- Events for central, trimmed when acknowledged (meta 'outbox_acked'). A movement event refers
-- to its ledger row (no copy); other kinds of events carry a serialized depot.v1.Event.
CREATE TABLE outbox(seq INTEGER PRIMARY KEY, movement_seq INTEGER, payload BLOB);
)sql"},
    {2, fulfilment::kSchema},
    {3, R"sql(
-- The first result of a request that is not a plain stock operation (fulfilment operations),
-- replayed as it was; GTIN lookups for scanning.
ALTER TABLE requests ADD COLUMN result BLOB;
CREATE INDEX skus_by_gtin ON skus(gtin);
)sql"},
    {4, RightsBook::kSchema},
    {5, counts::kSchema},
    {6, receiving::kSchema},
    {7, transfers::kSchema},
    {8, returns::kSchema},
};

struct ReadConn {
  std::unique_ptr<SQLite::Database> db;
  std::unique_ptr<StmtCache> stmts;
};

std::string DeterministicBytes(const google::protobuf::Message& m) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return bytes;
}

uint64_t Fingerprint(const v1::Operation& op) {
  const std::string bytes = DeterministicBytes(op);
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h >> 1;  // fits SQLite's signed 64-bit integer
}

std::string JoinSerials(const google::protobuf::RepeatedPtrField<std::string>& serials) {
  return absl::StrJoin(serials, "\n");
}

bool LotRequired(const v1::Sku& sku) {
  return sku.tracking() == v1::TRACKING_LOT || sku.expiry_tracked();
}
bool LotAllowed(const v1::Sku& sku) {
  return sku.tracking() == v1::TRACKING_LOT || sku.tracking() == v1::TRACKING_SERIAL ||
         sku.expiry_tracked();
}

// Reads the columns of kMovementColumns, starting at column `first`.
void ReadMovement(SQLite::Statement& q, v1::Movement* m, int first = 0) {
  auto col = [&](int i) { return q.getColumn(first + i); };
  m->set_seq(col(0).getInt64());
  m->set_op_seq(col(1).getInt64());
  m->set_hlc(col(2).getInt64());
  m->set_type(static_cast<v1::MovementType>(col(3).getInt()));
  m->set_sku(col(4).getString());
  m->set_bin(col(5).getString());
  m->set_to_bin(col(6).getString());
  m->set_lot(col(7).getString());
  m->set_expiry(col(8).getString());
  m->set_quantity(col(9).getInt64());
  std::string serials = col(10).getString();
  if (!serials.empty()) {
    for (auto s : absl::StrSplit(serials, '\n')) m->add_serials(std::string(s));
  }
  m->set_reason(col(11).getString());
  m->set_reference(col(12).getString());
  m->set_operator_id(col(13).getString());
  m->set_request_id(col(14).getString());
}

constexpr const char* kMovementColumns =
    "seq, op_seq, hlc, type, sku, bin, to_bin, lot, expiry, quantity, serials, reason, "
    "reference, operator, request_id";

void ReadSku(SQLite::Statement& q, v1::Sku* s) {
  s->set_code(q.getColumn(0).getString());
  s->set_gtin(q.getColumn(1).getString());
  s->set_name(q.getColumn(2).getString());
  s->set_unit(q.getColumn(3).getString());
  s->set_tracking(static_cast<v1::Tracking>(q.getColumn(4).getInt()));
  s->set_expiry_tracked(q.getColumn(5).getInt() != 0);
  s->set_allow_negative(q.getColumn(6).getInt() != 0);
  s->set_safety_stock(q.getColumn(7).getInt64());
  s->set_version(q.getColumn(8).getInt64());
}

constexpr const char* kSkuColumns =
    "code, gtin, name, unit, tracking, expiry_tracked, allow_negative, safety_stock, version";

}  // namespace

class TxHandle;

class Ledger::Impl {
 public:
  explicit Impl(const LedgerOptions& options) : options_(options), hlc_(*options.clock) {}

  absl::Status Init();

  std::vector<absl::StatusOr<v1::OperationResult>> ApplyBatch(std::span<const WriteItem> items);
  absl::StatusOr<int64_t> ImportSkus(std::string_view text);
  absl::StatusOr<int64_t> ImportBins(std::string_view text);

  // Reads.
  template <typename F>
  auto Read(F&& f) const -> decltype(f(std::declval<ReadConn&>()));
  absl::StatusOr<v1::Atp> AtpFrom(StmtCache& stmts, const std::string& sku) const;
  absl::StatusOr<v1::VerifyResponse> Verify(ReadConn& c) const;

  absl::Status TrimOutbox(uint64_t acked);
  absl::StatusOr<uint64_t> ApplyFeed(const std::vector<v1::FeedEntry>& entries);
  absl::Status CheckLocallyManaged() const {
    if (central_managed_) {
      return absl::FailedPreconditionError(
          "master data is owned by central on this node: import it at depot-central");
    }
    return absl::OkStatus();
  }

  LedgerOptions options_;
  HybridLogicalClock hlc_;
  std::string node_id_;
  uint64_t epoch_ = 0;
  std::atomic<uint64_t> last_seq_{0};
  std::atomic<uint64_t> outbox_seq_{0};
  std::atomic<uint64_t> outbox_acked_{0};
  std::atomic<uint64_t> feed_mark_{0};
  std::atomic<uint64_t> noted_acked_{0};  // acknowledged, maybe not trimmed yet
  std::atomic<bool> central_managed_{false};
  uint64_t previous_epoch_ = 0, previous_last_seq_ = 0;
  std::string epoch_chain_;
  std::string local_id_prefix_;  // "<node>-L", or "<node>-<mark>-L" in a restored database  // "epoch:seq,epoch:seq" newest first
  std::atomic<bool> epoch_confirmed_{false};

 private:
  friend class Ledger;
  // Write side; guarded by write_mu_.
  absl::StatusOr<v1::OperationResult> ApplyOne(const RequestContext& ctx,
                                               const v1::Operation& op);
  // One stock operation (receipt ... consume): appends its rows to *result. The rows carry
  // request_id and join the operation already in *result (same op_seq).
  absl::Status CheckNotOrderOwned(const v1::Operation& op);
  absl::Status ApplyStock(const RequestContext& ctx, const v1::Operation& op,
                          const std::string& request_id, v1::OperationResult* result);
  friend class TxHandle;
  // The SKU from the write-side cache (valid until the next import).
  absl::StatusOr<const v1::Sku*> WSku(const std::string& code);
  absl::Status WBin(const std::string& code);
  absl::Status CheckLot(const v1::Sku& sku, const std::string& lot);
  absl::Status CheckSerials(const v1::Sku& sku, int64_t quantity,
                            const google::protobuf::RepeatedPtrField<std::string>& serials);
  // Finds or registers a lot; returns its expiry.
  absl::StatusOr<std::string> ResolveLot(const v1::Sku& sku, const std::string& lot,
                                         const std::string& expiry, bool may_create);
  absl::Status AppendRow(const v1::Sku& sku, v1::Movement row, v1::OperationResult* result);
  absl::Status BuildReceipt(const v1::Sku& sku, const v1::ReceiptRequest& r, v1::Movement* m);
  absl::Status BuildConsume(const v1::Sku& sku, const v1::ConsumeRequest& r,
                            std::vector<v1::Movement>* rows);
  // Lots with expiry: the node's UTC date from the ledger's clock; FailedPrecondition when an
  // outgoing draw names a lot that expired before it.
  std::string Today() const { return UtcDate(options_.clock->NowMicros()); }
  absl::Status CheckNotExpired(const v1::Sku& sku, const std::string& lot);
  // ExpireLotsRequest: writes off every expired balance outside the staging bin.
  absl::Status ExpireLots(const RequestContext& ctx, const std::string& request_id,
                          v1::OperationResult* result);

  std::unique_ptr<SQLite::Database> wdb_;
  std::unique_ptr<StmtCache> w_;
  std::mutex write_mu_;
  std::unordered_map<std::string, v1::Sku> sku_cache_;
  std::unordered_set<std::string> bin_cache_;
  RightsBook rights_;  // selling rights (node/rights_book.h), write side only
  std::string stock_reason_;  // TxHandle::StockWithReason: reason for rows that have none
  // Local stock operations' effect on the selling rights (top-level API calls only: the
  // fulfilment module reports its own).
  absl::Status LocalRights(TxHandle& tx, const v1::Operation& op, const v1::OperationResult& r,
                           bool before);
  // After refused local sales: asks central for the missing rights in a transaction of its own.
  void FlushWantedRights();

  mutable std::mutex pool_mu_;
  mutable std::vector<std::unique_ptr<ReadConn>> pool_;
};

absl::Status Ledger::Impl::Init() {
  auto db = db::Open({.path = options_.path, .durable = options_.durable});
  if (!db.ok()) return db.status();
  wdb_ = std::move(*db);
  if (auto s = db::Migrate(*wdb_, kMigrations); !s.ok()) return s;
  w_ = std::make_unique<StmtCache>(*wdb_);
  try {
    db::WriteTransaction tx(*wdb_);
    std::map<std::string, std::string> meta;
    SQLite::Statement q(*wdb_, "SELECT key, value FROM meta");
    while (q.executeStep()) meta[q.getColumn(0).getString()] = q.getColumn(1).getString();
    if (meta.count("node_id")) {
      node_id_ = meta["node_id"];
      if (!options_.node_id.empty() && options_.node_id != node_id_) {
        return absl::FailedPreconditionError(
            StrCat("database ", options_.path, " belongs to node '", node_id_, "', not '",
                   options_.node_id, "'"));
      }
      epoch_ = std::stoull(meta["epoch"]);
    } else {
      if (auto s = CheckCode("node id", options_.node_id); !s.ok()) return s;
      node_id_ = options_.node_id;
      epoch_ = NewEpoch();
      SQLite::Statement ins(*wdb_, "INSERT INTO meta(key, value) VALUES (?, ?)");
      for (auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
               {"node_id", node_id_}, {"epoch", std::to_string(epoch_)}, {"outbox_acked", "0"}}) {
        ins.bind(1, k);
        ins.bind(2, v);
        ins.exec();
        ins.reset();
      }
    }
    // The staging bin picked goods wait in (node/fulfilment.h): the node's own, not master data.
    SQLite::Statement staging(*wdb_,
                              "INSERT INTO bins(code, zone, walk_order, version) "
                              "VALUES (?, 'staging', ?, 0) ON CONFLICT(code) DO NOTHING");
    staging.bind(1, kStagingBin);
    staging.bind(2, std::numeric_limits<int64_t>::max());
    staging.exec();
    // Local order ids ("<node>-L<n>") come from a counter a restore from backup rewinds, so a
    // restored database marks its ids with the time it was first opened (deterministic under a
    // manual clock, unique in practice: two restores of one backup open at different times).
    local_id_prefix_ = meta.count("local_id_prefix") ? meta["local_id_prefix"] : node_id_ + "-L";
    if (meta.count("previous_epoch") && meta["local_id_epoch"] != std::to_string(epoch_)) {
      local_id_prefix_ = StrCat(node_id_, "-",
                                absl::Hex(options_.clock->NowMicros() & 0xffffffffffLL), "-L");
      SQLite::Statement up(*wdb_,
                           "INSERT INTO meta(key, value) VALUES (?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
      for (auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
               {"local_id_epoch", std::to_string(epoch_)}, {"local_id_prefix", local_id_prefix_}}) {
        up.bind(1, k);
        up.bind(2, v);
        up.exec();
        up.reset();
      }
    }
    tx.Commit();
    auto meta_u64 = [&](const char* key) -> uint64_t {
      return meta.count(key) ? std::stoull(meta[key]) : 0;
    };
    outbox_acked_ = meta_u64("outbox_acked");
    feed_mark_ = meta_u64("feed_applied");
    previous_epoch_ = meta_u64("previous_epoch");
    previous_last_seq_ = meta_u64("previous_last_seq");
    central_managed_ = options_.central_managed || meta_u64("central_managed") != 0;
    epoch_confirmed_ = meta_u64("confirmed_epoch") == epoch_;
    epoch_chain_ = meta.count("epoch_chain") ? meta["epoch_chain"] : "";
    if (auto s = rights_.Load(*w_, node_id_, central_managed_, options_.selling_rights); !s.ok()) return s;
    SQLite::Statement last(*wdb_, "SELECT seq, hlc FROM movements ORDER BY seq DESC LIMIT 1");
    if (last.executeStep()) {
      last_seq_ = last.getColumn(0).getInt64();
      hlc_.Observe(last.getColumn(1).getInt64());
    }
    hlc_.Observe(fulfilment::LastHlc(*w_));  // fulfilment events carry no movement
    hlc_.Observe(transfers::LastHlc(*w_));   // nor does a transfer ordered or received
    hlc_.Observe(counts::LastHlc(*w_));      // nor do count results
    hlc_.Observe(returns::LastHlc(*w_));     // nor do return changes
    uint64_t max_outbox = wdb_->execAndGet("SELECT COALESCE(MAX(seq), 0) FROM outbox").getInt64();
    outbox_seq_ = std::max<uint64_t>(max_outbox, outbox_acked_);
  } catch (const std::exception& e) {
    return db::FromException(e);
  }
  for (int i = 0; i < std::max(1, options_.read_connections); ++i) {
    auto rdb = db::Open({.path = options_.path, .durable = options_.durable});
    if (!rdb.ok()) return rdb.status();
    auto c = std::make_unique<ReadConn>();
    c->db = std::move(*rdb);
    c->stmts = std::make_unique<StmtCache>(*c->db);
    pool_.push_back(std::move(c));
  }
  return absl::OkStatus();
}

template <typename F>
auto Ledger::Impl::Read(F&& f) const -> decltype(f(std::declval<ReadConn&>())) {
  std::unique_ptr<ReadConn> conn;
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!pool_.empty()) {
      conn = std::move(pool_.back());
      pool_.pop_back();
    }
  }
  if (!conn) {  // more concurrent readers than pooled connections: open one more
    auto rdb = db::Open({.path = options_.path, .durable = options_.durable});
    if (!rdb.ok()) return rdb.status();
    conn = std::make_unique<ReadConn>();
    conn->db = std::move(*rdb);
    conn->stmts = std::make_unique<StmtCache>(*conn->db);
  }
  auto give_back = [&] {
    std::lock_guard<std::mutex> lock(pool_mu_);
    pool_.push_back(std::move(conn));
  };
  try {
    auto result = f(*conn);
    give_back();
    return result;
  } catch (const std::exception& e) {
    give_back();
    return db::FromException(e);
  }
}

// ---------------------------------------------------------------------------------------------
// Writes

absl::StatusOr<const v1::Sku*> Ledger::Impl::WSku(const std::string& code) {
  auto it = sku_cache_.find(code);
  if (it != sku_cache_.end()) return &it->second;
  if (auto s = CheckCode("sku", code); !s.ok()) return s;
  auto q = w_->Get("SELECT code, gtin, name, unit, tracking, expiry_tracked, allow_negative, "
                   "safety_stock, version FROM skus WHERE code = ?");
  q->bind(1, code);
  if (!q->executeStep()) return absl::NotFoundError(StrCat("unknown SKU '", code, "'"));
  v1::Sku sku;
  ReadSku(*q, &sku);
  return &sku_cache_.emplace(code, std::move(sku)).first->second;
}

absl::Status Ledger::Impl::WBin(const std::string& code) {
  if (auto s = CheckCode("bin", code); !s.ok()) return s;
  if (bin_cache_.count(code)) return absl::OkStatus();
  auto q = w_->Get("SELECT 1 FROM bins WHERE code = ?");
  q->bind(1, code);
  if (!q->executeStep()) return absl::NotFoundError(StrCat("unknown bin '", code, "'"));
  bin_cache_.insert(code);
  return absl::OkStatus();
}

absl::Status Ledger::Impl::CheckLot(const v1::Sku& sku, const std::string& lot) {
  if (lot.empty()) {
    if (LotRequired(sku)) {
      return absl::InvalidArgumentError(StrCat("SKU '", sku.code(), "' is lot-tracked: lot is required"));
    }
    return absl::OkStatus();
  }
  if (!LotAllowed(sku)) {
    return absl::InvalidArgumentError(StrCat("SKU '", sku.code(), "' is not lot-tracked: no lot allowed"));
  }
  return CheckCode("lot", lot);
}

absl::Status Ledger::Impl::CheckSerials(
    const v1::Sku& sku, int64_t quantity,
    const google::protobuf::RepeatedPtrField<std::string>& serials) {
  if (sku.tracking() != v1::TRACKING_SERIAL) {
    if (!serials.empty()) {
      return absl::InvalidArgumentError(StrCat("SKU '", sku.code(), "' is not serial-tracked: no serials allowed"));
    }
    return absl::OkStatus();
  }
  if (static_cast<int64_t>(serials.size()) != std::abs(quantity)) {
    return absl::InvalidArgumentError(StrCat("SKU '", sku.code(), "' is serial-tracked: ",
                                             std::abs(quantity), " serials required, ",
                                             serials.size(), " given"));
  }
  std::unordered_set<std::string> seen;
  for (const auto& s : serials) {
    if (auto st = CheckCode("serial", s); !st.ok()) return st;
    if (!seen.insert(s).second) {
      return absl::InvalidArgumentError(StrCat("serial '", s, "' listed twice"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Ledger::Impl::ResolveLot(const v1::Sku& sku, const std::string& lot,
                                                     const std::string& expiry, bool may_create) {
  if (!expiry.empty()) {
    if (!sku.expiry_tracked()) {
      return absl::InvalidArgumentError(StrCat("SKU '", sku.code(), "' does not track expiry"));
    }
    if (!ValidDate(expiry)) {
      return absl::InvalidArgumentError(StrCat("expiry '", expiry, "' is not a date (YYYY-MM-DD)"));
    }
  }
  if (lot.empty()) return std::string();
  auto q = w_->Get("SELECT expiry FROM lots WHERE sku = ? AND lot = ?");
  q->bind(1, sku.code());
  q->bind(2, lot);
  if (q->executeStep()) {
    std::string known = q->getColumn(0).getString();
    if (!expiry.empty() && expiry != known) {
      return absl::FailedPreconditionError(StrCat("lot '", lot, "' of SKU '", sku.code(),
                                                  "' has expiry ", known, ", not ", expiry));
    }
    return known;
  }
  if (!may_create) {
    return absl::NotFoundError(StrCat("unknown lot '", lot, "' of SKU '", sku.code(), "'"));
  }
  if (sku.expiry_tracked() && expiry.empty()) {
    return absl::InvalidArgumentError(
        StrCat("SKU '", sku.code(), "' tracks expiry: expiry is required for a new lot"));
  }
  auto ins = w_->Get("INSERT INTO lots(sku, lot, expiry) VALUES (?, ?, ?)");
  ins->bind(1, sku.code());
  ins->bind(2, lot);
  ins->bind(3, expiry);
  ins->exec();
  return expiry;
}

absl::Status Ledger::Impl::CheckNotExpired(const v1::Sku& sku, const std::string& lot) {
  if (lot.empty()) return absl::OkStatus();
  auto q = w_->Get("SELECT expiry FROM lots WHERE sku = ? AND lot = ?");
  q->bind(1, sku.code());
  q->bind(2, lot);
  if (!q->executeStep()) return absl::OkStatus();  // unknown: the caller's ResolveLot says so
  const std::string expiry = q->getColumn(0).getString();
  q->reset();
  if (LotExpired(expiry, Today())) {
    return absl::FailedPreconditionError(
        StrCat("lot '", lot, "' of SKU '", sku.code(), "' expired on ", expiry));
  }
  return absl::OkStatus();
}

// Appends one movement row and applies its effects, refusing negative balances, over-release
// and serial misuse. Runs inside the caller's savepoint.
absl::Status Ledger::Impl::AppendRow(const v1::Sku& sku, v1::Movement m,
                                     v1::OperationResult* result) {
  const uint64_t seq = last_seq_.load() + 1;
  m.set_seq(seq);
  if (m.op_seq() == 0) m.set_op_seq(seq);
  m.set_hlc(hlc_.Now());

  const MovementEffects fx = EffectsOf(m);
  for (int i = 0; i < fx.stock_count; ++i) {
    const auto& d = fx.stock[i];
    // One upsert returns the new balance; a refused result is undone by the caller's rollback.
    auto up = w_->Get(
        "INSERT INTO balances(sku, bin, lot, on_hand) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT(sku, bin, lot) DO UPDATE SET on_hand = on_hand + ?4 RETURNING on_hand");
    up->bind(1, m.sku());
    up->bind(2, d.bin);
    up->bind(3, m.lot());
    up->bind(4, d.delta);
    up->executeStep();
    const int64_t next = up->getColumn(0).getInt64();
    while (up->executeStep()) {
    }
    if (next < 0 && !sku.allow_negative()) {
      return absl::FailedPreconditionError(
          StrCat("insufficient stock: SKU '", m.sku(), "' in bin '", d.bin, "'",
                 m.lot().empty() ? "" : StrCat(" lot '", m.lot(), "'"), " has ", next - d.delta,
                 ", needs ", -d.delta));
    }
    if (next == 0) {
      auto del = w_->Get("DELETE FROM balances WHERE sku = ? AND bin = ? AND lot = ?");
      del->bind(1, m.sku());
      del->bind(2, d.bin);
      del->bind(3, m.lot());
      del->exec();
    }
    // Serials leave their bin or enter a new one with the stock.
    for (const auto& serial : m.serials()) {
      if (d.delta < 0) {
        auto q = w_->Get("SELECT bin, lot FROM serials WHERE sku = ? AND serial = ?");
        q->bind(1, m.sku());
        q->bind(2, serial);
        if (!q->executeStep()) {
          return absl::FailedPreconditionError(
              StrCat("serial '", serial, "' of SKU '", m.sku(), "' is not in stock"));
        }
        if (q->getColumn(0).getString() != d.bin || q->getColumn(1).getString() != m.lot()) {
          return absl::FailedPreconditionError(
              StrCat("serial '", serial, "' of SKU '", m.sku(), "' is in bin '",
                     q->getColumn(0).getString(), "', not '", d.bin, "'"));
        }
        auto del = w_->Get("DELETE FROM serials WHERE sku = ? AND serial = ?");
        del->bind(1, m.sku());
        del->bind(2, serial);
        del->exec();
      } else {
        auto ins = w_->Get(
            "INSERT INTO serials(sku, serial, bin, lot) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(sku, serial) DO NOTHING");
        ins->bind(1, m.sku());
        ins->bind(2, serial);
        ins->bind(3, d.bin);
        ins->bind(4, m.lot());
        if (ins->exec() == 0) {
          return absl::FailedPreconditionError(
              StrCat("serial '", serial, "' of SKU '", m.sku(), "' is already in stock"));
        }
      }
    }
  }
  if (fx.reserved_delta != 0) {
    auto q = w_->Get("SELECT quantity FROM reservations WHERE sku = ? AND reference = ?");
    q->bind(1, m.sku());
    q->bind(2, m.reference());
    int64_t open = q->executeStep() ? q->getColumn(0).getInt64() : 0;
    int64_t next = open + fx.reserved_delta;
    if (next < 0) {
      return absl::FailedPreconditionError(
          StrCat("reservation '", m.reference(), "' of SKU '", m.sku(), "' has ", open,
                 " open, cannot take ", -fx.reserved_delta));
    }
    if (next == 0) {
      auto del = w_->Get("DELETE FROM reservations WHERE sku = ? AND reference = ?");
      del->bind(1, m.sku());
      del->bind(2, m.reference());
      del->exec();
    } else {
      auto up = w_->Get(
          "INSERT INTO reservations(sku, reference, quantity) VALUES (?, ?, ?) "
          "ON CONFLICT(sku, reference) DO UPDATE SET quantity = excluded.quantity");
      up->bind(1, m.sku());
      up->bind(2, m.reference());
      up->bind(3, next);
      up->exec();
    }
  }
  int64_t on_hand_delta = 0;
  for (int i = 0; i < fx.stock_count; ++i) on_hand_delta += fx.stock[i].delta;
  if (on_hand_delta != 0 || fx.reserved_delta != 0) {
    auto t = w_->Get(
        "INSERT INTO sku_totals(sku, on_hand, reserved) VALUES (?, ?, ?) "
        "ON CONFLICT(sku) DO UPDATE SET on_hand = on_hand + excluded.on_hand, "
        "reserved = reserved + excluded.reserved RETURNING on_hand, reserved");
    t->bind(1, m.sku());
    t->bind(2, on_hand_delta);
    t->bind(3, fx.reserved_delta);
    t->executeStep();
    auto* atp = result->mutable_atp();
    atp->set_sku(m.sku());
    atp->set_on_hand(t->getColumn(0).getInt64());
    atp->set_reserved(t->getColumn(1).getInt64());
    atp->set_safety_stock(sku.safety_stock());
    atp->set_available(Available(atp->on_hand(), atp->reserved(), atp->safety_stock()));
    while (t->executeStep()) {
    }
  }

  auto ins = w_->Get(
      "INSERT INTO movements(seq, op_seq, hlc, type, sku, bin, to_bin, lot, expiry, quantity, "
      "serials, reason, reference, operator, request_id) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  ins->bind(1, static_cast<int64_t>(m.seq()));
  ins->bind(2, static_cast<int64_t>(m.op_seq()));
  ins->bind(3, static_cast<int64_t>(m.hlc()));
  ins->bind(4, static_cast<int>(m.type()));
  const std::string serials = JoinSerials(m.serials());
  ins->bindNoCopy(5, m.sku());  // the strings outlive exec(): no copies
  ins->bindNoCopy(6, m.bin());
  ins->bindNoCopy(7, m.to_bin());
  ins->bindNoCopy(8, m.lot());
  ins->bindNoCopy(9, m.expiry());
  ins->bind(10, m.quantity());
  ins->bindNoCopy(11, serials);
  ins->bindNoCopy(12, m.reason());
  ins->bindNoCopy(13, m.reference());
  ins->bindNoCopy(14, m.operator_id());
  ins->bindNoCopy(15, m.request_id());
  ins->exec();

  // The outbox event, in the same transaction; it refers to the movement row.
  const uint64_t event_seq = outbox_seq_.load() + 1;
  auto out = w_->Get("INSERT INTO outbox(seq, movement_seq) VALUES (?, ?)");
  out->bind(1, static_cast<int64_t>(event_seq));
  out->bind(2, static_cast<int64_t>(seq));
  out->exec();

  last_seq_ = seq;
  outbox_seq_ = event_seq;
  *result->add_movements() = std::move(m);
  return absl::OkStatus();
}

absl::Status Ledger::Impl::BuildReceipt(const v1::Sku& sku, const v1::ReceiptRequest& r,
                                        v1::Movement* m) {
  if (auto s = WBin(r.bin()); !s.ok()) return s;
  if (r.quantity() <= 0) return absl::InvalidArgumentError("quantity must be positive");
  if (auto s = CheckLot(sku, r.lot()); !s.ok()) return s;
  if (auto s = CheckSerials(sku, r.quantity(), r.serials()); !s.ok()) return s;
  auto expiry = ResolveLot(sku, r.lot(), r.expiry(), /*may_create=*/true);
  if (!expiry.ok()) return expiry.status();
  if (const std::string today = Today(); LotExpired(*expiry, today)) {
    return absl::FailedPreconditionError(
        StrCat("lot '", r.lot(), "' expired on ", *expiry, " (today is ", today, ")"));
  }
  m->set_type(v1::RECEIPT);
  m->set_bin(r.bin());
  m->set_lot(r.lot());
  m->set_expiry(*expiry);
  m->set_quantity(r.quantity());
  *m->mutable_serials() = r.serials();
  m->set_reference(r.reference());
  m->set_reason(r.reason());
  return absl::OkStatus();
}

// Chooses where consumed goods come from: named serials, a named bin (and lot), or
// first-expiry-first-out across bins, then bin walk order. Without a named bin the staging bin
// (picked goods of orders) is never drawn from.
namespace {
// Balances a consume may draw from: first expiry first out, then bin walk order. Picked goods
// wait in the staging bin for their order: drawn only when the bin is named. Lots that expired
// before today (the last parameter) are skipped, except in the staging bin: goods picked before
// their lot expired still ship.
std::string ConsumeSql(bool bin_named, bool lot_named) {
  return StrCat(
      "SELECT b.bin, b.lot, b.on_hand FROM balances b "
      "LEFT JOIN lots l ON l.sku = b.sku AND l.lot = b.lot "
      "LEFT JOIN bins n ON n.code = b.bin "
      "WHERE b.sku = ? AND b.on_hand > 0",
      bin_named ? " AND b.bin = ?" : " AND b.bin <> 'STAGING'", lot_named ? " AND b.lot = ?" : "",
      " AND (b.bin = 'STAGING' OR l.expiry IS NULL OR l.expiry = '' OR l.expiry >= ?)",
      " ORDER BY COALESCE(NULLIF(l.expiry, ''), '9999-99-99'), n.walk_order, b.bin, b.lot");
}
}  // namespace

absl::Status Ledger::Impl::BuildConsume(const v1::Sku& sku, const v1::ConsumeRequest& r,
                                        std::vector<v1::Movement>* rows) {
  auto base = [&](const std::string& bin, const std::string& lot, int64_t qty) {
    v1::Movement m;
    m.set_type(v1::CONSUME);
    m.set_bin(bin);
    m.set_lot(lot);
    m.set_quantity(qty);
    m.set_reference(r.reference());
    return m;
  };
  if (!r.bin().empty()) {
    if (auto s = WBin(r.bin()); !s.ok()) return s;
  }
  if (!r.lot().empty()) {
    if (auto s = CheckLot(sku, r.lot()); !s.ok()) return s;
    if (r.bin() != kStagingBin) {
      if (auto s = CheckNotExpired(sku, r.lot()); !s.ok()) return s;
    }
  }
  if (auto s = CheckSerials(sku, r.quantity(), r.serials()); !s.ok()) return s;
  if (sku.tracking() == v1::TRACKING_SERIAL) {
    std::map<std::pair<std::string, std::string>, v1::Movement> by_place;
    for (const auto& serial : r.serials()) {
      auto q = w_->Get("SELECT bin, lot FROM serials WHERE sku = ? AND serial = ?");
      q->bind(1, sku.code());
      q->bind(2, serial);
      if (!q->executeStep()) {
        return absl::FailedPreconditionError(
            StrCat("serial '", serial, "' of SKU '", sku.code(), "' is not in stock"));
      }
      std::pair<std::string, std::string> place{q->getColumn(0).getString(),
                                                q->getColumn(1).getString()};
      if (!r.bin().empty() && place.first != r.bin()) {
        return absl::FailedPreconditionError(StrCat("serial '", serial, "' is in bin '",
                                                    place.first, "', not '", r.bin(), "'"));
      }
      if (r.bin().empty() && place.first == kStagingBin) {
        return absl::FailedPreconditionError(
            StrCat("serial '", serial, "' is in the staging bin, picked for an order"));
      }
      if (place.first != kStagingBin && !place.second.empty()) {
        if (auto s = CheckNotExpired(sku, place.second); !s.ok()) return s;
      }
      auto [it, fresh] = by_place.try_emplace(place, base(place.first, place.second, 0));
      it->second.set_quantity(it->second.quantity() + 1);
      it->second.add_serials(serial);
    }
    for (auto& [place, m] : by_place) rows->push_back(std::move(m));
    return absl::OkStatus();
  }
  int64_t left = r.quantity();
  {
    // The four shapes (bin named or not, lot named or not), prepared once each in the write
    // connection's statement cache (keyed by address: the strings are static).
    static const std::string kSql[2][2] = {
        {ConsumeSql(false, false), ConsumeSql(false, true)},
        {ConsumeSql(true, false), ConsumeSql(true, true)}};
    auto q = w_->Get(kSql[r.bin().empty() ? 0 : 1][r.lot().empty() ? 0 : 1].c_str());
    int i = 1;
    q->bind(i++, sku.code());
    if (!r.bin().empty()) q->bind(i++, r.bin());
    if (!r.lot().empty()) q->bind(i++, r.lot());
    q->bind(i++, Today());
    while (left > 0 && q->executeStep()) {
      int64_t take = std::min<int64_t>(left, q->getColumn(2).getInt64());
      rows->push_back(base(q->getColumn(0).getString(), q->getColumn(1).getString(), take));
      left -= take;
    }
  }
  if (left > 0) {
    if (sku.allow_negative() && !r.bin().empty() && (!LotRequired(sku) || !r.lot().empty())) {
      rows->push_back(base(r.bin(), r.lot(), left));
    } else {
      return absl::FailedPreconditionError(StrCat("insufficient stock to consume ", r.quantity(),
                                                  " of SKU '", sku.code(), "': short by ", left));
    }
  }
  return absl::OkStatus();
}

// The fulfilment module's view of the open write transaction (node/fulfilment.h).
class TxHandle final : public LedgerTx {
 public:
  TxHandle(Ledger::Impl* impl, const RequestContext& ctx, const std::string& request_id,
           v1::OperationResult* result)
      : impl_(impl), ctx_(ctx), request_id_(request_id), result_(result) {}

  const RequestContext& context() const override { return ctx_; }
  const std::string& node_id() const override { return impl_->node_id_; }
  std::string LocalIdPrefix() const override { return impl_->local_id_prefix_; }
  absl::Status Stock(const v1::Operation& op) override {
    return impl_->ApplyStock(ctx_, op, request_id_, result_);
  }
  absl::Status StockWithReason(const v1::Operation& op, const std::string& reason) override {
    impl_->stock_reason_ = reason;
    absl::Status s = impl_->ApplyStock(ctx_, op, request_id_, result_);
    impl_->stock_reason_.clear();
    return s;
  }
  void Emit(v1::Event event) override {
    if (event.hlc() == 0) event.set_hlc(impl_->hlc_.Now());
    const std::string bytes = DeterministicBytes(event);
    const uint64_t event_seq = impl_->outbox_seq_.load() + 1;
    auto ins = impl_->w_->Get("INSERT INTO outbox(seq, payload) VALUES (?, ?)");
    ins->bind(1, static_cast<int64_t>(event_seq));
    ins->bind(2, bytes.data(), static_cast<int>(bytes.size()));
    ins->exec();
    impl_->outbox_seq_ = event_seq;
  }
  uint64_t Now() override { return impl_->hlc_.Now(); }
  std::string Today() override { return impl_->Today(); }
  absl::StatusOr<v1::Sku> Sku(const std::string& code) override {
    auto sku = impl_->WSku(code);
    if (!sku.ok()) return sku.status();
    return **sku;
  }
  absl::StatusOr<v1::Atp> Atp(const std::string& sku) override {
    return impl_->AtpFrom(*impl_->w_, sku);
  }
  StmtCache& stmts() override { return *impl_->w_; }
  RightsBook& rights() override { return impl_->rights_; }
  absl::Status Savepoint(const std::function<absl::Status()>& f) override {
    const uint64_t seq = impl_->last_seq_, outbox = impl_->outbox_seq_;
    const int rows = result_->movements_size();
    impl_->w_->Get("SAVEPOINT fulfilment")->exec();
    absl::Status s;
    try {
      s = f();
    } catch (const std::exception& e) {
      s = db::FromException(e);
    }
    if (!s.ok()) {
      impl_->w_->Get("ROLLBACK TO fulfilment")->exec();
      impl_->last_seq_ = seq;
      impl_->outbox_seq_ = outbox;
      while (result_->movements_size() > rows) result_->mutable_movements()->RemoveLast();
    }
    impl_->w_->Get("RELEASE fulfilment")->exec();
    return s;
  }

 private:
  Ledger::Impl* impl_;
  const RequestContext& ctx_;
  const std::string& request_id_;
  v1::OperationResult* result_;
};

absl::StatusOr<v1::OperationResult> Ledger::Impl::ApplyOne(const RequestContext& ctx,
                                                           const v1::Operation& op) {
  if (auto s = CheckCode("operator", ctx.operator_id); !s.ok()) return s;
  if (op.op_case() == v1::Operation::OP_NOT_SET) {
    return absl::InvalidArgumentError("empty operation");
  }
  const std::string request_id = RequestIdOf(op);
  if (auto s = CheckCode("request_id", request_id, /*required=*/false); !s.ok()) return s;
  const uint64_t fingerprint = request_id.empty() ? 0 : Fingerprint(op);
  v1::OperationResult result;
  if (!request_id.empty()) {
    auto q = w_->Get(
        "SELECT op_seq, rows, fingerprint, result FROM requests WHERE request_id = ?");
    q->bind(1, request_id);
    if (q->executeStep()) {
      if (static_cast<uint64_t>(q->getColumn(2).getInt64()) != fingerprint) {
        return absl::AlreadyExistsError(
            StrCat("request_id '", request_id, "' was already used for a different request"));
      }
      if (!q->isColumnNull(3)) {  // a fulfilment operation: its first result as it was
        auto col = q->getColumn(3);
        if (!result.ParseFromArray(col.getBlob(), col.getBytes())) {
          return absl::DataLossError("corrupt stored request result");
        }
        result.set_replayed(true);
        return result;
      }
      int64_t first = q->getColumn(0).getInt64(), rows = q->getColumn(1).getInt64();
      auto mq = w_->Get("SELECT seq, op_seq, hlc, type, sku, bin, to_bin, lot, expiry, quantity, "
                        "serials, reason, reference, operator, request_id FROM movements "
                        "WHERE seq >= ? AND seq < ? ORDER BY seq");
      mq->bind(1, first);
      mq->bind(2, first + rows);
      while (mq->executeStep()) ReadMovement(*mq, result.add_movements());
      result.set_replayed(true);
      if (result.movements_size() > 0) {
        auto atp = AtpFrom(*w_, result.movements(0).sku());
        if (atp.ok()) *result.mutable_atp() = *atp;
      }
      return result;
    }
  }

  if (fulfilment::IsFulfilmentOp(op) || transfers::IsTransferOp(op) || counts::IsCountOp(op) || receiving::IsReceivingOp(op) ||
      returns::IsReturnOp(op) || op.op_case() == v1::Operation::kRightsRequest ||
      op.op_case() == v1::Operation::kExpireLots) {
    TxHandle tx(this, ctx, request_id, &result);
    if (op.op_case() == v1::Operation::kExpireLots) {
      if (auto s = ExpireLots(ctx, request_id, &result); !s.ok()) return s;
    } else if (op.op_case() == v1::Operation::kRightsRequest) {
      auto book = rights_.Request(tx, op.rights_request());
      if (!book.ok()) return book.status();
      *result.mutable_rights() = std::move(*book);
    } else if (transfers::IsTransferOp(op)) {
      if (auto s = transfers::Apply(tx, op, &result); !s.ok()) return s;
    } else if (counts::IsCountOp(op)) {
      if (auto s = counts::Apply(tx, options_.count_tolerance, op, &result); !s.ok()) return s;
    } else if (receiving::IsReceivingOp(op)) {
      if (auto s = receiving::Apply(tx, op, &result); !s.ok()) return s;
    } else if (returns::IsReturnOp(op)) {
      if (auto s = returns::Apply(tx, op, &result); !s.ok()) return s;
    } else if (auto s = fulfilment::Apply(tx, op, &result); !s.ok()) {
      return s;
    }
    if (auto s = rights_.Settle(tx); !s.ok()) return s;
    result.clear_atp();  // several SKUs: the fulfilment is the answer
    if (!request_id.empty()) {
      const std::string bytes = DeterministicBytes(result);
      auto ins = w_->Get(
          "INSERT INTO requests(request_id, op_seq, rows, fingerprint, result) "
          "VALUES (?, ?, ?, ?, ?)");
      ins->bind(1, request_id);
      ins->bind(2, static_cast<int64_t>(
                       result.movements_size() > 0 ? result.movements(0).seq() : 0));
      ins->bind(3, static_cast<int64_t>(result.movements_size()));
      ins->bind(4, static_cast<int64_t>(fingerprint));
      ins->bind(5, bytes.data(), static_cast<int>(bytes.size()));
      ins->exec();
    }
    return result;
  }

  if (auto s = CheckNotOrderOwned(op); !s.ok()) return s;
  if (auto s = receiving::CheckPlainOperation(op); !s.ok()) return s;
  TxHandle tx(this, ctx, request_id, &result);
  if (auto s = LocalRights(tx, op, result, /*before=*/true); !s.ok()) return s;
  if (auto s = ApplyStock(ctx, op, request_id, &result); !s.ok()) return s;
  if (auto s = LocalRights(tx, op, result, /*before=*/false); !s.ok()) return s;
  if (auto s = rights_.Settle(tx); !s.ok()) return s;
  if (!request_id.empty()) {
    auto ins = w_->Get(
        "INSERT INTO requests(request_id, op_seq, rows, fingerprint) VALUES (?, ?, ?, ?)");
    ins->bind(1, request_id);
    ins->bind(2, static_cast<int64_t>(result.movements(0).seq()));
    ins->bind(3, static_cast<int64_t>(result.movements_size()));
    ins->bind(4, static_cast<int64_t>(fingerprint));
    ins->exec();
  }
  return result;
}

// A manual reservation is a local commitment like a click-and-collect order: it needs local
// selling rights (checked before the stock moves, so the refusal names the rights); releasing
// it gives them back; consuming it lets the goods leave. Losses are reported with their size.
absl::Status Ledger::Impl::LocalRights(TxHandle& tx, const v1::Operation& op,
                                       const v1::OperationResult& r, bool before) {
  int64_t moved = 0;
  for (const auto& m : r.movements()) moved += m.quantity();
  switch (op.op_case()) {
    case v1::Operation::kReserve:
      if (!before) return absl::OkStatus();
      if (op.reserve().quantity() <= 0) return absl::OkStatus();  // ApplyStock refuses it
      return rights_.LocalCommit(tx, op.reserve().sku(), op.reserve().quantity(), false);
    case v1::Operation::kRelease:
      return before ? absl::OkStatus() : rights_.LocalRelease(tx, op.release().sku(), moved);
    case v1::Operation::kConsume:
      return before ? absl::OkStatus() : rights_.LocalLeave(tx, op.consume().sku(), moved);
    case v1::Operation::kAdjust:
      if (!before && op.adjust().quantity() < 0) {
        rights_.Touch(op.adjust().sku(), -op.adjust().quantity());
      }
      return absl::OkStatus();
    case v1::Operation::kScrap:
      if (!before) rights_.Touch(op.scrap().sku(), op.scrap().quantity());
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

// Every balance of an expired lot outside the staging bin leaves stock as an ADJUSTMENT of
// -on_hand with reason "expired", through ApplyStock like any adjustment (also when the units are
// reserved: the goods are physically unsellable; the rights book's Settle shorts what can no
// longer be filled). Nothing is left to write off the second time.
absl::Status Ledger::Impl::ExpireLots(const RequestContext& ctx, const std::string& request_id,
                                      v1::OperationResult* result) {
  const std::string today = Today();
  struct Place {
    std::string sku, bin, lot;
    int64_t on_hand;
  };
  std::vector<Place> places;
  {
    auto q = w_->Get(
        "SELECT b.sku, b.bin, b.lot, b.on_hand FROM balances b "
        "JOIN lots l ON l.sku = b.sku AND l.lot = b.lot "
        "WHERE b.on_hand > 0 AND b.bin <> 'STAGING' AND l.expiry <> '' AND l.expiry < ? "
        "ORDER BY b.sku, b.lot, b.bin");
    q->bind(1, today);
    while (q->executeStep()) {
      places.push_back({q->getColumn(0).getString(), q->getColumn(1).getString(),
                        q->getColumn(2).getString(), q->getColumn(3).getInt64()});
    }
    q->reset();
  }
  v1::ExpireLotsResult* out = result->mutable_expired();
  out->set_today(today);
  for (const auto& p : places) {
    v1::Operation op;
    auto* a = op.mutable_adjust();
    a->set_sku(p.sku);
    a->set_bin(p.bin);
    a->set_lot(p.lot);
    a->set_quantity(-p.on_hand);
    a->set_reason("expired");
    auto sku = WSku(p.sku);
    if (!sku.ok()) return sku.status();
    if ((*sku)->tracking() == v1::TRACKING_SERIAL) {
      auto q = w_->Get("SELECT serial FROM serials WHERE sku = ? AND bin = ? AND lot = ? "
                       "ORDER BY serial");
      q->bind(1, p.sku);
      q->bind(2, p.bin);
      q->bind(3, p.lot);
      while (q->executeStep()) a->add_serials(q->getColumn(0).getString());
      q->reset();
    }
    if (auto s = ApplyStock(ctx, op, request_id, result); !s.ok()) return s;
    rights_.Touch(p.sku, p.on_hand);
    out->set_balances(out->balances() + 1);
    out->set_units(out->units() + p.on_hand);
  }
  return absl::OkStatus();
}

void Ledger::Impl::FlushWantedRights() {
  static const RequestContext kRights{"rights", "refused-sale"};
  static const std::string kNoRequest;
  const uint64_t seq0 = last_seq_, outbox0 = outbox_seq_;
  try {
    db::WriteTransaction t(*wdb_);
    v1::OperationResult rows;
    TxHandle tx(this, kRights, kNoRequest, &rows);
    if (auto s = rights_.FlushWanted(tx); !s.ok()) {
      spdlog::warn("asking central for rights failed: {}", std::string(s.message()));
      last_seq_ = seq0;
      outbox_seq_ = outbox0;
      rights_.Discard();
      return;
    }
    t.Commit();
  } catch (const std::exception& e) {
    spdlog::warn("asking central for rights failed: {}", e.what());
    last_seq_ = seq0;
    outbox_seq_ = outbox0;
    rights_.Discard();
  }
}

// A stock operation from outside (API, CLI) may not take what orders own: the staging bin holds
// picked goods that only their fulfilment moves or ships, and a reservation whose reference is a
// fulfilment id is released or consumed only by that fulfilment's operations (the fulfilment
// module goes through TxHandle::Stock, which skips this check).
absl::Status Ledger::Impl::CheckNotOrderOwned(const v1::Operation& op) {
  auto staging = [](const std::string& bin) -> absl::Status {
    if (bin != kStagingBin) return absl::OkStatus();
    return absl::FailedPreconditionError(StrCat(
        "bin '", bin, "' holds picked goods of open orders: pick, ship or cancel the order"));
  };
  std::string reference;
  switch (op.op_case()) {
    case v1::Operation::kReceipt: return staging(op.receipt().bin());
    case v1::Operation::kMove:
      if (auto s = staging(op.move().from_bin()); !s.ok()) return s;
      return staging(op.move().to_bin());
    case v1::Operation::kAdjust: return staging(op.adjust().bin());
    case v1::Operation::kScrap: return staging(op.scrap().bin());
    case v1::Operation::kReserve: reference = op.reserve().reference(); break;
    case v1::Operation::kRelease: reference = op.release().reference(); break;
    case v1::Operation::kConsume:
      if (auto s = staging(op.consume().bin()); !s.ok()) return s;
      reference = op.consume().reference();
      break;
    default: return absl::OkStatus();
  }
  if (transfers::IsTransferReference(*w_, reference)) {
    return absl::FailedPreconditionError(
        StrCat("reference '", reference, "' is a transfer: use its ship or cancel"));
  }
  auto q = w_->Get("SELECT 1 FROM fulfilments WHERE fulfilment_id = ?");
  q->bind(1, reference);
  if (q->executeStep()) {
    return absl::FailedPreconditionError(
        StrCat("reference '", reference, "' is an order fulfilment: use its pick, ship, "
               "hand-out or cancel"));
  }
  return absl::OkStatus();
}

absl::Status Ledger::Impl::ApplyStock(const RequestContext& ctx, const v1::Operation& op,
                                      const std::string& request_id,
                                      v1::OperationResult* result) {
  std::string sku_code;
  switch (op.op_case()) {
    case v1::Operation::kReceipt: sku_code = op.receipt().sku(); break;
    case v1::Operation::kMove: sku_code = op.move().sku(); break;
    case v1::Operation::kAdjust: sku_code = op.adjust().sku(); break;
    case v1::Operation::kScrap: sku_code = op.scrap().sku(); break;
    case v1::Operation::kReserve: sku_code = op.reserve().sku(); break;
    case v1::Operation::kRelease: sku_code = op.release().sku(); break;
    case v1::Operation::kConsume: sku_code = op.consume().sku(); break;
    default: return absl::InvalidArgumentError("not a stock operation");
  }
  auto sku_or = WSku(sku_code);
  if (!sku_or.ok()) return sku_or.status();
  const v1::Sku& sku = **sku_or;

  std::vector<v1::Movement> rows;
  v1::Movement m;
  switch (op.op_case()) {
    case v1::Operation::kReceipt: {
      if (auto s = BuildReceipt(sku, op.receipt(), &m); !s.ok()) return s;
      rows.push_back(m);
      break;
    }
    case v1::Operation::kMove: {
      const auto& r = op.move();
      if (auto s = WBin(r.from_bin()); !s.ok()) return s;
      if (auto s = WBin(r.to_bin()); !s.ok()) return s;
      if (r.from_bin() == r.to_bin()) {
        return absl::InvalidArgumentError("from_bin and to_bin are the same");
      }
      if (r.quantity() <= 0) return absl::InvalidArgumentError("quantity must be positive");
      if (auto s = CheckLot(sku, r.lot()); !s.ok()) return s;
      if (auto s = CheckSerials(sku, r.quantity(), r.serials()); !s.ok()) return s;
      auto expiry = ResolveLot(sku, r.lot(), "", /*may_create=*/false);
      if (!expiry.ok()) return expiry.status();
      if (r.to_bin() == kStagingBin && r.from_bin() != kStagingBin) {  // a pick
        if (auto s = CheckNotExpired(sku, r.lot()); !s.ok()) return s;
      }
      m.set_type(v1::MOVE);
      m.set_bin(r.from_bin());
      m.set_to_bin(r.to_bin());
      m.set_lot(r.lot());
      m.set_expiry(*expiry);
      m.set_quantity(r.quantity());
      *m.mutable_serials() = r.serials();
      m.set_reference(r.reference());
      m.set_reason(r.reason());
      rows.push_back(m);
      break;
    }
    case v1::Operation::kAdjust: {
      const auto& r = op.adjust();
      if (auto s = WBin(r.bin()); !s.ok()) return s;
      if (auto s = CheckAdjustment(r.reason(), r.quantity()); !s.ok()) return s;
      if (auto s = CheckLot(sku, r.lot()); !s.ok()) return s;
      if (auto s = CheckSerials(sku, r.quantity(), r.serials()); !s.ok()) return s;
      auto expiry = ResolveLot(sku, r.lot(), r.expiry(), /*may_create=*/r.quantity() > 0);
      if (!expiry.ok()) return expiry.status();
      m.set_type(v1::ADJUSTMENT);
      m.set_bin(r.bin());
      m.set_lot(r.lot());
      m.set_expiry(*expiry);
      m.set_quantity(r.quantity());
      *m.mutable_serials() = r.serials();
      m.set_reason(r.reason());
      m.set_reference(r.reference());
      rows.push_back(m);
      break;
    }
    case v1::Operation::kScrap: {
      const auto& r = op.scrap();
      if (auto s = WBin(r.bin()); !s.ok()) return s;
      if (r.quantity() <= 0) return absl::InvalidArgumentError("quantity must be positive");
      if (auto s = CheckLot(sku, r.lot()); !s.ok()) return s;
      if (auto s = CheckSerials(sku, r.quantity(), r.serials()); !s.ok()) return s;
      auto expiry = ResolveLot(sku, r.lot(), "", /*may_create=*/false);
      if (!expiry.ok()) return expiry.status();
      m.set_type(v1::SCRAP);
      m.set_bin(r.bin());
      m.set_lot(r.lot());
      m.set_expiry(*expiry);
      m.set_quantity(r.quantity());
      *m.mutable_serials() = r.serials();
      m.set_reason(r.reason());
      m.set_reference(r.reference());
      rows.push_back(m);
      break;
    }
    case v1::Operation::kReserve: {
      const auto& r = op.reserve();
      if (auto s = CheckCode("reference", r.reference()); !s.ok()) return s;
      if (r.quantity() <= 0) return absl::InvalidArgumentError("quantity must be positive");
      auto atp = AtpFrom(*w_, sku.code());
      if (!atp.ok()) return atp.status();
      if (r.quantity() > atp->available()) {
        return absl::FailedPreconditionError(
            StrCat("insufficient available-to-promise for SKU '", sku.code(), "': available ",
                   std::max<int64_t>(0, atp->available()), ", requested ", r.quantity()));
      }
      m.set_type(v1::RESERVE);
      m.set_quantity(r.quantity());
      m.set_reference(r.reference());
      rows.push_back(m);
      break;
    }
    case v1::Operation::kRelease:
    case v1::Operation::kConsume: {
      const bool release = op.op_case() == v1::Operation::kRelease;
      const std::string& reference =
          release ? op.release().reference() : op.consume().reference();
      int64_t quantity = release ? op.release().quantity() : op.consume().quantity();
      if (auto s = CheckCode("reference", reference); !s.ok()) return s;
      auto q = w_->Get("SELECT quantity FROM reservations WHERE sku = ? AND reference = ?");
      q->bind(1, sku.code());
      q->bind(2, reference);
      if (!q->executeStep()) {
        return absl::NotFoundError(
            StrCat("no open reservation '", reference, "' for SKU '", sku.code(), "'"));
      }
      const int64_t open = q->getColumn(0).getInt64();
      if (release && quantity == 0) quantity = open;
      if (quantity <= 0) return absl::InvalidArgumentError("quantity must be positive");
      if (quantity > open) {
        return absl::FailedPreconditionError(StrCat("reservation '", reference, "' of SKU '",
                                                    sku.code(), "' has only ", open, " open"));
      }
      if (release) {
        m.set_type(v1::RELEASE);
        m.set_quantity(quantity);
        m.set_reference(reference);
        rows.push_back(m);
      } else {
        if (auto s = BuildConsume(sku, op.consume(), &rows); !s.ok()) return s;
      }
      break;
    }
    default:
      return absl::InvalidArgumentError("empty operation");
  }

  // Rows of one operation share the seq of its first row (also across the stock operations of
  // one fulfilment operation).
  uint64_t op_seq = result->movements_size() > 0 ? result->movements(0).seq() : 0;
  for (auto& row : rows) {
    if (!row.lot().empty() && row.expiry().empty()) {  // every row carries its lot's expiry
      auto expiry = ResolveLot(sku, row.lot(), "", /*may_create=*/false);
      if (!expiry.ok()) return expiry.status();
      row.set_expiry(*expiry);
    }
    row.set_sku(sku.code());
    if (row.reason().empty() && !stock_reason_.empty()) row.set_reason(stock_reason_);
    row.set_operator_id(ctx.operator_id);
    row.set_request_id(request_id);
    row.set_op_seq(op_seq);
    if (auto s = AppendRow(sku, std::move(row), result); !s.ok()) return s;
    op_seq = result->movements(0).seq();
  }
  if (!result->has_atp() || result->atp().sku() != sku.code()) {  // a move changes no total
    auto atp = AtpFrom(*w_, sku.code());
    if (!atp.ok()) return atp.status();
    *result->mutable_atp() = *atp;
  }
  rights_.NoteStock(sku.code(), result->atp());
  return absl::OkStatus();
}

std::vector<absl::StatusOr<v1::OperationResult>> Ledger::Impl::ApplyBatch(
    std::span<const WriteItem> items) {
  std::vector<absl::StatusOr<v1::OperationResult>> results;
  results.reserve(items.size());
  std::lock_guard<std::mutex> lock(write_mu_);
  const uint64_t seq0 = last_seq_, outbox0 = outbox_seq_;
  try {
    db::WriteTransaction tx(*wdb_);
    const bool single = items.size() == 1;
    for (const WriteItem& item : items) {
      const uint64_t seq_before = last_seq_, outbox_before = outbox_seq_;
      if (!single) w_->Get("SAVEPOINT op")->exec();
      absl::StatusOr<v1::OperationResult> r;
      try {
        r = ApplyOne(*item.context, *item.operation);
      } catch (const std::exception& e) {
        r = db::FromException(e);
      }
      if (!r.ok()) {
        last_seq_ = seq_before;
        outbox_seq_ = outbox_before;
        rights_.Discard();
        if (!single) w_->Get("ROLLBACK TO op")->exec();
      }
      if (!single) w_->Get("RELEASE op")->exec();
      results.push_back(std::move(r));
    }
    // A single failed operation: roll the whole transaction back instead of committing.
    if (!(single && !results[0].ok())) tx.Commit();
  } catch (const std::exception& e) {
    last_seq_ = seq0;
    outbox_seq_ = outbox0;
    rights_.Discard();
    absl::Status s = db::FromException(e);
    for (auto& r : results) r = s;
    while (results.size() < items.size()) results.push_back(s);
  }
  if (rights_.HasWanted()) FlushWantedRights();
  return results;
}

// ---------------------------------------------------------------------------------------------
// Master data import

absl::StatusOr<int64_t> Ledger::Impl::ImportSkus(std::string_view text) {
  if (auto s = CheckLocallyManaged(); !s.ok()) return s;
  auto parsed = csv::ParseSkus(text);
  if (!parsed.ok()) return parsed.status();
  const std::vector<v1::Sku>& skus = *parsed;
  std::vector<std::string> errors;
  std::lock_guard<std::mutex> lock(write_mu_);
  try {
    db::WriteTransaction tx(*wdb_);
    for (size_t i = 0; i < skus.size() && errors.size() < 50; ++i) {
      const v1::Sku& sku = skus[i];
      auto q = w_->Get(
          "SELECT s.tracking, s.expiry_tracked, COALESCE(t.on_hand, 0) FROM skus s "
          "LEFT JOIN sku_totals t ON t.sku = s.code WHERE s.code = ?");
      q->bind(1, sku.code());
      if (q->executeStep() && q->getColumn(2).getInt64() != 0 &&
          (q->getColumn(0).getInt() != sku.tracking() ||
           (q->getColumn(1).getInt() != 0) != sku.expiry_tracked())) {
        errors.push_back(StrCat("SKU '", sku.code(),
                                "': tracking cannot change while stock is on hand"));
      }
    }
    if (!errors.empty()) {
      if (errors.size() > 20) errors.resize(20);
      return absl::InvalidArgumentError(
          StrCat("nothing imported: ", absl::StrJoin(errors, "; ")));
    }
    for (const v1::Sku& sku : skus) {
      auto up = w_->Get(
          "INSERT INTO skus(code, gtin, name, unit, tracking, expiry_tracked, allow_negative, "
          "safety_stock, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) "
          "ON CONFLICT(code) DO UPDATE SET gtin = excluded.gtin, name = excluded.name, "
          "unit = excluded.unit, tracking = excluded.tracking, "
          "expiry_tracked = excluded.expiry_tracked, allow_negative = excluded.allow_negative, "
          "safety_stock = excluded.safety_stock, version = skus.version + 1");
      up->bind(1, sku.code());
      up->bind(2, sku.gtin());
      up->bind(3, sku.name());
      up->bind(4, sku.unit());
      up->bind(5, static_cast<int>(sku.tracking()));
      up->bind(6, sku.expiry_tracked() ? 1 : 0);
      up->bind(7, sku.allow_negative() ? 1 : 0);
      up->bind(8, sku.safety_stock());
      up->exec();
    }
    tx.Commit();
    sku_cache_.clear();
  } catch (const std::exception& e) {
    sku_cache_.clear();
    return db::FromException(e);
  }
  return static_cast<int64_t>(skus.size());
}

absl::StatusOr<int64_t> Ledger::Impl::ImportBins(std::string_view text) {
  if (auto s = CheckLocallyManaged(); !s.ok()) return s;
  auto parsed = csv::ParseBins(text, /*with_site=*/false);
  if (!parsed.ok()) return parsed.status();
  const std::vector<v1::Bin>& bins = *parsed;
  std::lock_guard<std::mutex> lock(write_mu_);
  try {
    db::WriteTransaction tx(*wdb_);
    for (const v1::Bin& bin : bins) {
      auto up = w_->Get(
          "INSERT INTO bins(code, zone, walk_order, version) VALUES (?, ?, ?, 1) "
          "ON CONFLICT(code) DO UPDATE SET zone = excluded.zone, "
          "walk_order = excluded.walk_order, version = bins.version + 1");
      up->bind(1, bin.code());
      up->bind(2, bin.zone());
      up->bind(3, bin.walk_order());
      up->exec();
    }
    tx.Commit();
  } catch (const std::exception& e) {
    return db::FromException(e);
  }
  return static_cast<int64_t>(bins.size());
}

// ---------------------------------------------------------------------------------------------
// Reads

absl::StatusOr<v1::Atp> Ledger::Impl::AtpFrom(StmtCache& stmts, const std::string& sku) const {
  auto q = stmts.Get(
      "SELECT s.safety_stock, COALESCE(t.on_hand, 0), COALESCE(t.reserved, 0) FROM skus s "
      "LEFT JOIN sku_totals t ON t.sku = s.code WHERE s.code = ?");
  q->bind(1, sku);
  if (!q->executeStep()) return absl::NotFoundError(StrCat("unknown SKU '", sku, "'"));
  v1::Atp atp;
  atp.set_sku(sku);
  atp.set_safety_stock(q->getColumn(0).getInt64());
  atp.set_on_hand(q->getColumn(1).getInt64());
  atp.set_reserved(q->getColumn(2).getInt64());
  atp.set_available(Available(atp.on_hand(), atp.reserved(), atp.safety_stock()));
  return atp;
}

absl::StatusOr<v1::VerifyResponse> Ledger::Impl::Verify(ReadConn& c) const {
  using Key3 = std::tuple<std::string, std::string, std::string>;
  using Key2 = std::pair<std::string, std::string>;
  std::map<Key3, int64_t> balances;
  std::map<std::string, std::pair<int64_t, int64_t>> totals;  // on hand, reserved
  std::map<Key2, int64_t> reservations;
  std::map<Key2, std::pair<std::string, std::string>> serials;  // (sku, serial) -> (bin, lot)
  v1::VerifyResponse out;
  SQLite::Transaction snapshot(*c.db);  // one consistent read snapshot
  {
    SQLite::Statement q(*c.db, StrCat("SELECT ", kMovementColumns, " FROM movements ORDER BY seq"));
    v1::Movement m;
    uint64_t expect = 1;
    while (q.executeStep()) {
      m.Clear();
      ReadMovement(q, &m);
      if (m.seq() != expect) {
        auto* d = out.add_differences();
        d->set_what("sequence");
        d->set_key(StrCat("seq ", expect));
        d->set_stored(m.seq());
        d->set_recomputed(expect);
      }
      expect = m.seq() + 1;
      out.set_movements(out.movements() + 1);
      MovementEffects fx = EffectsOf(m);
      auto& t = totals[m.sku()];
      for (int i = 0; i < fx.stock_count; ++i) {
        balances[{m.sku(), fx.stock[i].bin, m.lot()}] += fx.stock[i].delta;
        t.first += fx.stock[i].delta;
        for (const auto& s : m.serials()) {
          if (fx.stock[i].delta < 0) serials.erase({m.sku(), s});
          else serials[{m.sku(), s}] = {fx.stock[i].bin, m.lot()};
        }
      }
      if (fx.reserved_delta != 0) {
        reservations[{m.sku(), m.reference()}] += fx.reserved_delta;
        t.second += fx.reserved_delta;
      }
    }
  }
  auto diff = [&](const char* what, std::string key, int64_t stored, int64_t recomputed) {
    if (stored == recomputed) return;
    if (out.differences_size() >= 1000) return;
    auto* d = out.add_differences();
    d->set_what(what);
    d->set_key(std::move(key));
    d->set_stored(stored);
    d->set_recomputed(recomputed);
  };
  {
    std::map<Key3, int64_t> stored;
    SQLite::Statement q(*c.db, "SELECT sku, bin, lot, on_hand FROM balances");
    while (q.executeStep()) {
      stored[{q.getColumn(0).getString(), q.getColumn(1).getString(),
              q.getColumn(2).getString()}] = q.getColumn(3).getInt64();
    }
    out.set_balances(stored.size());
    for (auto& [k, v] : balances) {
      auto it = stored.find(k);
      diff("balance", StrCat(std::get<0>(k), "/", std::get<1>(k), "/", std::get<2>(k)),
           it == stored.end() ? 0 : it->second, v);
      if (it != stored.end()) stored.erase(it);
    }
    for (auto& [k, v] : stored) {
      diff("balance", StrCat(std::get<0>(k), "/", std::get<1>(k), "/", std::get<2>(k)), v, 0);
    }
  }
  {
    std::map<std::string, std::pair<int64_t, int64_t>> stored;
    SQLite::Statement q(*c.db, "SELECT sku, on_hand, reserved FROM sku_totals");
    while (q.executeStep()) {
      stored[q.getColumn(0).getString()] = {q.getColumn(1).getInt64(), q.getColumn(2).getInt64()};
    }
    for (auto& [sku, v] : totals) {
      auto s = stored.count(sku) ? stored[sku] : std::pair<int64_t, int64_t>{0, 0};
      diff("on_hand", sku, s.first, v.first);
      diff("reserved", sku, s.second, v.second);
      stored.erase(sku);
    }
    for (auto& [sku, v] : stored) {
      diff("on_hand", sku, v.first, 0);
      diff("reserved", sku, v.second, 0);
    }
  }
  {
    std::map<Key2, int64_t> stored;
    SQLite::Statement q(*c.db, "SELECT sku, reference, quantity FROM reservations");
    while (q.executeStep()) {
      stored[{q.getColumn(0).getString(), q.getColumn(1).getString()}] = q.getColumn(2).getInt64();
    }
    for (auto& [k, v] : reservations) {
      auto it = stored.find(k);
      diff("reservation", StrCat(k.first, "/", k.second), it == stored.end() ? 0 : it->second, v);
      if (it != stored.end()) stored.erase(it);
    }
    for (auto& [k, v] : stored) diff("reservation", StrCat(k.first, "/", k.second), v, 0);
  }
  {
    // Every fulfilment's lines account for exactly its open reservation.
    auto lines = fulfilment::LineReservations(*c.stmts);
    if (!lines.ok()) return lines.status();
    for (auto& [k, v] : *lines) {
      auto it = reservations.find(k);
      diff("fulfilment_reserved", StrCat(k.first, "/", k.second), v,
           it == reservations.end() ? 0 : it->second);
    }
  }
  {
    std::map<Key2, std::pair<std::string, std::string>> stored;
    SQLite::Statement q(*c.db, "SELECT sku, serial, bin, lot FROM serials");
    while (q.executeStep()) {
      stored[{q.getColumn(0).getString(), q.getColumn(1).getString()}] = {
          q.getColumn(2).getString(), q.getColumn(3).getString()};
    }
    for (auto& [k, v] : serials) {
      auto it = stored.find(k);
      diff("serial", StrCat(k.first, "/", k.second, " in ", v.first),
           it != stored.end() && it->second == v ? 1 : 0, 1);
      if (it != stored.end()) stored.erase(it);
    }
    for (auto& [k, v] : stored) diff("serial", StrCat(k.first, "/", k.second, " in ", v.first), 1, 0);
  }
  {
    // Selling rights: both conservation identities per SKU, the book's stock equal to the
    // recomputed totals, and no over-claim beyond a reported loss (invariants 2 and 3).
    auto violations = RightsBook::Verify(*c.stmts);
    if (!violations.ok()) return violations.status();
    for (const auto& v : *violations) {
      auto* d = out.add_differences();
      d->set_what("rights");
      d->set_key(v);
    }
    auto books = RightsBook::List(*c.stmts, "");
    if (!books.ok()) return books.status();
    for (const auto& b : *books) {
      auto it = totals.find(b.sku());
      const int64_t on_hand = it == totals.end() ? 0 : it->second.first;
      if (on_hand != b.on_hand()) diff("rights_on_hand", b.sku(), b.on_hand(), on_hand);
    }
  }
  out.set_ok(out.differences_size() == 0);
  return out;
}

absl::Status Ledger::Impl::TrimOutbox(uint64_t acked) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (acked > outbox_seq_) {
    return absl::InvalidArgumentError(
        StrCat("ack ", acked, " is beyond the last event ", outbox_seq_.load()));
  }
  if (acked <= outbox_acked_) return absl::OkStatus();
  try {
    db::WriteTransaction tx(*wdb_);
    auto del = w_->Get("DELETE FROM outbox WHERE seq <= ?");
    del->bind(1, static_cast<int64_t>(acked));
    del->exec();
    auto up = w_->Get("UPDATE meta SET value = ? WHERE key = 'outbox_acked'");
    up->bind(1, std::to_string(acked));
    up->exec();
    tx.Commit();
    outbox_acked_ = acked;
  } catch (const std::exception& e) {
    return db::FromException(e);
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Ledger::Impl::ApplyFeed(const std::vector<v1::FeedEntry>& entries) {
  std::lock_guard<std::mutex> lock(write_mu_);
  uint64_t mark = feed_mark_;
  const uint64_t seq0 = last_seq_, outbox0 = outbox_seq_;
  static const RequestContext kCentral{"central", "feed"};
  static const std::string kNoRequest;
  auto fail = [&](absl::Status s) {
    last_seq_ = seq0;
    outbox_seq_ = outbox0;
    sku_cache_.clear();
    bin_cache_.clear();
    rights_.Discard();
    (void)rights_.Load(*w_, node_id_, central_managed_, options_.selling_rights);  // undo policy changes in memory
    return s;
  };
  try {
    db::WriteTransaction tx(*wdb_);
    v1::OperationResult feed_rows;
    TxHandle feed_tx(this, kCentral, kNoRequest, &feed_rows);
    for (const v1::FeedEntry& e : entries) {
      if (e.seq() <= mark) continue;      // duplicate
      if (e.seq() != mark + 1) break;     // gap: wait for the missing entry
      if (!central_managed_ && mark == feed_mark_) {
        // Joining central: the default split policy changes from "everything local".
        if (auto s = rights_.BecomeCentralManaged(feed_tx); !s.ok()) return fail(s);
      }
      absl::Status rs;
      switch (e.body_case()) {
        case v1::FeedEntry::kRightsRelease: rs = rights_.ApplyRelease(feed_tx, e.rights_release()); break;
        case v1::FeedEntry::kRightsRequest: rs = rights_.ApplyRequest(feed_tx, e.rights_request()); break;
        case v1::FeedEntry::kRightsPolicy: rs = rights_.ApplyPolicy(feed_tx, e.rights_policy()); break;
        case v1::FeedEntry::kSite: rs = rights_.ApplySite(feed_tx, e.site()); break;
        case v1::FeedEntry::kSku: rights_.Touch(e.sku().code()); break;  // safety stock may change
        default: break;
      }
      if (!rs.ok()) return fail(rs);
      switch (e.body_case()) {
        case v1::FeedEntry::kRelease:
        case v1::FeedEntry::kCancel: {
          // Orders for this site: the node decides, in this transaction (node/fulfilment.h).
          v1::OperationResult rows;
          TxHandle handle(this, kCentral, kNoRequest, &rows);
          absl::Status s = e.body_case() == v1::FeedEntry::kRelease
                               ? fulfilment::ApplyRelease(handle, e.release())
                               : fulfilment::ApplyCancel(handle, e.cancel());
          if (!s.ok()) return fail(s);  // storage trouble: the transaction rolls back
          break;
        }
        case v1::FeedEntry::kSku: {
          const v1::Sku& k = e.sku();
          auto up = w_->Get(
              "INSERT INTO skus(code, gtin, name, unit, tracking, expiry_tracked, allow_negative, "
              "safety_stock, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
              "ON CONFLICT(code) DO UPDATE SET gtin = excluded.gtin, name = excluded.name, "
              "unit = excluded.unit, tracking = excluded.tracking, "
              "expiry_tracked = excluded.expiry_tracked, allow_negative = excluded.allow_negative, "
              "safety_stock = excluded.safety_stock, version = excluded.version");
          up->bind(1, k.code());
          up->bind(2, k.gtin());
          up->bind(3, k.name());
          up->bind(4, k.unit().empty() ? std::string("ea") : k.unit());
          up->bind(5, static_cast<int>(k.tracking() == v1::TRACKING_UNSPECIFIED
                                           ? v1::TRACKING_NONE
                                           : k.tracking()));
          up->bind(6, k.expiry_tracked() ? 1 : 0);
          up->bind(7, k.allow_negative() ? 1 : 0);
          up->bind(8, k.safety_stock());
          up->bind(9, static_cast<int64_t>(k.version()));
          up->exec();
          sku_cache_.erase(k.code());  // a release later in this batch sees the new row
          break;
        }
        case v1::FeedEntry::kReturnAuthorisation:  // node/returns.h: an RMA, kept once
          returns::ApplyAuthorisation(*w_, node_id_, e.return_authorisation());
          break;
        case v1::FeedEntry::kPurchaseOrder:  // node/receiving.h: newer version wins
          receiving::ApplyFeed(*w_, e.purchase_order());
          break;
        case v1::FeedEntry::kTransfer: {  // node/transfers.h: newer version wins
          v1::OperationResult rows;
          TxHandle handle(this, kCentral, kNoRequest, &rows);
          if (auto s = transfers::ApplyFeed(handle, e.transfer()); !s.ok()) return fail(s);
          break;
        }
        case v1::FeedEntry::kBin: {
          const v1::Bin& b = e.bin();
          auto up = w_->Get(
              "INSERT INTO bins(code, zone, walk_order, version) VALUES (?, ?, ?, ?) "
              "ON CONFLICT(code) DO UPDATE SET zone = excluded.zone, "
              "walk_order = excluded.walk_order, version = excluded.version");
          up->bind(1, b.code());
          up->bind(2, b.zone());
          up->bind(3, b.walk_order());
          up->bind(4, static_cast<int64_t>(b.version()));
          up->exec();
          break;
        }
        default:  // rights (above), sites and kinds this version does not know: nothing more
          break;
      }
      if (auto st = rights_.Settle(feed_tx); !st.ok()) return fail(st);
      mark = e.seq();
    }
    if (mark != feed_mark_) {
      auto up = w_->Get(
          "INSERT INTO meta(key, value) VALUES (?, ?) "
          "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
      up->bind(1, "feed_applied");
      up->bind(2, std::to_string(mark));
      up->exec();
      up->reset();
      up->bind(1, "central_managed");
      up->bind(2, "1");
      up->exec();
    }
    tx.Commit();
  } catch (const std::exception& e) {
    return fail(db::FromException(e));
  }
  if (mark != feed_mark_) {
    feed_mark_ = mark;
    central_managed_ = true;
    sku_cache_.clear();
    bin_cache_.clear();
  }
  return mark;
}

// ---------------------------------------------------------------------------------------------
// Ledger

Ledger::Ledger(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Ledger::~Ledger() = default;

absl::StatusOr<std::unique_ptr<Ledger>> Ledger::Open(const LedgerOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  if (auto s = impl->Init(); !s.ok()) return s;
  return std::unique_ptr<Ledger>(new Ledger(std::move(impl)));
}

absl::StatusOr<v1::OperationResult> Ledger::Apply(const RequestContext& context,
                                                  const v1::Operation& operation) {
  WriteItem item{&context, &operation};
  return std::move(impl_->ApplyBatch(std::span<const WriteItem>(&item, 1))[0]);
}

std::vector<absl::StatusOr<v1::OperationResult>> Ledger::ApplyBatch(
    std::span<const WriteItem> items) {
  return impl_->ApplyBatch(items);
}

absl::StatusOr<int64_t> Ledger::ImportSkus(std::string_view csv_text) {
  return impl_->ImportSkus(csv_text);
}
absl::StatusOr<int64_t> Ledger::ImportBins(std::string_view csv_text) {
  return impl_->ImportBins(csv_text);
}

absl::StatusOr<v1::Sku> Ledger::GetSku(const std::string& code) const {
  return impl_->Read([&](ReadConn& c) -> absl::StatusOr<v1::Sku> {
    auto q = c.stmts->Get("SELECT code, gtin, name, unit, tracking, expiry_tracked, "
                          "allow_negative, safety_stock, version FROM skus WHERE code = ?");
    q->bind(1, code);
    if (!q->executeStep()) return absl::NotFoundError(StrCat("unknown SKU '", code, "'"));
    v1::Sku sku;
    ReadSku(*q, &sku);
    return sku;
  });
}

absl::StatusOr<v1::SkusResponse> Ledger::ListSkus(const std::string& after,
                                                   uint32_t limit) const {
  limit = std::clamp<uint32_t>(limit, 1, 1000);
  return impl_->Read([&](ReadConn& c) -> absl::StatusOr<v1::SkusResponse> {
    auto q = c.stmts->Get("SELECT code, gtin, name, unit, tracking, expiry_tracked, "
                          "allow_negative, safety_stock, version FROM skus WHERE code > ? "
                          "ORDER BY code LIMIT ?");
    q->bind(1, after);
    q->bind(2, static_cast<int>(limit));
    v1::SkusResponse out;
    while (q->executeStep()) ReadSku(*q, out.add_skus());
    return out;
  });
}

absl::StatusOr<std::vector<std::string>> Ledger::SkuCodesByGtin(
    const std::vector<std::string>& gtins) const {
  return impl_->Read([&](ReadConn& c) -> absl::StatusOr<std::vector<std::string>> {
    std::set<std::string> codes;
    auto q = c.stmts->Get("SELECT code FROM skus WHERE gtin = ?");
    for (const auto& g : gtins) {
      q->reset();
      q->bind(1, g);
      while (q->executeStep()) codes.insert(q->getColumn(0).getString());
    }
    return std::vector<std::string>(codes.begin(), codes.end());
  });
}

absl::StatusOr<v1::BinsResponse> Ledger::ListBins() const {
  return impl_->Read([&](ReadConn& c) -> absl::StatusOr<v1::BinsResponse> {
    auto q = c.stmts->Get(
        "SELECT code, zone, walk_order, version FROM bins WHERE code <> 'STAGING' "
        "ORDER BY walk_order, code");
    v1::BinsResponse out;
    while (q->executeStep()) {
      auto* b = out.add_bins();
      b->set_code(q->getColumn(0).getString());
      b->set_zone(q->getColumn(1).getString());
      b->set_walk_order(q->getColumn(2).getInt64());
      b->set_version(q->getColumn(3).getInt64());
    }
    return out;
  });
}

absl::StatusOr<v1::NodeRightsResponse> Ledger::ListRights(const std::string& sku) const {
  return impl_->Read([&](ReadConn& c) -> absl::StatusOr<v1::NodeRightsResponse> {
    if (!sku.empty()) {
      auto q = c.stmts->Get("SELECT 1 FROM skus WHERE code = ?");
      q->bind(1, sku);
      if (!q->executeStep()) return absl::NotFoundError(StrCat("unknown SKU '", sku, "'"));
    }
    auto books = RightsBook::List(*c.stmts, sku);
    if (!books.ok()) return books.status();
    v1::NodeRightsResponse out;
    for (auto& b : *books) *out.add_books() = std::move(b);
    std::lock_guard<std::mutex> lock(impl_->write_mu_);  // the policy lives on the write side
    *out.mutable_policy() = impl_->rights_.Policy();
    return out;
  });
}

absl::StatusOr<v1::RightsHistoryResponse> Ledger::RightsHistory(const std::string& sku,
                                                               uint32_t limit) const {
  return impl_->Read([&](ReadConn& c) { return RightsBook::History(*c.stmts, sku, limit); });
}

absl::StatusOr<v1::Atp> Ledger::GetAtp(const std::string& sku) const {
  return impl_->Read([&](ReadConn& c) { return impl_->AtpFrom(*c.stmts, sku); });
}

absl::StatusOr<v1::StockResponse> Ledger::GetStock(const std::string& sku,
                                                   const std::string& bin) const {
  if (sku.empty() && bin.empty()) return absl::InvalidArgumentError("name a sku or a bin");
  return impl_->Read([&](ReadConn& c) -> absl::StatusOr<v1::StockResponse> {
    v1::StockResponse out;
    SQLite::Transaction snapshot(*c.db);
    if (!sku.empty()) {
      auto atp = impl_->AtpFrom(*c.stmts, sku);
      if (!atp.ok()) return atp.status();
      *out.mutable_atp() = *atp;
    }
    if (!bin.empty()) {
      auto q = c.stmts->Get("SELECT 1 FROM bins WHERE code = ?");
      q->bind(1, bin);
      if (!q->executeStep()) return absl::NotFoundError(StrCat("unknown bin '", bin, "'"));
    }
    std::string sql =
        "SELECT b.sku, b.bin, b.lot, COALESCE(l.expiry, ''), b.on_hand FROM balances b "
        "LEFT JOIN lots l ON l.sku = b.sku AND l.lot = b.lot "
        "LEFT JOIN bins n ON n.code = b.bin WHERE 1";
    if (!sku.empty()) sql += " AND b.sku = ?1";
    if (!bin.empty()) sql += " AND b.bin = ?2";
    sql += " ORDER BY b.sku, n.walk_order, b.bin, b.lot";
    SQLite::Statement q(*c.db, sql);
    if (!sku.empty()) q.bind(1, sku);
    if (!bin.empty()) q.bind(2, bin);
    while (q.executeStep()) {
      auto* b = out.add_balances();
      b->set_sku(q.getColumn(0).getString());
      b->set_bin(q.getColumn(1).getString());
      b->set_lot(q.getColumn(2).getString());
      b->set_expiry(q.getColumn(3).getString());
      b->set_on_hand(q.getColumn(4).getInt64());
    }
    return out;
  });
}

absl::StatusOr<v1::MovementsResponse> Ledger::ListMovements(const MovementFilter& f) const {
  const uint32_t limit = std::clamp<uint32_t>(f.limit == 0 ? 100 : f.limit, 1, 1000);
  return impl_->Read([&](ReadConn& c) -> absl::StatusOr<v1::MovementsResponse> {
    std::string sql = StrCat("SELECT ", kMovementColumns, " FROM movements WHERE seq > ?1");
    if (!f.sku.empty()) sql += " AND sku = ?2";
    if (!f.bin.empty()) sql += " AND (bin = ?3 OR to_bin = ?3)";
    if (!f.lot.empty()) sql += " AND lot = ?4";
    if (!f.reference.empty()) sql += " AND reference = ?5";
    if (!f.operator_id.empty()) sql += " AND operator = ?6";
    if (f.type != v1::MOVEMENT_TYPE_UNSPECIFIED) sql += " AND type = ?7";
    sql += " ORDER BY seq LIMIT ?8";
    SQLite::Statement q(*c.db, sql);
    q.bind(1, static_cast<int64_t>(f.after_seq));
    if (!f.sku.empty()) q.bind(2, f.sku);
    if (!f.bin.empty()) q.bind(3, f.bin);
    if (!f.lot.empty()) q.bind(4, f.lot);
    if (!f.reference.empty()) q.bind(5, f.reference);
    if (!f.operator_id.empty()) q.bind(6, f.operator_id);
    if (f.type != v1::MOVEMENT_TYPE_UNSPECIFIED) q.bind(7, static_cast<int>(f.type));
    q.bind(8, static_cast<int>(limit + 1));
    v1::MovementsResponse out;
    while (q.executeStep()) {
      if (static_cast<uint32_t>(out.movements_size()) == limit) {
        out.set_next_after_seq(out.movements(out.movements_size() - 1).seq());
        break;
      }
      ReadMovement(q, out.add_movements());
    }
    return out;
  });
}

absl::StatusOr<v1::LotResponse> Ledger::GetLot(const std::string& sku, const std::string& lot,
                                               uint64_t after_seq, uint32_t limit) const {
  if (sku.empty() || lot.empty()) return absl::InvalidArgumentError("name a sku and a lot");
  auto out = impl_->Read([&](ReadConn& c) -> absl::StatusOr<v1::LotResponse> {
    SQLite::Transaction snapshot(*c.db);
    auto q = c.stmts->Get("SELECT expiry FROM lots WHERE sku = ? AND lot = ?");
    q->bind(1, sku);
    q->bind(2, lot);
    if (!q->executeStep()) {
      return absl::NotFoundError(StrCat("unknown lot '", lot, "' of SKU '", sku, "'"));
    }
    v1::LotResponse r;
    r.set_sku(sku);
    r.set_lot(lot);
    r.set_expiry(q->getColumn(0).getString());
    q->reset();
    r.set_expired(LotExpired(r.expiry(), impl_->Today()));
    auto b = c.stmts->Get(
        "SELECT b.bin, b.on_hand FROM balances b LEFT JOIN bins n ON n.code = b.bin "
        "WHERE b.sku = ? AND b.lot = ? AND b.on_hand <> 0 ORDER BY n.walk_order, b.bin");
    b->bind(1, sku);
    b->bind(2, lot);
    while (b->executeStep()) {
      auto* bal = r.add_balances();
      bal->set_sku(sku);
      bal->set_bin(b->getColumn(0).getString());
      bal->set_lot(lot);
      bal->set_expiry(r.expiry());
      bal->set_on_hand(b->getColumn(1).getInt64());
      r.set_on_hand(r.on_hand() + bal->on_hand());
    }
    b->reset();
    return r;
  });
  if (!out.ok()) return out.status();
  MovementFilter f;
  f.sku = sku;
  f.lot = lot;
  f.after_seq = after_seq;
  f.limit = limit;
  auto moves = ListMovements(f);
  if (!moves.ok()) return moves.status();
  *out->mutable_movements() = std::move(*moves->mutable_movements());
  out->set_next_after_seq(moves->next_after_seq());
  return out;
}

absl::StatusOr<v1::ReservationsResponse> Ledger::ListReservations(const std::string& sku) const {
  return impl_->Read([&](ReadConn& c) -> absl::StatusOr<v1::ReservationsResponse> {
    SQLite::Statement q(*c.db, sku.empty()
                                   ? "SELECT sku, reference, quantity FROM reservations "
                                     "ORDER BY sku, reference LIMIT 10000"
                                   : "SELECT sku, reference, quantity FROM reservations "
                                     "WHERE sku = ? ORDER BY reference");
    if (!sku.empty()) q.bind(1, sku);
    v1::ReservationsResponse out;
    while (q.executeStep()) {
      auto* r = out.add_reservations();
      r->set_sku(q.getColumn(0).getString());
      r->set_reference(q.getColumn(1).getString());
      r->set_quantity(q.getColumn(2).getInt64());
    }
    return out;
  });
}

absl::StatusOr<v1::FulfilmentsResponse> Ledger::ListFulfilments(v1::FulfilmentStatus status,
                                                                  const std::string& wave_id,
                                                                  uint32_t limit) const {
  return impl_->Read([&](ReadConn& c) {
    return fulfilment::List(*c.stmts, {.status = status, .wave_id = wave_id, .limit = limit});
  });
}

absl::StatusOr<v1::NodeFulfilment> Ledger::GetFulfilment(const std::string& id) const {
  return impl_->Read([&](ReadConn& c) { return fulfilment::Get(*c.stmts, id); });
}

absl::StatusOr<v1::WavesResponse> Ledger::ListWaves(uint32_t limit) const {
  return impl_->Read([&](ReadConn& c) { return fulfilment::ListWaves(*c.stmts, limit); });
}

absl::StatusOr<v1::Wave> Ledger::GetWave(const std::string& id) const {
  return impl_->Read([&](ReadConn& c) { return fulfilment::GetWave(*c.stmts, id); });
}

absl::StatusOr<std::map<int, int64_t>> Ledger::FulfilmentCounts() const {
  return impl_->Read([&](ReadConn& c) { return fulfilment::CountByStatus(*c.stmts); });
}

absl::StatusOr<v1::ListTransfersResponse> Ledger::ListTransfers(
    const v1::ListTransfersRequest& request) const {
  return impl_->Read([&](ReadConn& c) { return transfers::List(*c.stmts, request); });
}

absl::StatusOr<v1::Transfer> Ledger::GetTransfer(const std::string& transfer_id) const {
  return impl_->Read([&](ReadConn& c) { return transfers::Get(*c.stmts, transfer_id); });
}

absl::StatusOr<v1::CountsResponse> Ledger::ListCounts(v1::CountStatus status,
                                                      uint32_t limit) const {
  return impl_->Read([&](ReadConn& c) { return counts::List(*c.stmts, status, limit); });
}

absl::StatusOr<v1::ListPurchaseOrdersResponse> Ledger::ListPurchaseOrders(
    v1::PurchaseOrderStatus status, uint32_t limit) const {
  return impl_->Read([&](ReadConn& c) { return receiving::List(*c.stmts, status, limit); });
}

absl::StatusOr<v1::PurchaseOrder> Ledger::GetPurchaseOrder(const std::string& po_id) const {
  return impl_->Read([&](ReadConn& c) { return receiving::Get(*c.stmts, po_id); });
}

absl::StatusOr<v1::PutawaySuggestion> Ledger::SuggestPutaway(const std::string& sku,
                                                             const std::string& lot) const {
  return impl_->Read([&](ReadConn& c) { return receiving::SuggestPutaway(*c.stmts, sku, lot); });
}

absl::StatusOr<v1::CountTask> Ledger::GetCount(const std::string& count_id) const {
  return impl_->Read([&](ReadConn& c) { return counts::Get(*c.stmts, count_id); });
}

absl::StatusOr<v1::CountKpi> Ledger::CountKpi(uint32_t days) const {
  uint64_t since = 0;
  if (days > 0) {
    const int64_t now_ms = impl_->options_.clock->NowMicros() / 1000;
    const int64_t since_ms = std::max<int64_t>(0, now_ms - int64_t{days} * 86400000);
    since = static_cast<uint64_t>(since_ms) << 16;
  }
  auto k = impl_->Read([&](ReadConn& c) { return counts::Kpi(*c.stmts, since); });
  if (k.ok()) k->set_site(impl_->node_id_);
  return k;
}

absl::StatusOr<v1::ReturnsResponse> Ledger::ListReturns(v1::ReturnStatus status,
                                                       uint32_t limit) const {
  return impl_->Read([&](ReadConn& c) { return returns::List(*c.stmts, status, limit); });
}

absl::StatusOr<v1::Return> Ledger::GetReturn(const std::string& return_id) const {
  return impl_->Read([&](ReadConn& c) { return returns::Get(*c.stmts, return_id); });
}

absl::StatusOr<v1::VerifyResponse> Ledger::Verify() const {
  return impl_->Read([&](ReadConn& c) { return impl_->Verify(c); });
}

v1::NodeStatus Ledger::Status() const {
  v1::NodeStatus s;
  s.set_node_id(impl_->node_id_);
  s.set_epoch(impl_->epoch_);
  s.set_last_seq(impl_->last_seq_);
  s.set_outbox_depth(OutboxDepth());
  s.set_hlc(impl_->hlc_.Last());
  return s;
}

uint64_t Ledger::LastSeq() const { return impl_->last_seq_; }
uint64_t Ledger::OutboxDepth() const {
  return impl_->outbox_seq_ - std::max<uint64_t>(impl_->outbox_acked_, impl_->noted_acked_);
}

void Ledger::NoteAcked(uint64_t acked_seq) {
  uint64_t cur = impl_->noted_acked_.load();
  while (acked_seq > cur && !impl_->noted_acked_.compare_exchange_weak(cur, acked_seq)) {
  }
}

absl::StatusOr<std::vector<v1::Event>> Ledger::ReadOutbox(uint64_t after_seq,
                                                          uint32_t limit) const {
  return impl_->Read([&](ReadConn& c) -> absl::StatusOr<std::vector<v1::Event>> {
    auto q = c.stmts->Get(
        "SELECT o.seq, o.payload, m.seq, m.op_seq, m.hlc, m.type, m.sku, m.bin, m.to_bin, m.lot, "
        "m.expiry, m.quantity, m.serials, m.reason, m.reference, m.operator, m.request_id "
        "FROM outbox o LEFT JOIN movements m ON m.seq = o.movement_seq "
        "WHERE o.seq > ? ORDER BY o.seq LIMIT ?");
    q->bind(1, static_cast<int64_t>(after_seq));
    q->bind(2, static_cast<int>(limit));
    std::vector<v1::Event> out;
    while (q->executeStep()) {
      v1::Event e;
      if (q->isColumnNull(2)) {
        auto col = q->getColumn(1);
        if (!e.ParseFromArray(col.getBlob(), col.getBytes())) {
          return absl::DataLossError("corrupt outbox event");
        }
      } else {
        ReadMovement(*q, e.mutable_movement(), 2);
        e.set_hlc(e.movement().hlc());
      }
      e.set_node_id(impl_->node_id_);
      e.set_epoch(impl_->epoch_);
      e.set_seq(q->getColumn(0).getInt64());
      out.push_back(std::move(e));
    }
    return out;
  });
}

absl::Status Ledger::TrimOutbox(uint64_t acked_seq) { return impl_->TrimOutbox(acked_seq); }
uint64_t Ledger::LastEventSeq() const { return impl_->outbox_seq_; }
uint64_t Ledger::OutboxAcked() const { return impl_->outbox_acked_; }
uint64_t Ledger::FeedMark() const { return impl_->feed_mark_; }

absl::Status Ledger::ConfirmEpoch() {
  if (impl_->epoch_confirmed_) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(impl_->write_mu_);
  try {
    auto up = impl_->w_->Get(
        "INSERT INTO meta(key, value) VALUES ('confirmed_epoch', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    up->bind(1, std::to_string(impl_->epoch_));
    up->exec();
  } catch (const std::exception& e) {
    return db::FromException(e);
  }
  impl_->epoch_confirmed_ = true;
  return absl::OkStatus();
}

namespace {
std::vector<std::pair<uint64_t, uint64_t>> ParseChain(const std::string& text) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (auto part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, ':');
    out.emplace_back(std::stoull(kv.first), std::stoull(kv.second));
  }
  return out;
}
}  // namespace

Ledger::Identity Ledger::GetIdentity() const {
  Identity id{impl_->node_id_, impl_->epoch_, impl_->previous_epoch_, impl_->previous_last_seq_,
              ParseChain(impl_->epoch_chain_)};
  return id;
}

absl::StatusOr<uint64_t> Ledger::ApplyFeed(const std::vector<v1::FeedEntry>& entries) {
  return impl_->ApplyFeed(entries);
}

absl::Status Ledger::RestoreFromBackup(const std::string& backup_path,
                                       const std::string& target_path) {
  try {
    SQLite::Database src(backup_path, SQLite::OPEN_READONLY);
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(target_path + suffix);
    }
    {
      SQLite::Database dst(target_path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
      SQLite::Backup backup(dst, src);
      backup.executeStep();  // all pages
    }
    auto db = db::Open({.path = target_path});
    if (!db.ok()) return db.status();
    db::WriteTransaction tx(**db);
    auto get = [&](const char* key) -> uint64_t {
      SQLite::Statement q(**db, "SELECT value FROM meta WHERE key = ?");
      q.bind(1, key);
      return q.executeStep() ? std::stoull(q.getColumn(0).getString()) : 0;
    };
    const uint64_t old_epoch = get("epoch");
    if (old_epoch == 0) {
      return absl::FailedPreconditionError(
          StrCat(backup_path, " is not a depot-node database (no epoch)"));
    }
    const uint64_t acked = get("outbox_acked");
    const uint64_t max_outbox =
        (*db)->execAndGet("SELECT COALESCE(MAX(seq), 0) FROM outbox").getInt64();
    // The restored history continues the backup's epoch up to its last event. If central had
    // not accepted that epoch when the backup was taken, keep the backup's own chain too, so
    // central can find the newest epoch it knows (restores while offline, repeated).
    const uint64_t previous = old_epoch, previous_last = std::max(acked, max_outbox);
    std::string chain = StrCat(previous, ":", previous_last);
    if (get("confirmed_epoch") != old_epoch) {
      SQLite::Statement q(**db, "SELECT value FROM meta WHERE key = 'epoch_chain'");
      if (q.executeStep()) {
        auto older = ParseChain(q.getColumn(0).getString());
        for (size_t i = 0; i < older.size() && i < 15; ++i) {
          absl::StrAppend(&chain, ",", older[i].first, ":", older[i].second);
        }
      }
    }
    SQLite::Statement up(**db,
                         "INSERT INTO meta(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    for (auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
             {"previous_epoch", std::to_string(previous)},
             {"previous_last_seq", std::to_string(previous_last)},
             {"epoch_chain", chain},
             {"epoch", std::to_string(NewEpoch())}}) {
      up.bind(1, k);
      up.bind(2, v);
      up.exec();
      up.reset();
    }
    tx.Commit();
  } catch (const std::exception& e) {
    return db::FromException(e);
  }
  return absl::OkStatus();
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
    case v1::Operation::kWave: return op.wave().request_id();
    case v1::Operation::kPick: return op.pick().request_id();
    case v1::Operation::kShortPick: return op.short_pick().request_id();
    case v1::Operation::kPack: return op.pack().request_id();
    case v1::Operation::kShip: return op.ship().request_id();
    case v1::Operation::kLocalOrder: return op.local_order().request_id();
    case v1::Operation::kHandOut: return op.hand_out().request_id();
    case v1::Operation::kTransferCreate: return op.transfer_create().request_id();
    case v1::Operation::kTransferShip: return op.transfer_ship().request_id();
    case v1::Operation::kTransferReceive: return op.transfer_receive().request_id();
    case v1::Operation::kCountCreate: return op.count_create().request_id();
    case v1::Operation::kCountStart: return op.count_start().request_id();
    case v1::Operation::kCountSubmit: return op.count_submit().request_id();
    case v1::Operation::kCountReview: return op.count_review().request_id();
    case v1::Operation::kCountGenerate: return op.count_generate().request_id();
    case v1::Operation::kPoReceive: return op.po_receive().request_id();
    case v1::Operation::kReturnReceive: return op.return_receive().request_id();
    case v1::Operation::kReturnDispose: return op.return_dispose().request_id();
    case v1::Operation::kReturnRefund: return op.return_refund().request_id();
    case v1::Operation::kExpireLots: return op.expire_lots().request_id();
    default: return "";
  }
}

}  // namespace depot::node
