#include "node/returns.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/returns_rules.h"

namespace depot::node::returns {

using absl::StrCat;
using depot::returns::DeriveStatus;
using depot::returns::Disposed;
using depot::returns::kReasonList;
using depot::returns::ValidReason;

const char* const kSchema = R"sql(
-- Returns (node/returns.h): RMAs from central's feed and the returns received here, the whole
-- Return message in body; the goods waiting for inspection are not stock (no balance rows).
CREATE TABLE returns(no INTEGER PRIMARY KEY, return_id TEXT NOT NULL UNIQUE,
  status INTEGER NOT NULL, local_no INTEGER NOT NULL, hlc INTEGER NOT NULL, body BLOB NOT NULL);
CREATE INDEX returns_by_status ON returns(status, no);
)sql";

namespace {

int64_t MsOf(uint64_t hlc) { return static_cast<int64_t>(hlc >> 16); }

std::optional<v1::Return> Load(StmtCache& db, const std::string& id) {
  auto q = db.Get("SELECT body FROM returns WHERE return_id = ?");
  q->bind(1, id);
  if (!q->executeStep()) return std::nullopt;
  auto col = q->getColumn(0);
  v1::Return r;
  if (!r.ParseFromArray(col.getBlob(), col.getBytes())) {
    throw std::runtime_error(StrCat("corrupt return row ", id));
  }
  return r;
}

void Save(StmtCache& db, const v1::Return& r, int64_t local_no, uint64_t hlc) {
  std::string body;
  r.SerializeToString(&body);
  auto up = db.Get(
      "INSERT INTO returns(return_id, status, local_no, hlc, body) VALUES (?, ?, ?, ?, ?) "
      "ON CONFLICT(return_id) DO UPDATE SET status = excluded.status, hlc = excluded.hlc, "
      "body = excluded.body");
  up->bind(1, r.return_id());
  up->bind(2, static_cast<int>(r.status()));
  up->bind(3, local_no);
  up->bind(4, static_cast<int64_t>(hlc));
  up->bind(5, body.data(), static_cast<int>(body.size()));
  up->exec();
}

void Emit(LedgerTx& tx, const v1::Return& r, const char* change, uint64_t hlc) {
  v1::Event e;
  e.set_hlc(hlc);
  v1::ReturnUpdate* u = e.mutable_return_update();
  *u->mutable_ret() = r;
  u->set_change(change);
  u->set_hlc(hlc);
  tx.Emit(std::move(e));
}

// Serials of a serial-tracked SKU: exactly `quantity`, distinct, none in stock here.
absl::Status CheckSerials(LedgerTx& tx, const v1::Sku& sku, int64_t quantity,
                          const google::protobuf::RepeatedPtrField<std::string>& serials) {
  if (sku.tracking() != v1::TRACKING_SERIAL) {
    if (!serials.empty()) {
      return absl::InvalidArgumentError(
          StrCat("SKU '", sku.code(), "' is not serial-tracked: give no serials"));
    }
    return absl::OkStatus();
  }
  if (serials.size() != quantity) {
    return absl::InvalidArgumentError(StrCat("SKU '", sku.code(), "' is serial-tracked: name ",
                                             quantity, " serials (", serials.size(), " given)"));
  }
  std::set<std::string> seen;
  for (const auto& s : serials) {
    if (s.empty() || !seen.insert(s).second) {
      return absl::InvalidArgumentError(
          StrCat("serial '", s, "' of SKU '", sku.code(), "' is empty or named twice"));
    }
    auto q = tx.stmts().Get("SELECT bin FROM serials WHERE sku = ? AND serial = ?");
    q->bind(1, sku.code());
    q->bind(2, s);
    if (q->executeStep()) {
      return absl::FailedPreconditionError(StrCat("serial '", s, "' of SKU '", sku.code(),
                                                  "' is in stock here (bin '",
                                                  q->getColumn(0).getString(),
                                                  "'): it cannot be returned"));
    }
  }
  return absl::OkStatus();
}

// The line of r a request line means: by line_no when given (and the SKU, if named, must match),
// else the first line of the SKU for which `fits` holds (or the first of the SKU).
template <typename Fits>
absl::StatusOr<int> FindLine(const v1::Return& r, uint32_t line_no, const std::string& sku,
                             Fits fits) {
  if (line_no == 0 && sku.empty()) {
    return absl::InvalidArgumentError("a line needs line_no or sku");
  }
  int first = -1;
  for (int i = 0; i < r.lines_size(); ++i) {
    const auto& l = r.lines(i);
    if (line_no != 0) {
      if (l.line_no() != line_no) continue;
      if (!sku.empty() && sku != l.sku()) {
        return absl::InvalidArgumentError(StrCat("line ", line_no, " of return '", r.return_id(),
                                                 "' is SKU '", l.sku(), "', not '", sku, "'"));
      }
      return i;
    }
    if (l.sku() != sku) continue;
    if (first < 0) first = i;
    if (fits(l)) return i;
  }
  if (first >= 0) return first;
  return absl::InvalidArgumentError(
      line_no != 0 ? StrCat("return '", r.return_id(), "' has no line ", line_no)
                   : StrCat("return '", r.return_id(), "' has no line of SKU '", sku, "'"));
}

absl::Status Receive(LedgerTx& tx, const v1::ReceiveReturnRequest& q, v1::OperationResult* out) {
  if (q.lines().empty()) return absl::InvalidArgumentError("a return needs at least one line");
  for (const auto& l : q.lines()) {
    if (l.quantity() <= 0) {
      return absl::InvalidArgumentError(
          StrCat("quantity must be > 0 (line of SKU '", l.sku(), "': ", l.quantity(), ")"));
    }
    if (!l.reason().empty() && !ValidReason(l.reason())) {
      return absl::InvalidArgumentError(
          StrCat("unknown return reason '", l.reason(), "' (", kReasonList, ")"));
    }
  }
  const uint64_t hlc = tx.Now();
  v1::Return r;
  int64_t local_no = 0;
  if (!q.return_id().empty()) {
    auto found = Load(tx.stmts(), q.return_id());
    if (!found) {
      return absl::NotFoundError(StrCat("unknown return authorisation '", q.return_id(),
                                        "' (not in this site's feed from central)"));
    }
    r = std::move(*found);
    if (!r.authorised()) {
      return absl::FailedPreconditionError(StrCat(
          "return '", r.return_id(), "' is a counter return: receive more units as a new return"));
    }
    if (!r.site().empty() && r.site() != tx.node_id()) {
      return absl::FailedPreconditionError(StrCat("return authorisation '", r.return_id(),
                                                  "' was received at site '", r.site(), "'"));
    }
    if (!q.order_id().empty() && q.order_id() != r.order_id()) {
      return absl::InvalidArgumentError(StrCat("return authorisation '", r.return_id(),
                                               "' is for order '", r.order_id(), "', not '",
                                               q.order_id(), "'"));
    }
    for (const auto& in : q.lines()) {
      auto i = FindLine(r, in.line_no(), in.sku(), [](const v1::ReturnLine& l) {
        return l.received() < l.authorised();
      });
      if (!i.ok()) return i.status();
      v1::ReturnLine* l = r.mutable_lines(*i);
      const int64_t left = l->authorised() - l->received();
      if (in.quantity() > left) {
        return absl::FailedPreconditionError(StrCat(
            "only ", std::max<int64_t>(left, 0), " of SKU '", l->sku(), "' (line ", l->line_no(),
            ") left to receive on return authorisation '", r.return_id(), "': authorised ",
            l->authorised(), ", received ", l->received(), ", asked ", in.quantity()));
      }
      auto sku = tx.Sku(l->sku());
      if (!sku.ok()) return sku.status();
      if (auto s = CheckSerials(tx, *sku, in.quantity(), in.serials()); !s.ok()) return s;
      for (const auto& s : in.serials()) {
        for (const auto& had : l->serials()) {
          if (had == s) {
            return absl::InvalidArgumentError(
                StrCat("serial '", s, "' was already received on return '", r.return_id(), "'"));
          }
        }
        l->add_serials(s);
      }
      l->set_received(l->received() + in.quantity());
      if (!in.reason().empty()) l->set_reason(in.reason());
    }
  } else {
    if (q.order_id().empty() && q.external_ref().empty()) {
      return absl::InvalidArgumentError(
          "a return without authorisation needs order_id or external_ref");
    }
    auto n = tx.stmts().Get("SELECT COALESCE(MAX(local_no), 0) + 1 FROM returns");
    n->executeStep();
    local_no = n->getColumn(0).getInt64();
    r.set_return_id(StrCat(tx.LocalIdPrefix(), "R", local_no));
    r.set_order_id(q.order_id());
    r.set_external_ref(q.external_ref());
    r.set_authorised(false);
    r.set_created_ms(MsOf(hlc));
    r.set_operator_id(tx.context().operator_id);
    uint32_t line_no = 0;
    for (const auto& in : q.lines()) {
      if (in.reason().empty()) {
        return absl::InvalidArgumentError(StrCat("a return without authorisation needs a reason "
                                                 "per line (", kReasonList, ")"));
      }
      auto sku = tx.Sku(in.sku());
      if (!sku.ok()) return sku.status();
      if (auto s = CheckSerials(tx, *sku, in.quantity(), in.serials()); !s.ok()) return s;
      v1::ReturnLine* l = r.add_lines();
      l->set_line_no(++line_no);
      l->set_sku(in.sku());
      l->set_reason(in.reason());
      l->set_received(in.quantity());
      *l->mutable_serials() = in.serials();
    }
  }
  r.set_site(tx.node_id());
  if (r.received_ms() == 0) r.set_received_ms(MsOf(hlc));
  if (!q.note().empty()) r.set_note(q.note());
  r.set_disposed_ms(0);  // new units wait for inspection
  r.set_status(DeriveStatus(r));
  Save(tx.stmts(), r, local_no, hlc);
  Emit(tx, r, "received", hlc);
  *out->mutable_ret() = std::move(r);
  return absl::OkStatus();
}

// The return as received here, for disposition and refund.
absl::StatusOr<v1::Return> LoadReceivedHere(LedgerTx& tx, const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("return_id is required");
  auto r = Load(tx.stmts(), id);
  if (!r) return absl::NotFoundError(StrCat("unknown return '", id, "'"));
  if (r->site() != tx.node_id()) {
    return absl::FailedPreconditionError(
        r->site().empty()
            ? StrCat("return '", id, "' has not been received at site '", tx.node_id(), "'")
            : StrCat("return '", id, "' was received at site '", r->site(), "', not here ('",
                     tx.node_id(), "')"));
  }
  return std::move(*r);
}

absl::Status Dispose(LedgerTx& tx, const v1::DisposeReturnRequest& q, v1::OperationResult* out) {
  auto loaded = LoadReceivedHere(tx, q.return_id());
  if (!loaded.ok()) return loaded.status();
  v1::Return r = std::move(*loaded);
  if (q.lines().empty()) return absl::InvalidArgumentError("a disposition needs at least one line");
  const uint64_t hlc = tx.Now();
  for (const auto& in : q.lines()) {
    if (in.quantity() <= 0) {
      return absl::InvalidArgumentError(StrCat("quantity must be > 0 (", in.quantity(), ")"));
    }
    if (in.action() != "restock" && in.action() != "refurbish" && in.action() != "scrap") {
      return absl::InvalidArgumentError(
          StrCat("unknown disposition '", in.action(), "' (restock, refurbish, scrap)"));
    }
    auto i = FindLine(r, in.line_no(), in.sku(),
                      [](const v1::ReturnLine& l) { return Disposed(l) < l.received(); });
    if (!i.ok()) return i.status();
    v1::ReturnLine* l = r.mutable_lines(*i);
    const int64_t left = l->received() - Disposed(*l);
    if (in.quantity() > left) {
      return absl::FailedPreconditionError(StrCat(
          "only ", left, " of SKU '", l->sku(), "' (line ", l->line_no(), ") of return '",
          r.return_id(), "' wait for disposition: received ", l->received(), ", disposed ",
          Disposed(*l), ", asked ", in.quantity()));
    }
    for (const auto& s : in.serials()) {
      if (std::find(l->serials().begin(), l->serials().end(), s) == l->serials().end()) {
        return absl::InvalidArgumentError(
            StrCat("serial '", s, "' was not received on return '", r.return_id(), "'"));
      }
    }
    if (in.action() == "restock") {
      if (in.bin().empty()) return absl::InvalidArgumentError("restock needs a bin");
      if (in.bin() == kStagingBin) {
        return absl::InvalidArgumentError(
            StrCat("bin '", in.bin(), "' holds picked goods: restock into a storage bin"));
      }
      v1::Operation op;
      v1::ReceiptRequest* rc = op.mutable_receipt();
      rc->set_sku(l->sku());
      rc->set_bin(in.bin());
      rc->set_quantity(in.quantity());
      rc->set_lot(in.lot());
      rc->set_expiry(in.expiry());
      *rc->mutable_serials() = in.serials();
      rc->set_reference(r.return_id());
      rc->set_reason("return");
      if (auto s = tx.Stock(op); !s.ok()) return s;
      l->set_restocked(l->restocked() + in.quantity());
    } else {
      if (!in.bin().empty() || !in.lot().empty()) {
        return absl::InvalidArgumentError(
            StrCat(in.action(), " takes no bin or lot: the units do not re-enter stock"));
      }
      if (in.action() == "refurbish") {
        l->set_refurbished(l->refurbished() + in.quantity());
      } else {
        l->set_scrapped(l->scrapped() + in.quantity());
      }
    }
    if (Disposed(*l) == l->received()) l->set_disposed_ms(MsOf(hlc));
  }
  bool all = true;
  for (const auto& l : r.lines()) all = all && Disposed(l) == l.received();
  if (all) r.set_disposed_ms(MsOf(hlc));
  r.set_status(DeriveStatus(r));
  Save(tx.stmts(), r, 0, hlc);
  Emit(tx, r, "disposed", hlc);
  *out->mutable_ret() = std::move(r);
  return absl::OkStatus();
}

absl::Status Refund(LedgerTx& tx, const v1::RefundReturnRequest& q, v1::OperationResult* out) {
  if (q.amount_cents() < 0) {
    return absl::InvalidArgumentError(StrCat("amount_cents must be >= 0 (", q.amount_cents(), ")"));
  }
  auto loaded = LoadReceivedHere(tx, q.return_id());
  if (!loaded.ok()) return loaded.status();
  v1::Return r = std::move(*loaded);
  if (r.refunded_ms() > 0) {
    return absl::FailedPreconditionError(StrCat("return '", r.return_id(), "' was refunded already (",
                                                r.refund_cents(), " cents ", r.currency(), ")"));
  }
  const uint64_t hlc = tx.Now();
  r.set_refund_cents(q.amount_cents());
  r.set_currency(q.currency().empty() ? "EUR" : q.currency());
  r.set_refunded_ms(std::max<int64_t>(MsOf(hlc), 1));
  if (!q.note().empty()) r.set_note(q.note());
  r.set_status(DeriveStatus(r));
  Save(tx.stmts(), r, 0, hlc);
  Emit(tx, r, "refunded", hlc);
  *out->mutable_ret() = std::move(r);
  return absl::OkStatus();
}

}  // namespace

bool IsReturnOp(const v1::Operation& op) {
  switch (op.op_case()) {
    case v1::Operation::kReturnReceive:
    case v1::Operation::kReturnDispose:
    case v1::Operation::kReturnRefund: return true;
    default: return false;
  }
}

absl::Status Apply(LedgerTx& tx, const v1::Operation& op, v1::OperationResult* result) {
  switch (op.op_case()) {
    case v1::Operation::kReturnReceive: return Receive(tx, op.return_receive(), result);
    case v1::Operation::kReturnDispose: return Dispose(tx, op.return_dispose(), result);
    case v1::Operation::kReturnRefund: return Refund(tx, op.return_refund(), result);
    default: return absl::InvalidArgumentError("not a return operation");
  }
}

void ApplyAuthorisation(StmtCache& db, const std::string& node_id, const v1::Return& rma) {
  if (rma.return_id().empty()) return;
  const std::string elsewhere = rma.site() == node_id ? "" : rma.site();
  auto have = Load(db, rma.return_id());
  if (!have) {
    v1::Return r = rma;
    r.set_site(elsewhere);
    for (auto& l : *r.mutable_lines()) {  // only central's part: this site received nothing
      const int64_t authorised = l.authorised();
      const uint32_t line_no = l.line_no();
      std::string sku = l.sku(), reason = l.reason();
      l.Clear();
      l.set_line_no(line_no);
      l.set_sku(sku);
      l.set_reason(reason);
      l.set_authorised(authorised);
    }
    r.clear_received_ms();
    r.clear_disposed_ms();
    r.clear_refunded_ms();
    r.clear_refund_cents();
    r.clear_exceptions();
    r.set_status(v1::RETURN_AUTHORISED);
    Save(db, r, 0, 0);
    return;
  }
  // Another site received it: this site refuses to receive it too.
  if (have->site().empty() && !elsewhere.empty()) {
    have->set_site(elsewhere);
    auto q = db.Get("SELECT hlc FROM returns WHERE return_id = ?");
    q->bind(1, have->return_id());
    const int64_t hlc = q->executeStep() ? q->getColumn(0).getInt64() : 0;
    Save(db, *have, 0, static_cast<uint64_t>(hlc));
  }
}

absl::StatusOr<v1::ReturnsResponse> List(StmtCache& db, v1::ReturnStatus status, uint32_t limit) {
  if (limit < 1 || limit > 10000) return absl::InvalidArgumentError("limit must be 1..10000");
  v1::ReturnsResponse out;
  auto q = db.Get(
      "SELECT body FROM returns WHERE (?1 = 0 OR status = ?1) ORDER BY no DESC LIMIT ?2");
  q->bind(1, static_cast<int>(status));
  q->bind(2, static_cast<int64_t>(limit));
  while (q->executeStep()) {
    auto col = q->getColumn(0);
    if (!out.add_returns()->ParseFromArray(col.getBlob(), col.getBytes())) {
      return absl::DataLossError("corrupt return row");
    }
  }
  return out;
}

absl::StatusOr<v1::Return> Get(StmtCache& db, const std::string& return_id) {
  auto r = Load(db, return_id);
  if (!r) return absl::NotFoundError(StrCat("unknown return '", return_id, "'"));
  return std::move(*r);
}

uint64_t LastHlc(StmtCache& db) {
  auto q = db.Get("SELECT COALESCE(MAX(hlc), 0) FROM returns");
  return q->executeStep() ? static_cast<uint64_t>(q->getColumn(0).getInt64()) : 0;
}

}  // namespace depot::node::returns
