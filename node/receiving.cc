#include "node/receiving.h"

#include <map>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/purchasing.h"
#include "common/stock_rules.h"

namespace depot::node::receiving {
namespace {

using absl::StrCat;

std::optional<v1::PurchaseOrder> Load(StmtCache& db, const std::string& po_id) {
  auto q = db.Get("SELECT body FROM purchase_orders WHERE po_id = ?");
  q->bind(1, po_id);
  if (!q->executeStep()) return std::nullopt;
  auto col = q->getColumn(0);
  v1::PurchaseOrder po;
  if (!po.ParseFromArray(col.getBlob(), col.getBytes())) {
    throw std::runtime_error(StrCat("corrupt purchase order '", po_id, "'"));
  }
  return po;
}

void Save(StmtCache& db, const v1::PurchaseOrder& po) {
  const std::string body = po.SerializeAsString();
  auto up = db.Get(
      "INSERT INTO purchase_orders(po_id, site, status, version, body) VALUES (?, ?, ?, ?, ?) "
      "ON CONFLICT(po_id) DO UPDATE SET site = excluded.site, status = excluded.status, "
      "version = excluded.version, body = excluded.body");
  up->bind(1, po.po_id());
  up->bind(2, po.site());
  up->bind(3, static_cast<int>(po.status()));
  up->bind(4, static_cast<int64_t>(po.version()));
  up->bind(5, body.data(), static_cast<int>(body.size()));
  up->exec();
}

}  // namespace

const char* const kSchema = R"sql(
-- Purchase orders for this site (central's feed), with the node's own received quantities.
CREATE TABLE purchase_orders(po_id TEXT PRIMARY KEY, site TEXT NOT NULL, status INTEGER NOT NULL,
  version INTEGER NOT NULL, body BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX purchase_orders_by_status ON purchase_orders(status, po_id);
)sql";

bool IsReceivingOp(const v1::Operation& op) {
  return op.op_case() == v1::Operation::kPoReceive;
}

absl::Status CheckPlainOperation(const v1::Operation& op) {
  if (op.op_case() == v1::Operation::kReceipt &&
      op.receipt().reason() == purchasing::kReceiptReason) {
    return absl::InvalidArgumentError(
        "reason 'po' is for receipts against a purchase order: use "
        "POST /v1/purchase-orders/{id}/receive");
  }
  return absl::OkStatus();
}

absl::Status Apply(LedgerTx& tx, const v1::Operation& op, v1::OperationResult* result) {
  const v1::ReceivePoRequest& r = op.po_receive();
  if (auto s = CheckCode("po_id", r.po_id()); !s.ok()) return s;
  if (r.lines_size() == 0) return absl::InvalidArgumentError("a receipt needs at least one line");
  std::map<std::string, int64_t> wanted;  // sku -> units in this request
  for (int i = 0; i < r.lines_size(); ++i) {
    const auto& l = r.lines(i);
    const std::string where = StrCat("receipt line ", i + 1, ": ");
    if (auto s = CheckCode("sku", l.sku()); !s.ok()) {
      return absl::InvalidArgumentError(StrCat(where, s.message()));
    }
    if (l.quantity() <= 0) {
      return absl::InvalidArgumentError(StrCat(where, "quantity must be positive"));
    }
    if (l.bin() == kStagingBin) {
      return absl::FailedPreconditionError(
          StrCat(where, "bin '", l.bin(), "' holds picked goods of open orders"));
    }
    wanted[l.sku()] += l.quantity();
  }
  StmtCache& db = tx.stmts();
  std::optional<v1::PurchaseOrder> po = Load(db, r.po_id());
  if (!po) {
    return absl::NotFoundError(StrCat("unknown purchase order '", r.po_id(),
                                      "' (not in this site's feed from central)"));
  }
  if (po->site() != tx.node_id()) {
    return absl::FailedPreconditionError(StrCat("purchase order '", r.po_id(), "' is for site '",
                                                po->site(), "', not this site ('",
                                                tx.node_id(), "')"));
  }
  if (purchasing::IsTerminal(po->status())) {
    return absl::FailedPreconditionError(
        StrCat("purchase order '", r.po_id(), "' is ", purchasing::StatusName(po->status()),
               ": nothing more can be received against it"));
  }
  const uint32_t tolerance = po->receipt_tolerance_percent();
  std::map<std::string, v1::PurchaseOrderLine*> by_sku;
  for (auto& l : *po->mutable_lines()) by_sku[l.sku()] = &l;
  for (const auto& [sku, units] : wanted) {
    auto it = by_sku.find(sku);
    if (it == by_sku.end()) {
      return absl::InvalidArgumentError(
          StrCat("SKU '", sku, "' is not on purchase order '", r.po_id(), "'"));
    }
    const v1::PurchaseOrderLine& line = *it->second;
    const int64_t max = purchasing::MaxReceivable(line.ordered(), tolerance);
    if (line.received() + units > max) {
      return absl::FailedPreconditionError(StrCat(
          "over-receipt on purchase order '", r.po_id(), "' line ", line.line_no(), " (SKU '",
          sku, "'): ordered ", line.ordered(), ", received ", line.received(), ", receiving ",
          units, "; at most ", max, " in total (tolerance ", tolerance, "%), so at most ",
          std::max<int64_t>(0, max - line.received()), " more"));
    }
  }

  v1::ReceivePoResult out;
  for (const auto& l : r.lines()) {
    v1::PutawaySuggestion place;
    if (!l.bin().empty()) {
      place.set_sku(l.sku());
      place.set_lot(l.lot());
      place.set_bin(l.bin());
      place.set_reason("named");
    } else {
      auto s = SuggestPutaway(db, l.sku(), l.lot());
      if (!s.ok()) return s.status();
      if (s->bin().empty()) {
        return absl::FailedPreconditionError(StrCat(
            "no bin to put SKU '", l.sku(), "' away in (none holds it and none is empty): name a bin"));
      }
      place = std::move(*s);
    }
    v1::Operation receipt;
    auto* rc = receipt.mutable_receipt();
    rc->set_sku(l.sku());
    rc->set_bin(place.bin());
    rc->set_quantity(l.quantity());
    rc->set_lot(l.lot());
    rc->set_expiry(l.expiry());
    *rc->mutable_serials() = l.serials();
    rc->set_reference(r.po_id());
    rc->set_reason(purchasing::kReceiptReason);
    if (auto s = tx.Stock(receipt); !s.ok()) return s;
    by_sku[l.sku()]->set_received(by_sku[l.sku()]->received() + l.quantity());
    *out.add_putaway() = std::move(place);
  }
  po->set_status(purchasing::DeriveStatus(*po));
  Save(db, *po);
  *out.mutable_purchase_order() = *po;
  *out.mutable_movements() = result->movements();
  *result->mutable_po_receipt() = std::move(out);
  return absl::OkStatus();
}

void ApplyFeed(StmtCache& db, const v1::PurchaseOrder& incoming) {
  std::optional<v1::PurchaseOrder> have = Load(db, incoming.po_id());
  if (have && have->version() >= incoming.version()) return;  // older or the same: keep ours
  v1::PurchaseOrder po = incoming;
  std::map<std::string, int64_t> received;  // the node's own facts
  if (have) {
    for (const auto& l : have->lines()) received[l.sku()] = l.received();
  }
  for (auto& l : *po.mutable_lines()) {
    auto it = received.find(l.sku());
    l.set_received(it == received.end() ? 0 : it->second);
  }
  po.set_status(purchasing::DeriveStatus(po));
  Save(db, po);
}

absl::StatusOr<v1::ListPurchaseOrdersResponse> List(StmtCache& db,
                                                    v1::PurchaseOrderStatus status,
                                                    uint32_t limit) {
  if (limit < 1 || limit > 10000) return absl::InvalidArgumentError("limit must be 1..10000");
  auto q = db.Get(
      "SELECT po_id, body FROM purchase_orders WHERE (?1 = 0 OR status = ?1) "
      "ORDER BY po_id LIMIT ?2");
  q->bind(1, static_cast<int>(status));
  q->bind(2, static_cast<int64_t>(limit));
  v1::ListPurchaseOrdersResponse out;
  while (q->executeStep()) {
    auto col = q->getColumn(1);
    if (!out.add_purchase_orders()->ParseFromArray(col.getBlob(), col.getBytes())) {
      return absl::DataLossError(
          StrCat("corrupt purchase order '", q->getColumn(0).getString(), "'"));
    }
  }
  return out;
}

absl::StatusOr<v1::PurchaseOrder> Get(StmtCache& db, const std::string& po_id) {
  if (auto s = CheckCode("po_id", po_id); !s.ok()) return s;
  auto po = Load(db, po_id);
  if (!po) return absl::NotFoundError(StrCat("unknown purchase order '", po_id, "'"));
  return *po;
}

absl::StatusOr<v1::PutawaySuggestion> SuggestPutaway(StmtCache& db, const std::string& sku,
                                                     const std::string& lot) {
  if (auto s = CheckCode("sku", sku); !s.ok()) return s;
  if (auto s = CheckCode("lot", lot, /*required=*/false); !s.ok()) return s;
  {
    auto q = db.Get("SELECT 1 FROM skus WHERE code = ?");
    q->bind(1, sku);
    if (!q->executeStep()) return absl::NotFoundError(StrCat("unknown SKU '", sku, "'"));
  }
  v1::PutawaySuggestion out;
  out.set_sku(sku);
  out.set_lot(lot);
  {
    auto q = db.Get(
        "SELECT b.bin, SUM(b.on_hand) AS units, n.zone, n.walk_order FROM balances b "
        "JOIN bins n ON n.code = b.bin WHERE b.sku = ?1 AND (?2 = '' OR b.lot = ?2) "
        "AND b.bin <> 'STAGING' GROUP BY b.bin HAVING units > 0 "
        "ORDER BY units DESC, n.walk_order, b.bin LIMIT 1");
    q->bind(1, sku);
    q->bind(2, lot);
    if (q->executeStep()) {
      out.set_bin(q->getColumn(0).getString());
      out.set_on_hand(q->getColumn(1).getInt64());
      out.set_zone(q->getColumn(2).getString());
      out.set_walk_order(q->getColumn(3).getInt64());
      out.set_reason("holds_sku");
      return out;
    }
  }
  auto q = db.Get(
      "SELECT code, zone, walk_order FROM bins WHERE code <> 'STAGING' AND NOT EXISTS "
      "(SELECT 1 FROM balances b WHERE b.bin = bins.code) ORDER BY walk_order, code LIMIT 1");
  if (q->executeStep()) {
    out.set_bin(q->getColumn(0).getString());
    out.set_zone(q->getColumn(1).getString());
    out.set_walk_order(q->getColumn(2).getInt64());
    out.set_reason("empty_bin");
    return out;
  }
  out.set_reason("none");
  return out;
}

}  // namespace depot::node::receiving
