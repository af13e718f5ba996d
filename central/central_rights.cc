#include "central/central_rights.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/rights.h"

namespace depot::central::rights {
namespace {

using absl::StrCat;

bool IsOpen(v1::FulfilmentStatus s) {
  return s != v1::FULFILMENT_SHIPPED && s != v1::FULFILMENT_DELIVERED &&
         s != v1::FULFILMENT_CANCELLED && s != v1::FULFILMENT_STATUS_UNSPECIFIED;
}

std::string Units(int64_t n) { return StrCat(n, n == 1 ? " unit" : " units"); }


void Raise(OrderTx& tx, const std::string& kind, const std::string& node, const std::string& sku,
           const std::string& message, int64_t at_ms, const std::string& order_id = "",
           const std::string& fulfilment_id = "") {
  v1::ExceptionEntry x;
  x.set_kind(kind);
  x.set_node_id(node);
  x.set_sku(sku);
  x.set_order_id(order_id);
  x.set_fulfilment_id(fulfilment_id);
  x.set_message(message);
  x.set_at_ms(at_ms);
  tx.AddException(x);
}

// Subtracts `units` from *counter; a result below 0 raises rights_conflict and is clamped.
void Take(OrderTx& tx, const RightsRow& row, const char* name, int64_t* counter, int64_t units,
          const std::string& why, int64_t at_ms, const std::string& order_id = "",
          const std::string& fulfilment_id = "") {
  if (*counter - units >= 0) {
    *counter -= units;
    return;
  }
  Raise(
      tx, "rights_conflict", row.site, row.sku,
      StrCat(why, " takes ", units, " from central's ", name, " of ", row.sku, " at ", row.site,
             ", which is only ", *counter,
             "; clamped at 0 (central's book and the node's disagree: compare GET /v1/rights?site=",
             row.site, "&sku=", row.sku, ")"),
      at_ms, order_id, fulfilment_id);
  *counter = 0;
}

// Appends a release of `units` (> 0, or 0 for an empty answer) to the node's feed; counts it in the
// row (released or written off) except for 0 units.
void SendRelease(OrderTx& tx, RightsRow* row, int64_t units, bool write_off, bool answer,
                 const std::string& reason, uint64_t hlc, int64_t at_ms,
                 const std::string& reference) {
  v1::FeedEntry e;
  e.set_hlc(hlc);
  v1::RightsRelease* r = e.mutable_rights_release();
  r->set_sku(row->sku);
  r->set_units(units);
  r->set_write_off(write_off);
  r->set_answer(answer);
  r->set_reason(reason);
  if (units > 0) {
    r->set_seq(++row->release_seq);
    row->central_rights -= units;
    if (write_off) {
      row->written_off_total += units;
    } else {
      row->released_total += units;
    }
  }
  tx.AppendFeed(row->site, std::move(e));
  AddHistory(tx, *row, hlc, at_ms, write_off ? "write_off" : "release", units, r->seq(), reference,
          reason);
}

void ApplyGrant(OrderTx& tx, const std::string& node, const v1::RightsGrant& g, RightsRow* row,
                uint64_t hlc, int64_t at_ms) {
  if (g.units() < 0) {
    Raise(tx, "rights_conflict", node, row->sku,
          StrCat("node ", node, " granted ", g.units(), " units of ", row->sku,
                 " (negative); ignored"),
          at_ms);
    return;
  }
  if (g.units() > 0 || g.seq() != 0) {
    if (g.seq() != row->grant_seq + 1) {
      Raise(tx, "rights_seq", node, row->sku,
            StrCat("node ", node, " granted ", Units(g.units()), " of ", row->sku, " with seq ",
                   g.seq(), " but central expected ", row->grant_seq + 1,
                   " (applied anyway; was a database restored?)"),
            at_ms);
    }
    row->grant_seq = g.seq();
  }
  row->central_rights += g.units();
  row->granted_total += g.units();
  if (g.reason() == "answer") {
    row->request_pending_units = 0;
    row->request_at_ms = 0;
  }
  AddHistory(tx, *row, hlc, at_ms, "grant", g.units(), g.seq(), "", g.reason());
}

void ApplyRequest(OrderTx& tx, const v1::RightsRequest& q, RightsRow* row, uint64_t hlc,
                  int64_t at_ms) {
  AddHistory(tx, *row, hlc, at_ms, "request_from_node", q.units(), 0, "", q.reason());
  depot::rights::CentralBook book;
  book.central_rights = row->central_rights;
  book.central_committed = row->central_committed;
  int64_t units = depot::rights::RefillFromCentral(book);
  if (q.units() > 0) units = std::min(units, q.units());
  const std::string reason =
      StrCat("answer to the node's request for ", Units(q.units()),
             q.reason().empty() ? "" : StrCat(" (", q.reason(), ")"), ": ", Units(units),
             " of central's ", std::max<int64_t>(0, row->Available()), " available");
  SendRelease(tx, row, units, /*write_off=*/false, /*answer=*/true, reason, hlc, at_ms, "");
}

void ApplyLoss(OrderTx& tx, const std::string& node, const v1::RightsLoss& l, RightsRow* row,
               uint64_t hlc, int64_t at_ms) {
  // The orders concerned: what the node shorted because of the loss, and central's open fulfilments
  // of the SKU at the site (they may still be shorted).
  std::vector<std::string> shorted, open;
  std::set<std::string> orders;
  std::set<std::string> named(l.fulfilment_ids().begin(), l.fulfilment_ids().end());
  std::string one_fulfilment;
  for (const std::string& f : l.fulfilment_ids()) {
    std::optional<std::string> order = tx.OrderOfFulfilment(f);
    shorted.push_back(order ? StrCat(*order, " (", f, ")") : f);
    if (order) orders.insert(*order);
    one_fulfilment = f;
  }
  for (const auto& [order, f] : tx.OpenFulfilmentsWith(node, row->sku)) {
    if (named.count(f)) continue;
    open.push_back(StrCat(order, " (", f, ")"));
    orders.insert(order);
    one_fulfilment = f;
  }
  const int64_t excess = std::max<int64_t>(0, l.excess());
  const int64_t write_off = std::min(excess, std::max<int64_t>(0, row->Available()));
  std::string message = StrCat("node ", node, " lost ", Units(l.units_lost()), " of ", row->sku,
                               l.reason().empty() ? "" : StrCat(" (", l.reason(), ")"),
                               ": central's rights there exceed its sellable stock by ", excess,
                               " (new shortfall ", l.shortfall(), ")");
  absl::StrAppend(&message, "; central writes off ", write_off, " of its ",
                  std::max<int64_t>(0, row->Available()), " uncommitted rights");
  if (excess > write_off) {
    absl::StrAppend(&message, "; ", excess - write_off,
                    " committed units may not ship: check the open orders");
  }
  absl::StrAppend(&message, "; shorted by the node: ",
                  shorted.empty() ? std::string("none") : absl::StrJoin(shorted, ", "),
                  "; open at ", node, ": ",
                  open.empty() ? std::string("none") : absl::StrJoin(open, ", "));
  const bool single = orders.size() == 1 && named.size() + open.size() == 1;
  Raise(tx, "rights_loss", node, row->sku, message, at_ms,
        orders.size() == 1 ? *orders.begin() : "", single ? one_fulfilment : "");
  AddHistory(tx, *row, hlc, at_ms, "loss", excess, 0, absl::StrJoin(l.fulfilment_ids(), ","),
          StrCat("lost ", l.units_lost(), ", shortfall ", l.shortfall(), ", excess ", excess));
  if (write_off > 0) {
    SendRelease(
        tx, row, write_off, /*write_off=*/true, /*answer=*/false,
        StrCat("loss at ", node, ": ", Units(write_off), " of central's rights written off"), hlc,
        at_ms, "");
  }
}

}  // namespace

void AddHistory(OrderTx& tx, const RightsRow& row, uint64_t hlc, int64_t at_ms,
                const std::string& kind, int64_t units, uint64_t seq, const std::string& reference,
                const std::string& note) {
  v1::RightsHistoryEntry h;
  h.set_site(row.site);
  h.set_sku(row.sku);
  h.set_hlc(hlc);
  h.set_at_ms(at_ms);
  h.set_kind(kind);
  h.set_units(units);
  h.set_seq(seq);
  h.set_reference(reference);
  h.set_note(note);
  tx.AddRightsHistory(h);
}

void ReleaseToNode(OrderTx& tx, RightsRow* row, int64_t units, const std::string& reason,
                   uint64_t hlc, int64_t at_ms) {
  SendRelease(tx, row, units, /*write_off=*/false, /*answer=*/false, reason, hlc, at_ms, "");
}

void ApplyRightsEvent(OrderTx& tx, const std::string& node, const v1::Event& event) {
  const v1::RightsEvent& r = event.rights();
  const uint64_t hlc = event.hlc() != 0 ? event.hlc() : r.book().hlc();
  const int64_t at_ms = HybridLogicalClock::Millis(hlc);
  std::string sku;
  switch (r.change_case()) {
    case v1::RightsEvent::kGrant:
      sku = r.grant().sku();
      break;
    case v1::RightsEvent::kRequest:
      sku = r.request().sku();
      break;
    case v1::RightsEvent::kLoss:
      sku = r.loss().sku();
      break;
    default:
      break;
  }
  if (sku.empty()) sku = r.book().sku();
  if (sku.empty()) {
    Raise(tx, "rights_conflict", node, "",
          StrCat("node ", node, " sent rights event ", event.seq(), " without a SKU; ignored"),
          at_ms);
    return;
  }
  RightsRow row = tx.LoadRights(node, sku);
  switch (r.change_case()) {
    case v1::RightsEvent::kGrant:
      ApplyGrant(tx, node, r.grant(), &row, hlc, at_ms);
      break;
    case v1::RightsEvent::kRequest:
      ApplyRequest(tx, r.request(), &row, hlc, at_ms);
      break;
    case v1::RightsEvent::kLoss:
      ApplyLoss(tx, node, r.loss(), &row, hlc, at_ms);
      break;
    default:
      break;  // only the node's book
  }
  tx.SaveRights(row, r.has_book() ? &r.book() : nullptr);
}

void ApplyFulfilmentChange(OrderTx& tx, const std::string& node, const std::string& order_id,
                           const v1::Fulfilment& before, const v1::Fulfilment& after, int64_t at_ms,
                           uint64_t hlc) {
  struct Delta {
    int64_t shipped = 0, shorted = 0, open_before = 0, open_after = 0;
  };
  std::map<std::string, Delta> by_sku;
  std::map<uint32_t, const v1::FulfilmentLine*> old;
  for (const auto& l : before.lines()) old[l.line_no()] = &l;
  auto open_units = [](const v1::FulfilmentLine& l) {
    return std::max<int64_t>(0, l.quantity() - l.shipped() - l.short_quantity());
  };
  for (const auto& l : before.lines()) {
    if (IsOpen(before.status())) by_sku[l.sku()].open_before += open_units(l);
  }
  for (const auto& l : after.lines()) {
    Delta& d = by_sku[l.sku()];
    if (IsOpen(after.status())) d.open_after += open_units(l);
    auto it = old.find(l.line_no());
    const int64_t shipped_before = it == old.end() ? 0 : it->second->shipped();
    const int64_t short_before = it == old.end() ? 0 : it->second->short_quantity();
    d.shipped += l.shipped() - shipped_before;
    d.shorted += l.short_quantity() - short_before;
  }
  const std::string& fid = after.fulfilment_id();
  for (auto& [sku, d] : by_sku) {
    if (d.shipped == 0 && d.shorted == 0 && d.open_before == d.open_after) continue;
    RightsRow row = tx.LoadRights(node, sku);
    for (auto [what, delta] : {std::pair<const char*, int64_t*>{"shipped", &d.shipped},
                               std::pair<const char*, int64_t*>{"short", &d.shorted}}) {
      if (*delta >= 0) continue;
      Raise(tx, "rights_conflict", node, sku,
            StrCat("node ", node, " lowered the ", what, " units of ", sku, " in ", fid, " by ",
                   -*delta, "; central's rights are not given back"),
            at_ms, order_id, fid);
      *delta = 0;
    }
    const int64_t uncommitted = d.open_before - d.open_after;  // ship + short + cancel
    if (d.shipped > 0) {
      Take(tx, row, "rights", &row.central_rights, d.shipped, StrCat("shipping ", fid), at_ms,
           order_id, fid);
      row.consumed_total += d.shipped;
      AddHistory(tx, row, hlc, at_ms, "ship", d.shipped, 0, fid, "");
    }
    if (d.shorted > 0) {
      Take(tx, row, "rights", &row.central_rights, d.shorted, StrCat("the short in ", fid), at_ms,
           order_id, fid);
      row.returned_total += d.shorted;
      AddHistory(tx, row, hlc, at_ms, "short_return", d.shorted, 0, fid,
              "rights back to the node as unassigned");
    }
    if (uncommitted > 0) {
      Take(tx, row, "commitment", &row.central_committed, uncommitted,
           StrCat("closing units of ", fid), at_ms, order_id, fid);
    } else if (uncommitted < 0) {
      row.central_committed -= uncommitted;  // more open units than before (cannot happen)
    }
    const int64_t cancelled = uncommitted - d.shipped - d.shorted;
    if (cancelled > 0) {
      AddHistory(tx, row, hlc, at_ms, "cancel", cancelled, 0, fid,
              after.status() == v1::FULFILMENT_CANCELLED
                  ? "cancelled: commitment dropped, rights stay with central"
                  : "closed with units neither shipped nor shorted: commitment dropped");
    }
    tx.SaveRights(row, nullptr);
  }
}

void CommitRelease(OrderTx& tx, const v1::Fulfilment& f, int64_t at_ms, uint64_t hlc) {
  std::map<std::string, int64_t> units;
  for (const auto& l : f.lines()) units[l.sku()] += l.quantity();
  for (const auto& [sku, n] : units) {
    if (n <= 0) continue;
    RightsRow row = tx.LoadRights(f.site(), sku);
    row.central_committed += n;
    AddHistory(tx, row, hlc, at_ms, "allocate", n, 0, f.fulfilment_id(), "");
    if (row.Available() < 0) {
      Raise(tx, "rights_conflict", f.site(), sku,
            StrCat(f.fulfilment_id(), " commits ", Units(n), " of ", sku, " at ", f.site(),
                   ", more than central's available rights (", row.Available() + n, ")"),
            at_ms, "", f.fulfilment_id());
    }
    tx.SaveRights(row, nullptr);
  }
}

bool AskNodes(OrderTx& tx, const std::map<std::string, int64_t>& missing,
              const std::vector<std::string>& candidates, const std::set<std::string>& online,
              const std::string& order_id, int64_t now_ms, uint64_t hlc) {
  bool fed = false;
  for (const auto& [sku, units] : missing) {
    if (units <= 0) continue;
    std::map<std::string, int64_t> sellable;  // read once per SKU, only when a site is online
    bool read = false;
    for (const std::string& site : candidates) {
      if (!online.count(site)) continue;
      if (!read) {
        sellable = tx.MirrorSellable(sku);
        read = true;
      }
      auto s = sellable.find(site);
      if (s == sellable.end() || s->second <= 0) continue;
      RightsRow row = tx.LoadRights(site, sku);
      const int64_t ask = units - std::max<int64_t>(0, row.Available());
      if (ask <= 0) continue;
      if (row.request_pending_units > 0 && now_ms - row.request_at_ms < kRequestRetryMs) continue;
      v1::FeedEntry e;
      e.set_hlc(hlc);
      v1::RightsRequest* q = e.mutable_rights_request();
      q->set_sku(sku);
      q->set_units(ask);
      q->set_reason(StrCat("backorder: ", Units(units), " of ", sku, " for ", order_id,
                           " (central has ", std::max<int64_t>(0, row.Available()), " at ", site,
                           ")"));
      tx.AppendFeed(site, e);
      row.request_pending_units = ask;
      row.request_at_ms = now_ms;
      AddHistory(tx, row, hlc, now_ms, "request_to_node", ask, 0, order_id, q->reason());
      tx.SaveRights(row, nullptr);
      fed = true;
    }
  }
  return fed;
}

v1::RightsPolicy DefaultPolicy(const std::string& site, const std::string& kind) {
  v1::RightsPolicy p;
  p.set_site(site);
  p.set_store_share_percent(kind == "store" ? 30 : 0);
  p.set_is_default(true);
  return p;
}

v1::RightsPolicy EffectivePolicy(const v1::Site& site,
                                 const std::optional<v1::RightsPolicy>& explicit_policy) {
  if (explicit_policy) {
    v1::RightsPolicy p = *explicit_policy;
    p.set_site(site.id());
    p.set_is_default(false);
    return p;
  }
  return DefaultPolicy(site.id(), site.kind());
}

absl::Status ValidatePolicy(const v1::RightsPolicy& p) {
  if (p.site().empty()) return absl::InvalidArgumentError("site is required");
  if (p.store_share_percent() < 0 || p.store_share_percent() > 100) {
    return absl::InvalidArgumentError(
        StrCat("store_share_percent must be 0..100, got ", p.store_share_percent()));
  }
  const std::pair<const char*, int64_t> counts[] = {{"store_share_units", p.store_share_units()},
                                                    {"floor_units", p.floor_units()},
                                                    {"refill_below", p.refill_below()}};
  for (const auto& [name, value] : counts) {
    if (value < 0) {
      return absl::InvalidArgumentError(StrCat(name, " must be >= 0, got ", value));
    }
  }
  return absl::OkStatus();
}

int64_t ListingQuantity(int64_t available, int64_t buffer) {
  return std::max<int64_t>(0, available - std::max<int64_t>(0, buffer));
}

}  // namespace depot::central::rights

namespace depot::central {

using absl::StrCat;

RightsService::RightsService(CentralStore* store, const Clock* clock,
                             std::function<void()> feed_changed)
    : store_(store),
      orders_(store->orders()),
      clock_(clock),
      hlc_(*clock),
      feed_changed_(std::move(feed_changed)) {
  if (!orders_) throw std::invalid_argument("RightsService needs a store with orders()");
}

absl::Status RightsService::RunTx(const std::function<absl::Status(OrderTx&, bool* fed)>& fn) {
  bool fed = false;
  OrderStore::TxFn op = [&](OrderTx& tx) {
    fed = false;
    return fn(tx, &fed);
  };
  std::vector<OrderStore::TxFn*> ops{&op};
  std::vector<absl::Status> results;
  absl::Status commit = orders_->RunBatch(ops, &results);
  if (!commit.ok()) return commit;
  if (results[0].ok() && fed && feed_changed_) feed_changed_();
  return results[0];
}

absl::StatusOr<v1::ListRightsResponse> RightsService::List(const v1::ListRightsRequest& request) {
  return orders_->ListRights(request.site(), request.sku());
}

absl::StatusOr<v1::RightsHistoryResponse> RightsService::History(
    const v1::RightsHistoryRequest& request) {
  uint32_t limit = request.limit() == 0 ? 100 : request.limit();
  if (limit > 1000) {
    return absl::InvalidArgumentError(StrCat("limit ", limit, " is above 1000"));
  }
  return orders_->RightsHistory(request.site(), request.sku(), limit);
}

namespace {
bool SiteKnown(OrderTx& tx, const std::string& site) {
  for (const v1::Site& s : tx.Sites()) {
    if (s.id() == site) return true;
  }
  return false;
}
}  // namespace

absl::StatusOr<v1::CentralRights> RightsService::Release(const v1::ReleaseRightsRequest& request,
                                                         const std::string& operator_id) {
  if (request.site().empty()) return absl::InvalidArgumentError("site is required");
  if (request.sku().empty()) return absl::InvalidArgumentError("sku is required");
  if (request.units() <= 0) {
    return absl::InvalidArgumentError(
        StrCat("units must be greater than 0 (got ", request.units(), ")"));
  }
  const int64_t now_ms = clock_->NowMicros() / 1000;
  const uint64_t hlc = hlc_.Now();
  absl::Status s = RunTx([&](OrderTx& tx, bool* fed) -> absl::Status {
    if (!SiteKnown(tx, request.site())) {
      return absl::NotFoundError(StrCat("unknown site '", request.site(), "'"));
    }
    if (!tx.SafetyStock(request.sku())) {
      return absl::NotFoundError(StrCat("unknown SKU '", request.sku(), "'"));
    }
    RightsRow row = tx.LoadRights(request.site(), request.sku());
    if (request.units() > row.Available()) {
      return absl::FailedPreconditionError(
          StrCat("only ", std::max<int64_t>(0, row.Available()), " of ", request.sku(), " at ",
                 request.site(), " can be released (central_rights ", row.central_rights,
                 " - committed ", row.central_committed, "), asked ", request.units()));
    }
    std::string reason =
        request.note().empty() ? std::string("released by a planner") : request.note();
    if (!operator_id.empty()) absl::StrAppend(&reason, " (by ", operator_id, ")");
    rights::ReleaseToNode(tx, &row, request.units(), reason, hlc, now_ms);
    tx.SaveRights(row, nullptr);
    *fed = true;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  auto rows = orders_->ListRights(request.site(), request.sku());
  if (!rows.ok()) return rows.status();
  if (rows->rights_size() != 1) return absl::InternalError("the released row is missing");
  return rows->rights(0);
}

absl::StatusOr<v1::ListPoliciesResponse> RightsService::ListPolicies() {
  return orders_->ListPolicies();
}

absl::StatusOr<v1::RightsPolicy> RightsService::SetPolicy(const v1::RightsPolicy& policy,
                                                          const std::string& operator_id) {
  (void)operator_id;
  if (auto s = rights::ValidatePolicy(policy); !s.ok()) return s;
  const uint64_t hlc = hlc_.Now();
  v1::RightsPolicy saved;
  absl::Status s = RunTx([&](OrderTx& tx, bool* fed) -> absl::Status {
    if (!SiteKnown(tx, policy.site())) {
      return absl::NotFoundError(StrCat("unknown site '", policy.site(), "'"));
    }
    saved = tx.SavePolicy(policy);
    v1::FeedEntry e;
    e.set_hlc(hlc);
    *e.mutable_rights_policy() = saved;
    tx.AppendFeed(policy.site(), std::move(e));
    *fed = true;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return saved;
}

absl::StatusOr<v1::ListingsResponse> RightsService::Listings(const v1::ListingsRequest& request) {
  if (request.channel().empty()) return absl::InvalidArgumentError("channel is required");
  auto channels = orders_->ListChannels();
  if (!channels.ok()) return channels.status();
  const v1::Channel* channel = nullptr;
  for (const auto& c : channels->channels()) {
    if (c.id() == request.channel()) channel = &c;
  }
  if (!channel) return absl::NotFoundError(StrCat("unknown channel '", request.channel(), "'"));
  auto available =
      orders_->AvailableBySku({channel->site_priority().begin(), channel->site_priority().end()});
  if (!available.ok()) return available.status();
  v1::ListingsResponse out;
  out.set_channel(channel->id());
  for (const auto& [sku, units] : *available) {
    v1::Listing* l = out.add_listings();
    l->set_sku(sku);
    l->set_central_available(units);
    l->set_buffer(channel->listing_buffer());
    l->set_quantity(rights::ListingQuantity(units, channel->listing_buffer()));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> RightsService::Verify() { return orders_->VerifyRights(); }

}  // namespace depot::central
