#include "central/purchase_orders.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/csv.h"
#include "common/purchasing.h"
#include "common/stock_rules.h"

namespace depot::central {
namespace {

using absl::StrCat;

using Errors = csv::ImportErrors;

bool SiteExists(OrderTx& tx, const std::string& site) {
  for (const auto& s : tx.Sites()) {
    if (s.id() == site) return true;
  }
  return false;
}

// The checks against central's data that a new PO must pass; `line_of` maps a PO line index to
// a CSV line for messages (nullptr: name PO lines instead).
absl::Status CheckAgainstStore(PoTx& tx, const v1::PurchaseOrder& po, int first_line,
                               const std::vector<int>* line_of, Errors* errors) {
  auto fail = [&](int index, absl::Status s) {
    if (errors != nullptr) {
      errors->Add(index < 0 ? first_line : (*line_of)[index], s.message());
      return absl::OkStatus();
    }
    return s;
  };
  if (tx.LoadPo(po.po_id())) {
    if (auto s = fail(-1, absl::AlreadyExistsError(
                              StrCat("purchase order '", po.po_id(), "' already exists")));
        !s.ok()) {
      return s;
    }
  }
  if (!SiteExists(tx.base(), po.site())) {
    if (auto s = fail(-1, absl::NotFoundError(StrCat("unknown site '", po.site(), "'")));
        !s.ok()) {
      return s;
    }
  }
  for (int i = 0; i < po.lines_size(); ++i) {
    const auto& l = po.lines(i);
    if (!tx.base().SafetyStock(l.sku())) {
      if (auto s = fail(i, absl::NotFoundError(StrCat("purchase order '", po.po_id(), "' line ",
                                                      l.line_no(), ": unknown SKU '", l.sku(),
                                                      "'")));
          !s.ok()) {
        return s;
      }
    }
  }
  return absl::OkStatus();
}

// Fills the output fields of a new PO.
void Prepare(PoTx& tx, v1::PurchaseOrder* po, int64_t now_ms) {
  if (!po->has_receipt_tolerance_percent()) {
    auto supplier = tx.LoadSupplier(po->supplier());
    po->set_receipt_tolerance_percent(supplier ? supplier->receipt_tolerance_percent() : 0);
  }
  for (auto& l : *po->mutable_lines()) l.set_received(0);
  po->set_status(v1::PO_OPEN);
  po->set_version(1);
  po->set_created_ms(now_ms);
  po->set_updated_ms(now_ms);
  po->clear_note();
}

void Feed(PoTx& tx, const v1::PurchaseOrder& po) {
  v1::FeedEntry e;
  *e.mutable_purchase_order() = po;
  tx.base().AppendFeed(po.site(), std::move(e));
}

}  // namespace

absl::StatusOr<std::vector<CsvPurchaseOrder>> ParsePurchaseOrdersCsv(std::string_view text) {
  auto table = csv::Table::FromText(
      text, {"po", "supplier", "site", "sku", "quantity"},
      {"po", "supplier", "site", "expected_date", "line", "sku", "quantity", "tolerance_percent"});
  if (!table.ok()) {
    return absl::InvalidArgumentError(StrCat("nothing imported: ", table.status().message()));
  }
  Errors errors;
  std::vector<CsvPurchaseOrder> out;
  std::map<std::string, size_t> index;
  for (const auto& row : table->rows()) {
    const std::string po_id = table->Get(row, "po");
    if (auto s = CheckCode("po", po_id); !s.ok()) {
      errors.Add(row.line, s.message());
      continue;
    }
    v1::PurchaseOrder header;
    header.set_po_id(po_id);
    header.set_supplier(table->Get(row, "supplier"));
    header.set_site(table->Get(row, "site"));
    header.set_expected_date(table->Get(row, "expected_date"));
    const std::string tolerance = table->Get(row, "tolerance_percent");
    if (!tolerance.empty()) {
      uint32_t t = 0;
      if (!absl::SimpleAtoi(tolerance, &t)) {
        errors.Add(row.line, StrCat("tolerance_percent '", tolerance, "' is not a number"));
        continue;
      }
      header.set_receipt_tolerance_percent(t);
    }
    auto [it, fresh] = index.emplace(po_id, out.size());
    if (fresh) {
      out.push_back({header, row.line, {}});
    } else {
      const v1::PurchaseOrder& first = out[it->second].po;
      if (first.supplier() != header.supplier() || first.site() != header.site() ||
          first.expected_date() != header.expected_date() ||
          first.has_receipt_tolerance_percent() != header.has_receipt_tolerance_percent() ||
          first.receipt_tolerance_percent() != header.receipt_tolerance_percent()) {
        errors.Add(row.line, StrCat("purchase order '", po_id,
                                    "': supplier, site, expected_date and tolerance_percent must "
                                    "match line ", out[it->second].first_line));
        continue;
      }
    }
    CsvPurchaseOrder& target = out[it->second];
    v1::PurchaseOrderLine* l = target.po.add_lines();
    l->set_sku(table->Get(row, "sku"));
    const std::string qty = table->Get(row, "quantity");
    int64_t q = 0;
    if (!absl::SimpleAtoi(qty, &q)) {
      errors.Add(row.line, StrCat("quantity '", qty, "' is not a number"));
      target.po.mutable_lines()->RemoveLast();
      continue;
    }
    l->set_ordered(q);
    const std::string line_no = table->Get(row, "line");
    uint32_t n = static_cast<uint32_t>(target.po.lines_size());
    if (!line_no.empty() && !absl::SimpleAtoi(line_no, &n)) {
      errors.Add(row.line, StrCat("line '", line_no, "' is not a number"));
      target.po.mutable_lines()->RemoveLast();
      continue;
    }
    l->set_line_no(n);
    target.line_of.push_back(row.line);
  }
  for (const auto& c : out) {
    if (auto s = purchasing::Validate(c.po); !s.ok()) {
      // Name the file line of the PO line the message is about, else the PO's first line.
      int line = c.first_line;
      for (int i = 0; i < c.po.lines_size(); ++i) {
        if (absl::StrContains(s.message(), StrCat(" line ", c.po.lines(i).line_no(), ":"))) {
          line = c.line_of[i];
          break;
        }
      }
      errors.Add(line, s.message());
    }
  }
  if (!errors.empty()) return errors.Status();
  if (out.empty()) return absl::InvalidArgumentError("nothing imported: the file has no rows");
  return out;
}

void ApplyReceiptEvent(PoTx& tx, const std::string& node_id, const v1::Event& event, int sign) {
  if (!event.has_movement()) return;
  const v1::Movement& m = event.movement();
  if (m.type() != v1::RECEIPT || m.reason() != purchasing::kReceiptReason) return;
  const int64_t at_ms = static_cast<int64_t>(event.hlc() >> 16);
  auto raise = [&](const char* kind, const std::string& message) {
    if (sign < 0) return;
    v1::ExceptionEntry e;
    e.set_kind(kind);
    e.set_node_id(node_id);
    e.set_message(message);
    e.set_at_ms(at_ms);
    e.set_sku(m.sku());
    tx.base().AddException(e);
  };
  std::optional<v1::PurchaseOrder> po = tx.LoadPo(m.reference());
  if (!po) {
    raise("po_unknown", StrCat("site '", node_id, "' received ", m.quantity(), " of SKU '",
                               m.sku(), "' against unknown purchase order '", m.reference(), "'"));
    return;
  }
  if (po->site() != node_id) {
    raise("po_wrong_site", StrCat("site '", node_id, "' received ", m.quantity(), " of SKU '",
                                  m.sku(), "' against purchase order '", po->po_id(),
                                  "' of site '", po->site(), "'"));
    return;
  }
  v1::PurchaseOrderLine* line = nullptr;
  for (auto& l : *po->mutable_lines()) {
    if (l.sku() == m.sku()) line = &l;
  }
  if (line == nullptr) {
    raise("po_not_on_order", StrCat("site '", node_id, "' received ", m.quantity(), " of SKU '",
                                    m.sku(), "', which is not on purchase order '", po->po_id(),
                                    "'"));
    return;
  }
  if (purchasing::IsTerminal(po->status())) {
    raise("po_receipt_after_close",
          StrCat("site '", node_id, "' received ", m.quantity(), " of SKU '", m.sku(),
                 "' against purchase order '", po->po_id(), "', which is ",
                 purchasing::StatusName(po->status())));
  }
  line->set_received(line->received() + sign * m.quantity());
  const int64_t max = purchasing::MaxReceivable(line->ordered(), po->receipt_tolerance_percent());
  if (line->received() > max) {
    raise("po_over_receipt",
          StrCat("purchase order '", po->po_id(), "' line ", line->line_no(), " (SKU '", m.sku(),
                 "'): received ", line->received(), " of ", line->ordered(), " ordered, at most ",
                 max, " allowed (tolerance ", po->receipt_tolerance_percent(), "%)"));
  }
  po->set_status(purchasing::DeriveStatus(*po));
  po->set_updated_ms(std::max(po->updated_ms(), at_ms));
  tx.SavePo(*po);
}

PurchaseOrderService::PurchaseOrderService(PoStore* store, const Clock* clock,
                                           std::function<void()> feed_changed)
    : store_(store), clock_(clock), feed_changed_(std::move(feed_changed)) {}

absl::StatusOr<v1::PurchaseOrder> PurchaseOrderService::Create(v1::PurchaseOrder po) {
  if (auto s = purchasing::Validate(po); !s.ok()) return s;
  const int64_t now_ms = clock_->NowMicros() / 1000;
  absl::Status s = store_->RunPo([&](PoTx& tx) -> absl::Status {
    if (auto st = CheckAgainstStore(tx, po, 0, nullptr, nullptr); !st.ok()) return st;
    Prepare(tx, &po, now_ms);
    tx.SavePo(po);
    Feed(tx, po);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (feed_changed_) feed_changed_();
  return po;
}

absl::StatusOr<v1::ImportPurchaseOrdersResponse> PurchaseOrderService::Import(
    std::string_view csv) {
  auto parsed = ParsePurchaseOrdersCsv(csv);
  if (!parsed.ok()) return parsed.status();
  const int64_t now_ms = clock_->NowMicros() / 1000;
  v1::ImportPurchaseOrdersResponse out;
  absl::Status s = store_->RunPo([&](PoTx& tx) -> absl::Status {
    Errors errors;
    for (const auto& c : *parsed) {
      if (auto st = CheckAgainstStore(tx, c.po, c.first_line, &c.line_of, &errors); !st.ok()) {
        return st;
      }
    }
    if (!errors.empty()) return errors.Status();
    for (auto& c : *parsed) {
      Prepare(tx, &c.po, now_ms);
      tx.SavePo(c.po);
      Feed(tx, c.po);
      out.set_purchase_orders(out.purchase_orders() + 1);
      out.set_lines(out.lines() + c.po.lines_size());
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (feed_changed_) feed_changed_();
  return out;
}

absl::StatusOr<v1::PurchaseOrder> PurchaseOrderService::Get(const std::string& po_id) {
  if (auto s = CheckCode("po_id", po_id); !s.ok()) return s;
  return store_->GetPo(po_id);
}

absl::StatusOr<v1::ListPurchaseOrdersResponse> PurchaseOrderService::List(
    const std::string& site, const std::string& supplier, const std::string& status,
    const std::string& after, uint32_t limit) {
  v1::PurchaseOrderStatus st;
  if (!purchasing::ParseStatus(status, &st)) {
    return absl::InvalidArgumentError(
        StrCat("status '", status,
               "' is not a PO status (open, partially_received, received, closed_short, "
               "cancelled)"));
  }
  if (limit == 0) limit = 100;
  if (limit > 1000) return absl::InvalidArgumentError("limit must be 1..1000");
  return store_->ListPos(site, supplier, st, after, limit);
}

absl::StatusOr<v1::PurchaseOrder> PurchaseOrderService::Close(
    const v1::PurchaseOrderActionRequest& request) {
  return Finish(request, /*cancel=*/false);
}
absl::StatusOr<v1::PurchaseOrder> PurchaseOrderService::Cancel(
    const v1::PurchaseOrderActionRequest& request) {
  return Finish(request, /*cancel=*/true);
}

absl::StatusOr<v1::PurchaseOrder> PurchaseOrderService::Finish(
    const v1::PurchaseOrderActionRequest& request, bool cancel) {
  if (auto s = CheckCode("po_id", request.po_id()); !s.ok()) return s;
  const int64_t now_ms = clock_->NowMicros() / 1000;
  v1::PurchaseOrder po;
  absl::Status s = store_->RunPo([&](PoTx& tx) -> absl::Status {
    auto found = tx.LoadPo(request.po_id());
    if (!found) {
      return absl::NotFoundError(StrCat("unknown purchase order '", request.po_id(), "'"));
    }
    po = std::move(*found);
    if (purchasing::IsTerminal(po.status())) {
      return absl::FailedPreconditionError(StrCat("purchase order '", po.po_id(), "' is already ",
                                                  purchasing::StatusName(po.status())));
    }
    if (cancel && po.status() != v1::PO_OPEN) {
      return absl::FailedPreconditionError(
          StrCat("purchase order '", po.po_id(), "' is ", purchasing::StatusName(po.status()),
                 ": goods were received, close it short instead of cancelling"));
    }
    if (!cancel && po.status() == v1::PO_RECEIVED) {
      return absl::FailedPreconditionError(
          StrCat("purchase order '", po.po_id(), "' is fully received: nothing to close short"));
    }
    po.set_status(cancel ? v1::PO_CANCELLED : v1::PO_CLOSED_SHORT);
    po.set_note(request.note());
    po.set_version(po.version() + 1);
    po.set_updated_ms(now_ms);
    tx.SavePo(po);
    Feed(tx, po);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (feed_changed_) feed_changed_();
  return po;
}

absl::StatusOr<v1::Supplier> PurchaseOrderService::SetSupplier(v1::Supplier supplier) {
  if (auto s = CheckCode("supplier id", supplier.id()); !s.ok()) return s;
  if (supplier.receipt_tolerance_percent() > 1000) {
    return absl::InvalidArgumentError("receipt_tolerance_percent must be 0..1000");
  }
  absl::Status s = store_->RunPo([&](PoTx& tx) -> absl::Status {
    auto old = tx.LoadSupplier(supplier.id());
    supplier.set_version(old ? old->version() + 1 : 1);
    tx.SaveSupplier(supplier);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return supplier;
}

absl::StatusOr<v1::ListSuppliersResponse> PurchaseOrderService::ListSuppliers() {
  return store_->ListSuppliers();
}

}  // namespace depot::central
