#include "node/transfers.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/stock_rules.h"
#include "spdlog/spdlog.h"

namespace depot::node::transfers {
namespace {

using absl::StrCat;

std::string StatusName(v1::TransferStatus s) {
  switch (s) {
    case v1::TRANSFER_REQUESTED: return "requested";
    case v1::TRANSFER_SHIPPED: return "shipped";
    case v1::TRANSFER_RECEIVED: return "received";
    case v1::TRANSFER_RECEIVED_WITH_VARIANCE: return "received with variance";
    case v1::TRANSFER_CANCELLED: return "cancelled";
    default: return "unknown";
  }
}

std::optional<v1::Transfer> Load(StmtCache& db, const std::string& id) {
  auto q = db.Get("SELECT body FROM transfers WHERE transfer_id = ?");
  q->bind(1, id);
  if (!q->executeStep()) return std::nullopt;
  auto col = q->getColumn(0);
  v1::Transfer t;
  if (!t.ParseFromArray(col.getBlob(), col.getBytes())) {
    throw std::runtime_error(StrCat("corrupt transfer row ", id));
  }
  return t;
}

// Stores t (insert or replace) and, when `report`, emits its Event.transfer.
void Save(LedgerTx& tx, const v1::Transfer& t, bool report) {
  const uint64_t hlc = tx.Now();
  std::string bytes;
  t.SerializeToString(&bytes);
  const std::string role = t.source() == tx.node_id() ? "source" : "destination";
  auto q = tx.stmts().Get(
      "INSERT INTO transfers(transfer_id, status, role, version, hlc, body) "
      "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(transfer_id) DO UPDATE SET status = excluded.status, "
      "version = excluded.version, hlc = excluded.hlc, body = excluded.body");
  q->bind(1, t.transfer_id());
  q->bind(2, static_cast<int>(t.status()));
  q->bind(3, role);
  q->bind(4, static_cast<int64_t>(t.version()));
  q->bind(5, static_cast<int64_t>(hlc));
  q->bind(6, bytes.data(), static_cast<int>(bytes.size()));
  q->exec();
  if (!report) return;
  v1::Event e;
  e.set_hlc(hlc);
  *e.mutable_transfer()->mutable_transfer() = t;
  tx.Emit(std::move(e));
}

int64_t NowMs(LedgerTx& tx) { return static_cast<int64_t>(tx.Now() >> 16); }

int64_t OpenReserved(LedgerTx& tx, const std::string& sku, const std::string& ref) {
  auto q = tx.stmts().Get("SELECT quantity FROM reservations WHERE sku = ? AND reference = ?");
  q->bind(1, sku);
  q->bind(2, ref);
  return q->executeStep() ? q->getColumn(0).getInt64() : 0;
}

bool LocalOrigin(const v1::Transfer& t) { return t.origin() != "central"; }

absl::Status CheckStatus(const v1::Transfer& t, v1::TransferStatus want, const char* step) {
  if (t.status() == want) return absl::OkStatus();
  if (want == v1::TRANSFER_SHIPPED && t.status() == v1::TRANSFER_REQUESTED) {
    return absl::FailedPreconditionError(
        StrCat("transfer '", t.transfer_id(), "' has not been shipped yet: nothing to ", step));
  }
  return absl::FailedPreconditionError(StrCat("transfer '", t.transfer_id(), "' is already ",
                                              StatusName(t.status()), ": cannot ", step, " it"));
}

absl::Status Create(LedgerTx& tx, const v1::CreateTransferRequest& r, v1::OperationResult* out) {
  const std::string& self = tx.node_id();
  if (!r.source().empty() && r.source() != self) {
    return absl::FailedPreconditionError(
        StrCat("a transfer is ordered at its source or at central: this is site '", self,
               "', not '", r.source(), "'"));
  }
  if (auto s = CheckCode("destination", r.destination()); !s.ok()) return s;
  if (r.destination() == self) {
    return absl::InvalidArgumentError(
        StrCat("source and destination are the same site '", self, "'"));
  }
  if (r.lines_size() == 0) return absl::InvalidArgumentError("a transfer needs at least one line");
  std::set<std::string> seen;
  for (const auto& l : r.lines()) {
    if (auto s = CheckCode("sku", l.sku()); !s.ok()) return s;
    if (!seen.insert(l.sku()).second) {
      return absl::InvalidArgumentError(StrCat("SKU '", l.sku(), "' appears twice"));
    }
    if (l.quantity() <= 0) {
      return absl::InvalidArgumentError(
          StrCat("quantity of SKU '", l.sku(), "' must be positive (got ", l.quantity(), ")"));
    }
    if (auto sku = tx.Sku(l.sku()); !sku.ok()) return sku.status();
  }
  std::string id;
  std::string prefix = tx.LocalIdPrefix();  // "<node>-L" (with the epoch mark after a restore)
  if (!prefix.empty() && prefix.back() == 'L') prefix.back() = 'T';
  for (;;) {
    auto q = tx.stmts().Get(
        "INSERT INTO meta(key, value) VALUES ('local_transfers', '1') ON CONFLICT(key) DO UPDATE "
        "SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) RETURNING value");
    q->executeStep();
    id = StrCat(prefix, q->getColumn(0).getString());
    while (q->executeStep()) {
    }
    if (!IsTransferReference(tx.stmts(), id)) break;
  }
  v1::Transfer t;
  t.set_transfer_id(id);
  t.set_source(self);
  t.set_destination(r.destination());
  t.set_status(v1::TRANSFER_REQUESTED);
  t.set_version(1);
  t.set_origin(self);
  t.set_note(r.note());
  t.set_created_by(tx.context().operator_id);
  t.set_created_ms(NowMs(tx));
  for (const auto& l : r.lines()) {
    // A local commitment like a manual reservation: refused beyond local rights (the message
    // names them), then the units are reserved (refused beyond ATP).
    if (auto s = tx.rights().LocalCommit(tx, l.sku(), l.quantity(), /*leaves_now=*/false);
        !s.ok()) {
      return s;
    }
    if (auto s = ReserveStock(tx, l.sku(), id, l.quantity()); !s.ok()) return s;
    auto* line = t.add_lines();
    line->set_sku(l.sku());
    line->set_quantity(l.quantity());
  }
  Save(tx, t, /*report=*/true);
  *out->mutable_transfer() = t;
  return absl::OkStatus();
}

// Adds the lots (and serials) of the CONSUME / RECEIPT rows from `from` on to *lots.
void CollectLots(const v1::OperationResult& rows, int from, const std::string& sku,
                 google::protobuf::RepeatedPtrField<v1::TransferLot>* lots) {
  for (int i = from; i < rows.movements_size(); ++i) {
    const v1::Movement& m = rows.movements(i);
    if (m.sku() != sku || (m.type() != v1::CONSUME && m.type() != v1::RECEIPT)) continue;
    v1::TransferLot* lot = nullptr;
    for (auto& x : *lots) {
      if (x.lot() == m.lot()) lot = &x;
    }
    if (lot == nullptr) {
      lot = lots->Add();
      lot->set_lot(m.lot());
      lot->set_expiry(m.expiry());
    }
    lot->set_quantity(lot->quantity() + m.quantity());
    for (const auto& s : m.serials()) lot->add_serials(s);
  }
}

absl::Status Ship(LedgerTx& tx, const v1::ShipTransferRequest& r, v1::OperationResult* out) {
  if (r.transfer_id().empty()) return absl::InvalidArgumentError("transfer_id is required");
  auto stored = Load(tx.stmts(), r.transfer_id());
  if (!stored) return absl::NotFoundError(StrCat("unknown transfer '", r.transfer_id(), "'"));
  v1::Transfer t = *stored;
  const char* step = r.cancel() ? "cancel" : "ship";
  if (t.source() != tx.node_id()) {
    return absl::FailedPreconditionError(StrCat("transfer '", t.transfer_id(), "' leaves from site '",
                                                t.source(), "', not from this site '",
                                                tx.node_id(), "': only the source may ", step,
                                                " it"));
  }
  if (auto s = CheckStatus(t, v1::TRANSFER_REQUESTED, step); !s.ok()) return s;
  const bool local = LocalOrigin(t);

  if (r.cancel()) {
    if (r.lines_size() > 0) return absl::InvalidArgumentError("a cancel names no lines");
    for (const auto& l : t.lines()) {
      const int64_t open = OpenReserved(tx, l.sku(), t.transfer_id());
      if (open > 0) {
        if (auto s = ReleaseStock(tx, l.sku(), t.transfer_id(), open); !s.ok()) return s;
      }
      // A local transfer gives its rights back; central's stay with central, which drops its
      // commitment when it learns of the cancel.
      if (local) {
        if (auto s = tx.rights().LocalRelease(tx, l.sku(), l.quantity()); !s.ok()) return s;
      }
    }
    t.set_status(v1::TRANSFER_CANCELLED);
    t.set_cancel_reason(r.reason().empty() ? std::string("cancelled at the source") : r.reason());
    t.set_version(t.version() + 1);
    Save(tx, t, /*report=*/true);
    *out->mutable_transfer() = t;
    return absl::OkStatus();
  }

  // What leaves, per SKU (entries in request order).
  std::map<std::string, std::vector<v1::ShipTransferLine>> ship;
  if (r.lines_size() == 0) {
    for (const auto& l : t.lines()) {
      v1::ShipTransferLine x;
      x.set_sku(l.sku());
      x.set_quantity(l.quantity());
      ship[l.sku()].push_back(x);
    }
  } else {
    for (const auto& x : r.lines()) {
      if (x.quantity() < 0) {
        return absl::InvalidArgumentError(
            StrCat("quantity of SKU '", x.sku(), "' must not be negative"));
      }
      bool known = false;
      for (const auto& l : t.lines()) known = known || l.sku() == x.sku();
      if (!known) {
        return absl::InvalidArgumentError(
            StrCat("SKU '", x.sku(), "' is not a line of transfer '", t.transfer_id(), "'"));
      }
      ship[x.sku()].push_back(x);
    }
  }
  int64_t total = 0;
  for (auto& line : *t.mutable_lines()) {
    int64_t n = 0;
    for (const auto& x : ship[line.sku()]) n += x.quantity();
    if (n > line.quantity()) {
      return absl::InvalidArgumentError(StrCat("ships ", n, " of SKU '", line.sku(),
                                               "', more than the ", line.quantity(), " ordered"));
    }
    total += n;
  }
  if (total == 0) {
    return absl::InvalidArgumentError("nothing to ship (to call the transfer off, cancel it)");
  }
  for (auto& line : *t.mutable_lines()) {
    const std::string& sku = line.sku();
    int64_t n = 0;
    for (const auto& x : ship[sku]) n += x.quantity();
    const int64_t open = OpenReserved(tx, sku, t.transfer_id());
    if (n > open) {  // central's transfer arrived when the site's ATP could not cover it all
      if (auto s = ReserveStock(tx, sku, t.transfer_id(), n - open); !s.ok()) return s;
    }
    const int from = out->movements_size();
    for (const auto& x : ship[sku]) {
      if (x.quantity() == 0) continue;
      v1::Operation op;
      auto* c = op.mutable_consume();
      c->set_sku(sku);
      c->set_reference(t.transfer_id());
      c->set_quantity(x.quantity());
      c->set_bin(x.bin());
      c->set_lot(x.lot());
      *c->mutable_serials() = x.serials();
      if (auto s = tx.StockWithReason(op, kReasonOut); !s.ok()) return s;
    }
    CollectLots(*out, from, sku, line.mutable_shipped_lots());
    line.set_shipped(n);
    const int64_t rest = OpenReserved(tx, sku, t.transfer_id());
    if (rest > 0) {
      if (auto s = ReleaseStock(tx, sku, t.transfer_id(), rest); !s.ok()) return s;
    }
    const int64_t unshipped = line.quantity() - n;
    if (local) {
      if (n > 0) {
        if (auto s = tx.rights().LocalLeave(tx, sku, n); !s.ok()) return s;
      }
      if (unshipped > 0) {
        if (auto s = tx.rights().LocalRelease(tx, sku, unshipped); !s.ok()) return s;
      }
    } else if (auto s = tx.rights().CentralDelta(tx, sku, n, unshipped, t.transfer_id());
               !s.ok()) {
      return s;
    }
  }
  t.set_status(v1::TRANSFER_SHIPPED);
  t.set_shipped_by(tx.context().operator_id);
  t.set_shipped_ms(NowMs(tx));
  t.set_version(t.version() + 1);
  Save(tx, t, /*report=*/true);
  *out->mutable_transfer() = t;
  return absl::OkStatus();
}

absl::Status Receive(LedgerTx& tx, const v1::ReceiveTransferRequest& r,
                     v1::OperationResult* out) {
  if (r.transfer_id().empty()) return absl::InvalidArgumentError("transfer_id is required");
  auto stored = Load(tx.stmts(), r.transfer_id());
  if (!stored) {
    return absl::NotFoundError(StrCat("unknown transfer '", r.transfer_id(),
                                      "' (a shipped transfer reaches its destination from "
                                      "central)"));
  }
  v1::Transfer t = *stored;
  if (t.destination() != tx.node_id()) {
    return absl::FailedPreconditionError(
        StrCat("transfer '", t.transfer_id(), "' goes to site '", t.destination(),
               "', not to this site '", tx.node_id(), "'"));
  }
  if (auto s = CheckStatus(t, v1::TRANSFER_SHIPPED, "receive"); !s.ok()) return s;

  std::map<std::string, std::vector<v1::ReceiveTransferLine>> got;
  if (r.lines_size() == 0) {
    for (const auto& l : t.lines()) {
      for (const auto& lot : l.shipped_lots()) {
        v1::ReceiveTransferLine x;
        x.set_sku(l.sku());
        x.set_quantity(lot.quantity());
        x.set_lot(lot.lot());
        x.set_expiry(lot.expiry());
        *x.mutable_serials() = lot.serials();
        got[l.sku()].push_back(x);
      }
    }
  } else {
    for (const auto& x : r.lines()) {
      if (x.quantity() < 0) {
        return absl::InvalidArgumentError(
            StrCat("received quantity of SKU '", x.sku(), "' must not be negative"));
      }
      bool known = false;
      for (const auto& l : t.lines()) known = known || l.sku() == x.sku();
      if (!known) {
        return absl::InvalidArgumentError(
            StrCat("SKU '", x.sku(), "' is not a line of transfer '", t.transfer_id(),
                   "' (an unexpected SKU is received as a normal receipt)"));
      }
      got[x.sku()].push_back(x);
    }
  }
  bool variance = false;
  for (auto& line : *t.mutable_lines()) {
    const std::string& sku = line.sku();
    auto sku_or = tx.Sku(sku);
    if (!sku_or.ok()) return sku_or.status();
    const bool serial = sku_or->tracking() == v1::TRACKING_SERIAL;
    const bool lot_tracked = sku_or->tracking() == v1::TRACKING_LOT || sku_or->expiry_tracked();
    const int from = out->movements_size();
    int64_t n = 0;
    for (const auto& x : got[sku]) {
      n += x.quantity();
      if (x.quantity() == 0) continue;
      const std::string bin = x.bin().empty() ? r.bin() : x.bin();
      if (bin.empty()) {
        return absl::InvalidArgumentError(
            StrCat("bin is required to receive SKU '", sku, "' (per line or for the request)"));
      }
      // The pieces to receive: as named, or along the shipped lots (an overage joins the last).
      struct Piece {
        std::string lot, expiry;
        int64_t quantity;
        std::vector<std::string> serials;
      };
      std::vector<Piece> pieces;
      if (!x.lot().empty() || !x.serials().empty() || !lot_tracked) {
        pieces.push_back({x.lot(), x.expiry(), x.quantity(), {x.serials().begin(), x.serials().end()}});
        if (pieces.back().lot.empty() && lot_tracked) {
          return absl::InvalidArgumentError(StrCat("SKU '", sku, "' needs a lot"));
        }
      } else {
        int64_t left = x.quantity();
        for (int i = 0; i < line.shipped_lots_size() && left > 0; ++i) {
          const auto& lot = line.shipped_lots(i);
          const bool last = i + 1 == line.shipped_lots_size();
          const int64_t take = last ? left : std::min(left, lot.quantity());
          if (take > 0) pieces.push_back({lot.lot(), lot.expiry(), take, {}});
          left -= take;
        }
        if (left > 0) {
          return absl::InvalidArgumentError(
              StrCat("name the lot of the ", left, " received units of SKU '", sku, "'"));
        }
      }
      for (auto& p : pieces) {
        if (serial && p.serials.empty()) {
          return absl::InvalidArgumentError(
              StrCat("SKU '", sku, "' is serial-tracked: name the serials received"));
        }
        v1::Operation op;
        auto* rc = op.mutable_receipt();
        rc->set_sku(sku);
        rc->set_bin(bin);
        rc->set_quantity(p.quantity);
        rc->set_lot(p.lot);
        rc->set_expiry(p.expiry);
        for (auto& s : p.serials) rc->add_serials(s);
        rc->set_reason(kReasonIn);
        rc->set_reference(t.transfer_id());
        if (auto s = tx.Stock(op); !s.ok()) return s;
      }
    }
    line.set_received(n);
    line.clear_received_lots();
    CollectLots(*out, from, sku, line.mutable_received_lots());
    if (n != line.shipped()) variance = true;
  }
  t.set_status(variance ? v1::TRANSFER_RECEIVED_WITH_VARIANCE : v1::TRANSFER_RECEIVED);
  t.set_received_by(tx.context().operator_id);
  t.set_received_ms(NowMs(tx));
  t.set_version(t.version() + 1);
  Save(tx, t, /*report=*/true);
  *out->mutable_transfer() = t;
  return absl::OkStatus();
}

}  // namespace

const char* const kSchema = R"sql(
-- Transfers between sites (node/transfers.h): the whole transfer as central's and this node's
-- steps left it; n orders them by arrival.
CREATE TABLE transfers(
  n INTEGER PRIMARY KEY, transfer_id TEXT NOT NULL UNIQUE, status INTEGER NOT NULL,
  role TEXT NOT NULL, version INTEGER NOT NULL, hlc INTEGER NOT NULL, body BLOB NOT NULL);
CREATE INDEX transfers_by_status ON transfers(status, n);
)sql";

bool IsTransferOp(const v1::Operation& op) {
  switch (op.op_case()) {
    case v1::Operation::kTransferCreate:
    case v1::Operation::kTransferShip:
    case v1::Operation::kTransferReceive:
      return true;
    default:
      return false;
  }
}

absl::Status Apply(LedgerTx& tx, const v1::Operation& op, v1::OperationResult* result) {
  switch (op.op_case()) {
    case v1::Operation::kTransferCreate: return Create(tx, op.transfer_create(), result);
    case v1::Operation::kTransferShip: return Ship(tx, op.transfer_ship(), result);
    case v1::Operation::kTransferReceive: return Receive(tx, op.transfer_receive(), result);
    default: return absl::InvalidArgumentError("not a transfer operation");
  }
}

absl::Status ApplyFeed(LedgerTx& tx, const v1::Transfer& t) {
  const std::string& self = tx.node_id();
  if (t.source() != self && t.destination() != self) {
    spdlog::warn("feed: transfer {} is neither from nor to this site; ignored", t.transfer_id());
    return absl::OkStatus();
  }
  auto stored = Load(tx.stmts(), t.transfer_id());
  if (stored && stored->version() >= t.version()) return absl::OkStatus();  // older or same
  Save(tx, t, /*report=*/false);
  if (stored || t.source() != self || t.status() != v1::TRANSFER_REQUESTED) {
    return absl::OkStatus();
  }
  // A new transfer central ordered from this site: reserve what the site's ATP allows now.
  for (const auto& l : t.lines()) {
    absl::Status s = tx.Savepoint([&]() -> absl::Status {
      auto atp = tx.Atp(l.sku());
      if (!atp.ok()) return atp.status();
      const int64_t q = std::min<int64_t>(l.quantity(), std::max<int64_t>(0, atp->available()));
      if (q <= 0) return absl::OkStatus();
      return ReserveStock(tx, l.sku(), t.transfer_id(), q);
    });
    if (!s.ok()) {
      spdlog::warn("feed: transfer {}: cannot reserve {} of {}: {}", t.transfer_id(),
                   l.quantity(), l.sku(), std::string(s.message()));
    }
  }
  return absl::OkStatus();
}

bool IsTransferReference(StmtCache& db, const std::string& reference) {
  auto q = db.Get("SELECT 1 FROM transfers WHERE transfer_id = ?");
  q->bind(1, reference);
  return q->executeStep();
}

absl::StatusOr<v1::ListTransfersResponse> List(StmtCache& db, const v1::ListTransfersRequest& r) {
  const uint32_t limit = r.limit() == 0 ? 100 : r.limit();
  if (limit > 1000) return absl::InvalidArgumentError("limit must be 1..1000");
  v1::ListTransfersResponse out;
  auto q = db.Get(
      "SELECT body FROM transfers WHERE (?1 = 0 OR status = ?1) ORDER BY n DESC");
  q->bind(1, static_cast<int>(r.status()));
  while (q->executeStep() && out.transfers_size() < static_cast<int>(limit)) {
    auto col = q->getColumn(0);
    v1::Transfer t;
    if (!t.ParseFromArray(col.getBlob(), col.getBytes())) {
      return absl::DataLossError("corrupt transfer row");
    }
    if (!r.site().empty() && t.source() != r.site() && t.destination() != r.site()) continue;
    if (!r.sku().empty()) {
      bool has = false;
      for (const auto& l : t.lines()) has = has || l.sku() == r.sku();
      if (!has) continue;
    }
    *out.add_transfers() = std::move(t);
  }
  return out;
}

absl::StatusOr<v1::Transfer> Get(StmtCache& db, const std::string& transfer_id) {
  auto t = Load(db, transfer_id);
  if (!t) return absl::NotFoundError(StrCat("unknown transfer '", transfer_id, "'"));
  return *t;
}

uint64_t LastHlc(StmtCache& db) {
  auto q = db.Get("SELECT COALESCE(MAX(hlc), 0) FROM transfers");
  return q->executeStep() ? static_cast<uint64_t>(q->getColumn(0).getInt64()) : 0;
}

}  // namespace depot::node::transfers
