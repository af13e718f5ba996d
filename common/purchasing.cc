#include "common/purchasing.h"

#include <cctype>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/stock_rules.h"

namespace depot::purchasing {

using absl::StrCat;

int64_t MaxReceivable(int64_t ordered, uint32_t tolerance_percent) {
  return ordered + ordered * static_cast<int64_t>(tolerance_percent) / 100;
}

bool IsTerminal(v1::PurchaseOrderStatus status) {
  return status == v1::PO_CLOSED_SHORT || status == v1::PO_CANCELLED;
}

v1::PurchaseOrderStatus DeriveStatus(const v1::PurchaseOrder& po) {
  if (IsTerminal(po.status())) return po.status();
  bool any = false, all = true;
  for (const auto& l : po.lines()) {
    if (l.received() > 0) any = true;
    if (l.received() < l.ordered()) all = false;
  }
  if (any && all) return v1::PO_RECEIVED;
  return any ? v1::PO_PARTIALLY_RECEIVED : v1::PO_OPEN;
}

absl::Status Validate(const v1::PurchaseOrder& po) {
  if (auto s = CheckCode("po_id", po.po_id()); !s.ok()) return s;
  if (auto s = CheckCode("supplier", po.supplier()); !s.ok()) return s;
  if (auto s = CheckCode("site", po.site()); !s.ok()) return s;
  if (!po.expected_date().empty() && !ValidDate(po.expected_date())) {
    return absl::InvalidArgumentError(
        StrCat("expected_date '", po.expected_date(), "' is not a date (YYYY-MM-DD)"));
  }
  if (po.has_receipt_tolerance_percent() && po.receipt_tolerance_percent() > 1000) {
    return absl::InvalidArgumentError("receipt_tolerance_percent must be 0..1000");
  }
  if (po.lines_size() == 0) {
    return absl::InvalidArgumentError(StrCat("purchase order '", po.po_id(), "' has no lines"));
  }
  std::set<uint32_t> numbers;
  std::set<std::string> skus;
  for (const auto& l : po.lines()) {
    const std::string where = StrCat("purchase order '", po.po_id(), "' line ", l.line_no(), ": ");
    if (l.line_no() == 0) {
      return absl::InvalidArgumentError(StrCat(where, "line numbers start at 1"));
    }
    if (!numbers.insert(l.line_no()).second) {
      return absl::InvalidArgumentError(StrCat(where, "line number repeats"));
    }
    if (auto s = CheckCode("sku", l.sku()); !s.ok()) {
      return absl::InvalidArgumentError(StrCat(where, s.message()));
    }
    if (!skus.insert(l.sku()).second) {
      return absl::InvalidArgumentError(
          StrCat(where, "SKU '", l.sku(), "' is already on another line of this PO"));
    }
    if (l.ordered() <= 0) {
      return absl::InvalidArgumentError(StrCat(where, "quantity must be positive"));
    }
  }
  return absl::OkStatus();
}

std::string StatusName(v1::PurchaseOrderStatus status) {
  switch (status) {
    case v1::PO_OPEN: return "open";
    case v1::PO_PARTIALLY_RECEIVED: return "partially_received";
    case v1::PO_RECEIVED: return "received";
    case v1::PO_CLOSED_SHORT: return "closed_short";
    case v1::PO_CANCELLED: return "cancelled";
    default: return "unspecified";
  }
}

bool ParseStatus(std::string_view text, v1::PurchaseOrderStatus* out) {
  *out = v1::PO_STATUS_UNSPECIFIED;
  if (text.empty()) return true;
  if (v1::PurchaseOrderStatus_Parse(std::string(text), out)) return true;
  for (auto s : {v1::PO_OPEN, v1::PO_PARTIALLY_RECEIVED, v1::PO_RECEIVED, v1::PO_CLOSED_SHORT,
                 v1::PO_CANCELLED}) {
    if (text == StatusName(s)) {
      *out = s;
      return true;
    }
  }
  return false;
}

}  // namespace depot::purchasing
