#include "central/returns.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/returns_rules.h"

namespace depot::central {

using absl::StrCat;
using depot::returns::DeriveStatus;
using depot::returns::kReasonList;
using depot::returns::ValidReason;

namespace {

// Raises an exception for r once per kind (r.exceptions remembers which were raised).
class Raiser {
 public:
  Raiser(OrderTx& tx, const std::string& node_id, int64_t at_ms, v1::Return* r)
      : tx_(tx), node_id_(node_id), at_ms_(at_ms), r_(r) {}
  void operator()(const std::string& kind, const std::string& message, const std::string& sku) {
    for (const auto& k : r_->exceptions()) {
      if (k == kind) return;
    }
    r_->add_exceptions(kind);
    v1::ExceptionEntry x;
    x.set_kind(kind);
    x.set_node_id(node_id_);
    x.set_message(message);
    x.set_at_ms(at_ms_);
    x.set_order_id(r_->order_id());
    x.set_sku(sku);
    tx_.AddException(x);
  }

 private:
  OrderTx& tx_;
  const std::string& node_id_;
  int64_t at_ms_;
  v1::Return* r_;
};

// Checks a received return against its order: quantities against shipped units (over all the
// order's returns), serials against the serials shipped for the order, the order itself.
void CheckAgainstOrder(OrderTx& tx, v1::Return* r, Raiser& raise) {
  const std::string what = StrCat("return ", r->return_id());
  if (r->order_id().empty()) {
    raise("return_unknown_order",
          StrCat(what, " (counter return at ", r->site(), ") names no order, only reference '",
                 r->external_ref(), "': check it by hand"),
          "");
    return;
  }
  auto order = tx.LoadOrder(r->order_id());
  if (!order) {
    raise("return_unknown_order",
          StrCat(what, " received at ", r->site(), " names unknown order '", r->order_id(), "'"),
          "");
    return;
  }
  std::map<std::string, int64_t> shipped, received;
  for (const auto& l : order->lines()) shipped[l.sku()] += l.shipped();
  for (const auto& other : tx.FindReturns(r->order_id(), "", v1::RETURN_STATUS_UNSPECIFIED, 0)) {
    if (other.return_id() == r->return_id()) continue;
    for (const auto& l : other.lines()) received[l.sku()] += l.received();
  }
  for (const auto& l : r->lines()) received[l.sku()] += l.received();
  for (const auto& [sku, units] : received) {
    if (units == 0) continue;
    auto it = shipped.find(sku);
    if (it == shipped.end()) {
      raise("return_unknown_order",
            StrCat(what, " returns SKU '", sku, "' which order ", r->order_id(), " does not have"),
            sku);
    } else if (units > it->second) {
      raise("return_over_shipped",
            StrCat(what, ": ", units, " units of SKU '", sku, "' returned for order ",
                   r->order_id(), " (all its returns), only ", it->second, " shipped"),
            sku);
    }
  }
  for (const auto& l : r->lines()) {
    if (l.serials().empty()) continue;
    std::set<std::string> known;
    for (const auto& f : order->fulfilments()) {
      for (auto& s : tx.ShippedSerials(f.site(), f.fulfilment_id(), l.sku())) known.insert(s);
    }
    if (known.empty()) continue;  // central learned no serials for it: nothing to check against
    for (const auto& s : l.serials()) {
      if (!known.count(s)) {
        raise("return_unknown_serial",
              StrCat(what, ": serial '", s, "' of SKU '", l.sku(), "' was never shipped for order ",
                     r->order_id()),
              l.sku());
      }
    }
  }
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[(v.size() + 1) / 2 - 1];  // nearest rank
}

}  // namespace

void ApplyReturnUpdate(OrderTx& tx, const std::string& node_id, const v1::Event& event) {
  const v1::Return& in = event.return_update().ret();
  const int64_t at_ms = static_cast<int64_t>(event.hlc() >> 16);
  auto stored = tx.LoadReturn(in.return_id());
  v1::Return r;
  bool first_receipt = false;  // of an RMA: the other sites learn where it went
  if (stored) {
    r = std::move(*stored);
    first_receipt = r.authorised() && r.site().empty();
    Raiser raise(tx, node_id, at_ms, &r);
    if (!r.site().empty() && r.site() != node_id) {
      raise("return_other_site",
            StrCat("return ", r.return_id(), " was received at ", r.site(), " and again at ",
                   node_id, ": the second site's state is not merged"),
            "");
      tx.SaveReturn(r);
      return;
    }
    if (r.authorised()) {
      // The node owns the progress; central keeps the RMA's lines and authorised quantities.
      for (const auto& nl : in.lines()) {
        for (auto& l : *r.mutable_lines()) {
          if (l.line_no() != nl.line_no()) continue;
          const int64_t authorised = l.authorised();
          l = nl;
          l.set_authorised(authorised);
        }
      }
    } else {
      *r.mutable_lines() = in.lines();
    }
  } else {
    r = in;
    r.clear_exceptions();
    if (in.authorised()) {
      Raiser raise(tx, node_id, at_ms, &r);
      raise("return_unknown_order",
            StrCat("return authorisation ", in.return_id(), " received at ", node_id,
                   " is unknown at central"),
            "");
    }
  }
  r.set_site(node_id);
  r.set_received_ms(in.received_ms());
  r.set_disposed_ms(in.disposed_ms());
  r.set_refunded_ms(in.refunded_ms());
  r.set_refund_cents(in.refund_cents());
  r.set_currency(in.currency());
  if (!in.note().empty()) r.set_note(in.note());
  r.set_status(DeriveStatus(r));
  Raiser raise(tx, node_id, at_ms, &r);
  CheckAgainstOrder(tx, &r, raise);
  tx.SaveReturn(r);
  if (first_receipt) {
    for (const v1::Site& site : tx.Sites()) {
      if (site.id() == node_id) continue;
      v1::FeedEntry e;
      *e.mutable_return_authorisation() = r;
      tx.AppendFeed(site.id(), std::move(e));
    }
  }
}

void NoteShippedSerials(OrderTx& tx, const std::string& node_id, const v1::Movement& m) {
  if (m.type() != v1::CONSUME || m.reference().empty()) return;
  for (const auto& s : m.serials()) tx.AddShippedSerial(node_id, m.reference(), m.sku(), s);
}

v1::ReturnKpiResponse ReturnKpi(const std::vector<v1::Return>& returns) {
  struct Acc {
    int64_t lines = 0, units = 0, disposed = 0, refunded = 0;
    std::vector<double> disposition_h, refund_h;
  };
  std::map<std::pair<std::string, std::string>, Acc> acc;
  for (const auto& r : returns) {
    if (r.received_ms() <= 0) continue;
    for (const auto& l : r.lines()) {
      if (l.received() <= 0) continue;
      Acc& a = acc[{r.site(), l.reason()}];
      ++a.lines;
      a.units += l.received();
      if (l.disposed_ms() > 0) {
        ++a.disposed;
        a.disposition_h.push_back(
            static_cast<double>(std::max<int64_t>(0, l.disposed_ms() - r.received_ms())) / 3.6e6);
      }
      if (r.refunded_ms() > 0) {
        ++a.refunded;
        a.refund_h.push_back(
            static_cast<double>(std::max<int64_t>(0, r.refunded_ms() - r.received_ms())) / 3.6e6);
      }
    }
  }
  auto avg = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / static_cast<double>(v.size());
  };
  v1::ReturnKpiResponse out;
  for (const auto& [key, a] : acc) {
    v1::ReturnKpiRow* row = out.add_rows();
    row->set_site(key.first);
    row->set_reason(key.second);
    row->set_lines(a.lines);
    row->set_units(a.units);
    row->set_disposed(a.disposed);
    row->set_disposition_avg_h(avg(a.disposition_h));
    row->set_disposition_p50_h(Median(a.disposition_h));
    row->set_refunded(a.refunded);
    row->set_refund_avg_h(avg(a.refund_h));
    row->set_refund_p50_h(Median(a.refund_h));
  }
  return out;
}

ReturnsService::ReturnsService(OrderStore* store, const Clock* clock,
                               std::function<void()> feed_changed)
    : store_(store), clock_(clock), feed_changed_(std::move(feed_changed)) {}

absl::StatusOr<v1::Return> ReturnsService::Create(const v1::CreateReturnRequest& q,
                                                  const std::string& operator_id) {
  if (q.order_id().empty()) return absl::InvalidArgumentError("order_id is required");
  if (q.lines().empty()) return absl::InvalidArgumentError("a return needs at least one line");
  for (const auto& l : q.lines()) {
    if (l.line_no() == 0 && l.sku().empty()) {
      return absl::InvalidArgumentError("a return line needs line_no or sku");
    }
    if (l.quantity() <= 0) {
      return absl::InvalidArgumentError(StrCat("quantity must be > 0 (", l.quantity(), ")"));
    }
    if (!ValidReason(l.reason())) {
      return absl::InvalidArgumentError(
          StrCat("unknown return reason '", l.reason(), "' (", kReasonList, ")"));
    }
  }
  v1::Return out;
  const int64_t now_ms = clock_->NowMicros() / 1000;
  OrderStore::TxFn fn = [&](OrderTx& tx) -> absl::Status {
    auto order = tx.LoadOrder(q.order_id());
    if (!order) return absl::NotFoundError(StrCat("unknown order '", q.order_id(), "'"));
    // Units already spoken for: per order line (RMAs) and per SKU (every return).
    std::map<uint32_t, int64_t> used_line;
    std::map<std::string, int64_t> used_sku, shipped_sku;
    for (const auto& l : order->lines()) shipped_sku[l.sku()] += l.shipped();
    for (const auto& other : tx.FindReturns(q.order_id(), "", v1::RETURN_STATUS_UNSPECIFIED, 0)) {
      for (const auto& l : other.lines()) {
        const int64_t units = std::max(l.authorised(), l.received());
        if (other.authorised()) used_line[l.line_no()] += units;
        used_sku[l.sku()] += units;
      }
    }
    v1::Return r;
    for (const auto& in : q.lines()) {
      const v1::OrderLine* line = nullptr;
      for (const auto& l : order->lines()) {
        if (in.line_no() != 0) {
          if (l.line_no() != in.line_no()) continue;
          line = &l;
          break;
        }
        if (l.sku() != in.sku()) continue;
        if (!line) line = &l;  // the first line of the SKU, unless a later one has room
        if (l.shipped() - used_line[l.line_no()] > 0) {
          line = &l;
          break;
        }
      }
      if (!line || (!in.sku().empty() && line->sku() != in.sku())) {
        return absl::FailedPreconditionError(
            in.line_no() != 0
                ? StrCat("order ", q.order_id(), " has no line ", in.line_no(),
                         in.sku().empty() ? "" : StrCat(" of SKU '", in.sku(), "'"))
                : StrCat("order ", q.order_id(), " has no line of SKU '", in.sku(), "'"));
      }
      const int64_t line_left = line->shipped() - used_line[line->line_no()];
      const int64_t sku_left = shipped_sku[line->sku()] - used_sku[line->sku()];
      const int64_t left = std::max<int64_t>(0, std::min(line_left, sku_left));
      if (in.quantity() > left) {
        return absl::FailedPreconditionError(StrCat(
            "line ", line->line_no(), " (SKU '", line->sku(), "') of order ", q.order_id(),
            ": ", in.quantity(), " asked, only ", left, " returnable (shipped ", line->shipped(),
            ", already authorised or returned ", used_line[line->line_no()], ")"));
      }
      used_line[line->line_no()] += in.quantity();
      used_sku[line->sku()] += in.quantity();
      v1::ReturnLine* rl = nullptr;
      for (auto& l : *r.mutable_lines()) {
        if (l.line_no() == line->line_no() && l.reason() == in.reason()) rl = &l;
      }
      if (!rl) {
        rl = r.add_lines();
        rl->set_line_no(line->line_no());
        rl->set_sku(line->sku());
        rl->set_reason(in.reason());
      }
      rl->set_authorised(rl->authorised() + in.quantity());
    }
    char id[32];
    std::snprintf(id, sizeof(id), "R%08llu",
                  static_cast<unsigned long long>(tx.NextReturnNumber()));
    r.set_return_id(id);
    r.set_order_id(q.order_id());
    r.set_authorised(true);
    r.set_status(v1::RETURN_AUTHORISED);
    r.set_created_ms(now_ms);
    r.set_note(q.note());
    r.set_operator_id(operator_id);
    r.set_currency(order->currency());
    tx.SaveReturn(r);
    for (const v1::Site& site : tx.Sites()) {
      v1::FeedEntry e;
      *e.mutable_return_authorisation() = r;
      tx.AppendFeed(site.id(), std::move(e));
    }
    out = std::move(r);
    return absl::OkStatus();
  };
  std::vector<absl::Status> results;
  if (auto s = store_->RunBatch({&fn}, &results); !s.ok()) return s;
  if (!results[0].ok()) return results[0];
  if (feed_changed_) feed_changed_();
  return out;
}

absl::StatusOr<v1::Return> ReturnsService::Get(const std::string& return_id) {
  std::optional<v1::Return> r;
  OrderStore::TxFn fn = [&](OrderTx& tx) -> absl::Status {
    r = tx.LoadReturn(return_id);
    return absl::OkStatus();
  };
  std::vector<absl::Status> results;
  if (auto s = store_->RunBatch({&fn}, &results); !s.ok()) return s;
  if (!results[0].ok()) return results[0];
  if (!r) return absl::NotFoundError(StrCat("unknown return '", return_id, "'"));
  return std::move(*r);
}

absl::StatusOr<v1::ListReturnsResponse> ReturnsService::List(const v1::ListReturnsRequest& q) {
  const uint32_t limit = q.limit() == 0 ? 100 : q.limit();
  if (limit > 1000) return absl::InvalidArgumentError("limit must be 1..1000");
  std::vector<v1::Return> found;
  OrderStore::TxFn fn = [&](OrderTx& tx) -> absl::Status {
    found = tx.FindReturns(q.order_id(), q.site(), q.status(), limit);
    return absl::OkStatus();
  };
  std::vector<absl::Status> results;
  if (auto s = store_->RunBatch({&fn}, &results); !s.ok()) return s;
  if (!results[0].ok()) return results[0];
  v1::ListReturnsResponse out;
  *out.mutable_kpi() = ReturnKpi(found).rows();
  for (auto& r : found) *out.add_returns() = std::move(r);
  return out;
}

absl::StatusOr<v1::ReturnKpiResponse> ReturnsService::Kpi(const std::string& site) {
  std::vector<v1::Return> found;
  OrderStore::TxFn fn = [&](OrderTx& tx) -> absl::Status {
    found = tx.FindReturns("", site, v1::RETURN_STATUS_UNSPECIFIED, 0);
    return absl::OkStatus();
  };
  std::vector<absl::Status> results;
  if (auto s = store_->RunBatch({&fn}, &results); !s.ok()) return s;
  if (!results[0].ok()) return results[0];
  return ReturnKpi(found);
}

}  // namespace depot::central
