#include "central/orders.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <future>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "central/central_rights.h"
#include "central/routing.h"
#include "common/order_state.h"
#include "spdlog/spdlog.h"

namespace depot::central {
namespace {

using absl::StrCat;

constexpr int kMaxLines = 1000;
constexpr const char* kLocalChannel = "store";

bool IsShipped(v1::FulfilmentStatus s) {
  return s == v1::FULFILMENT_SHIPPED || s == v1::FULFILMENT_DELIVERED;
}

// Units a line of a shipped fulfilment shipped. The node reports `shipped`; older or partial
// reports fall back to what was picked, then to what was asked minus shorted.
int64_t LineShipped(const v1::FulfilmentLine& l) {
  if (l.shipped() > 0) return l.shipped();
  if (l.picked() > 0) return l.picked();
  return std::max<int64_t>(0, l.quantity() - l.short_quantity());
}

int64_t ShortTotal(const v1::Fulfilment& f) {
  int64_t n = 0;
  for (const auto& l : f.lines()) n += l.short_quantity();
  return n;
}

std::string OrderIdOf(uint64_t n) { return StrCat("O", absl::Dec(n, absl::kZeroPad8)); }

std::string Money(int64_t cents, const std::string& currency) {
  const int64_t a = cents < 0 ? -cents : cents;
  return StrCat(cents < 0 ? "-" : "", a / 100, ".", absl::Dec(a % 100, absl::kZeroPad2), " ",
                currency);
}

std::string By(const std::string& operator_id) {
  return operator_id.empty() ? "" : StrCat(" (by ", operator_id, ")");
}

// 64-bit FNV-1a of the request's deterministic serialization: "same content" for idempotency.
uint64_t Fingerprint(const v1::CaptureOrderRequest& r) {
  std::string bytes;
  r.SerializeToString(&bytes);  // no map fields: field order is canonical
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h & 0x7FFFFFFFFFFFFFFFULL;  // fits SQLite's signed integer
}

// The persisted inputs of DeriveOrderStatus besides the lines and fulfilments.
struct Flags {
  bool on_hold = false;
  bool rejected = false;
};
Flags FlagsOf(const v1::Order& o) {
  return {o.status() == v1::ORDER_ON_HOLD, o.status() == v1::ORDER_REJECTED};
}

int64_t OpenOf(const v1::OrderLine& l) {
  return std::max<int64_t>(0, l.quantity() - l.allocated() - l.cancelled());
}

// Recomputes every line's allocated and shipped from the fulfilments and the order's status;
// returns the open units.
int64_t Recompute(v1::Order* o, Flags flags) {
  std::map<uint32_t, v1::OrderLine*> by_no;
  for (auto& l : *o->mutable_lines()) {
    l.set_allocated(0);
    l.set_shipped(0);
    by_no[l.line_no()] = &l;
  }
  orders::OrderFacts facts;
  facts.on_hold = flags.on_hold;
  facts.rejected = flags.rejected;
  for (const auto& f : o->fulfilments()) {
    facts.fulfilments.push_back(f.status());
    if (f.status() == v1::FULFILMENT_CANCELLED) continue;
    for (const auto& fl : f.lines()) {
      auto it = by_no.find(fl.line_no());
      if (it == by_no.end()) continue;
      v1::OrderLine* l = it->second;
      if (IsShipped(f.status())) {
        const int64_t s = LineShipped(fl);
        l->set_allocated(l->allocated() + s);
        l->set_shipped(l->shipped() + s);
      } else {
        l->set_allocated(l->allocated() +
                         std::max<int64_t>(0, fl.quantity() - fl.short_quantity()));
      }
    }
  }
  int64_t open = 0;
  for (const auto& l : o->lines()) {
    facts.ordered += l.quantity();
    facts.shipped += l.shipped();
    facts.cancelled += l.cancelled();
    open += OpenOf(l);
  }
  facts.open_units = open;
  o->set_status(orders::DeriveOrderStatus(facts));
  return open;
}

// Whether the re-routing pass should retry the order's open units.
bool NeedsRouting(const v1::Order& o, int64_t open) {
  return open > 0 && o.local_site().empty() && !o.cancel_requested() &&
         o.status() != v1::ORDER_ON_HOLD && o.status() != v1::ORDER_REJECTED &&
         o.status() != v1::ORDER_CANCELLED;
}

void AddHistory(v1::Order* o, int64_t at_ms, const std::string& event, const std::string& site,
                const std::string& detail) {
  auto* h = o->add_history();
  h->set_at_ms(at_ms);
  h->set_event(event);
  h->set_site(site);
  h->set_detail(detail);
}

// Cancels every open unit (line.cancelled); returns how many.
int64_t CancelOpenUnits(v1::Order* o) {
  int64_t n = 0;
  for (auto& l : *o->mutable_lines()) {
    const int64_t open = OpenOf(l);
    l.set_cancelled(l.cancelled() + open);
    n += open;
  }
  return n;
}

// Sites that gave units of this order back (shorted, or cancelled on their own): routing
// excludes them.
std::set<std::string> Exclusions(const v1::Order& o) {
  std::set<std::string> out;
  for (const auto& f : o.fulfilments()) {
    if (ShortTotal(f) > 0 || (f.status() == v1::FULFILMENT_CANCELLED && !f.cancel_requested())) {
      out.insert(f.site());
    }
  }
  return out;
}

struct BatchCtx {
  int64_t now_ms;
  uint64_t hlc;
  const std::set<std::string>* online;
  bool* fed;
  bool naive = false;  // OrderServiceOptions.selling_rights == false
};

// Routes the order's open units with fresh availability: new fulfilments are released (stored
// in the order, their FulfilmentRelease appended to the site's feed), the routing note is set or
// cleared. Returns whether the order changed. Lines must be recomputed.
bool RouteOpen(OrderTx& tx, const BatchCtx& ctx, v1::Order* o) {
  routing::Request req;
  std::set<std::string> skus;
  for (const auto& l : o->lines()) {
    const int64_t open = OpenOf(l);
    if (open <= 0) continue;
    req.lines.push_back({l.line_no(), l.sku(), open});
    skus.insert(l.sku());
  }
  if (req.lines.empty()) {
    if (o->routing_note().empty()) return false;
    o->clear_routing_note();
    return true;
  }
  auto channel = tx.FindChannel(o->channel());
  std::string note;
  routing::Decision d;
  if (!channel) {
    d.unrouted = 1;
    note = StrCat("channel ", o->channel(), " is no longer known");
  } else {
    req.channel = channel->id();
    req.site_priority.assign(channel->site_priority().begin(), channel->site_priority().end());
    req.allow_split = channel->allow_split();
    req.ship_to_region = o->ship_to().region();
    req.excluded = Exclusions(*o);
    std::map<std::string, size_t> index;
    for (const v1::Site& s : tx.Sites()) {
      index[s.id()] = req.sites.size();
      routing::SiteSnapshot snap;
      snap.id = s.id();
      snap.region = s.region();
      snap.online = ctx.online->count(s.id()) > 0;
      req.sites.push_back(std::move(snap));
    }
    for (const std::string& sku : skus) {
      for (auto& [site, rights] : tx.RightsOf(sku)) {
        auto it = index.find(site);
        if (it != index.end()) req.sites[it->second].rights[sku] = rights;
      }
      if (ctx.naive) {
        // The baseline without selling rights: one shared counter, central's (stale) mirror of
        // each site's sellable stock, less what central already committed there. (It counts a
        // fulfilment twice once the node has reserved it, so it oversells less than a plain
        // shared counter would.)
        for (const auto& [site, sellable] : tx.MirrorSellable(sku)) {
          auto it = index.find(site);
          if (it == index.end()) continue;
          routing::SiteRights& r = req.sites[it->second].rights[sku];
          r.central_rights = std::max<int64_t>(0, sellable);
        }
      }
    }
    d = routing::Route(req);
    note = d.note;
  }
  bool changed = false;
  int n = o->fulfilments_size();
  for (const routing::Part& part : d.parts) {
    v1::Fulfilment* f = o->add_fulfilments();
    f->set_fulfilment_id(StrCat(o->order_id(), "-", ++n));
    f->set_site(part.site);
    f->set_status(v1::FULFILMENT_RELEASED);
    f->set_reason(part.reason);
    f->set_released_ms(ctx.now_ms);
    v1::FeedEntry e;
    e.set_hlc(ctx.hlc);
    v1::FulfilmentRelease* r = e.mutable_release();
    r->set_fulfilment_id(f->fulfilment_id());
    r->set_order_id(o->order_id());
    r->set_channel(o->channel());
    r->set_service_level(o->service_level());
    *r->mutable_ship_to() = o->ship_to();
    r->set_released_hlc(ctx.hlc);
    int64_t units = 0;
    for (const routing::PartLine& pl : part.lines) {
      v1::FulfilmentLine* fl = f->add_lines();
      fl->set_line_no(pl.line_no);
      fl->set_sku(pl.sku);
      fl->set_quantity(pl.quantity);
      *r->add_lines() = *fl;
      units += pl.quantity;
    }
    tx.AppendFeed(part.site, std::move(e));
    rights::CommitRelease(tx, *f, ctx.now_ms, ctx.hlc);
    *ctx.fed = true;
    AddHistory(o, ctx.now_ms, "routed", part.site, part.reason);
    AddHistory(o, ctx.now_ms, "released", part.site,
               StrCat(f->fulfilment_id(), ": ", units, units == 1 ? " unit" : " units"));
    changed = true;
  }
  if (d.unrouted > 0 && channel && !ctx.naive) {
    // Short at every candidate: ask the online ones whose stock central has no rights for.
    std::map<std::string, int64_t> missing;
    for (const routing::OpenLine& l : req.lines) missing[l.sku] += l.open;
    for (const routing::Part& part : d.parts) {
      for (const routing::PartLine& pl : part.lines) missing[pl.sku] -= pl.quantity;
    }
    std::vector<std::string> candidates = req.site_priority;
    if (candidates.empty()) {
      for (const routing::SiteSnapshot& s : req.sites) candidates.push_back(s.id);
    }
    std::erase_if(candidates, [&](const std::string& s) { return req.excluded.count(s) > 0; });
    if (rights::AskNodes(tx, missing, candidates, *ctx.online, o->order_id(), ctx.now_ms,
                         ctx.hlc)) {
      *ctx.fed = true;
    }
  }
  if (d.unrouted > 0) {
    if (note != o->routing_note()) {
      o->set_routing_note(note);
      AddHistory(o, ctx.now_ms, "backordered", "", note);
      changed = true;
    }
  } else if (!o->routing_note().empty()) {
    o->clear_routing_note();
    changed = true;
  }
  return changed;
}

absl::Status ValidateCapture(v1::CaptureOrderRequest* r) {
  if (r->channel().empty()) return absl::InvalidArgumentError("channel is required");
  if (r->external_id().empty()) return absl::InvalidArgumentError("external_id is required");
  if (r->external_id().size() > 128) {
    return absl::InvalidArgumentError("external_id is longer than 128 characters");
  }
  if (r->lines().empty()) return absl::InvalidArgumentError("an order needs at least one line");
  if (r->lines_size() > kMaxLines) {
    return absl::InvalidArgumentError(StrCat("an order has at most ", kMaxLines, " lines"));
  }
  for (int i = 0; i < r->lines_size(); ++i) {
    const auto& l = r->lines(i);
    if (l.sku().empty())
      return absl::InvalidArgumentError(StrCat("line ", i + 1, ": sku is required"));
    if (l.quantity() <= 0) {
      return absl::InvalidArgumentError(
          StrCat("line ", i + 1, ": quantity must be greater than 0 (got ", l.quantity(), ")"));
    }
    if (l.quantity() > 1'000'000'000) {
      return absl::InvalidArgumentError(StrCat("line ", i + 1, ": quantity is too large"));
    }
    if (l.unit_price_cents() < 0) {
      return absl::InvalidArgumentError(
          StrCat("line ", i + 1, ": unit_price_cents must not be negative"));
    }
  }
  if (r->ship_to().country().empty()) {
    return absl::InvalidArgumentError("ship_to.country is required");
  }
  if (r->shipping_fee_cents() < 0 || r->marketplace_fee_cents() < 0) {
    return absl::InvalidArgumentError("fees must not be negative");
  }
  if (r->currency().empty()) r->set_currency("EUR");
  const std::string& c = r->currency();
  if (c.size() != 3 ||
      !std::all_of(c.begin(), c.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; })) {
    return absl::InvalidArgumentError(
        StrCat("currency '", c, "' is not a 3-letter upper-case ISO 4217 code"));
  }
  return absl::OkStatus();
}

// Why the ship-to address needs a human: empty when it passes.
std::string AddressProblems(const v1::Address& a) {
  std::vector<std::string> missing, problems;
  if (a.line1().empty()) missing.push_back("line1");
  if (a.city().empty()) missing.push_back("city");
  if (a.postal_code().empty()) missing.push_back("postal_code");
  if (!missing.empty())
    problems.push_back(StrCat("ship-to address lacks ", absl::StrJoin(missing, ", ")));
  const std::string& c = a.country();
  if (c.size() != 2 || !std::isupper(static_cast<unsigned char>(c[0])) ||
      !std::isupper(static_cast<unsigned char>(c[1]))) {
    problems.push_back(StrCat("ship-to country '", c, "' is not a 2-letter upper-case code"));
  }
  return absl::StrJoin(problems, "; ");
}

absl::Status CaptureInTx(OrderTx& tx, const BatchCtx& ctx, const v1::CaptureOrderRequest& req,
                         uint64_t fingerprint, const std::string& operator_id,
                         v1::CaptureOrderResponse* out) {
  if (auto existing = tx.FindExternal(req.channel(), req.external_id())) {
    if (existing->second != fingerprint) {
      return absl::AlreadyExistsError(StrCat("channel ", req.channel(), " external id ",
                                             req.external_id(), " was captured as order ",
                                             existing->first, " with different content"));
    }
    auto o = tx.LoadOrder(existing->first);
    if (!o) return absl::InternalError(StrCat("order ", existing->first, " is missing"));
    *out->mutable_order() = std::move(*o);
    out->set_replayed(true);
    return absl::OkStatus();
  }
  auto channel = tx.FindChannel(req.channel());
  if (!channel) return absl::NotFoundError(StrCat("unknown channel '", req.channel(), "'"));

  v1::Order o;
  uint32_t line_no = 0;
  int64_t value = 0, units = 0;
  for (int i = 0; i < req.lines_size(); ++i) {
    const auto& in = req.lines(i);
    int64_t line_value = 0;
    if (__builtin_mul_overflow(in.quantity(), in.unit_price_cents(), &line_value) ||
        __builtin_add_overflow(value, line_value, &value)) {
      return absl::InvalidArgumentError("the order's value overflows");
    }
    std::vector<v1::KitComponent> kit = tx.KitComponents(in.sku());
    if (kit.empty()) {
      if (!tx.SafetyStock(in.sku())) {
        return absl::NotFoundError(StrCat("line ", i + 1, ": unknown SKU '", in.sku(), "'"));
      }
      v1::OrderLine* l = o.add_lines();
      l->set_line_no(++line_no);
      l->set_sku(in.sku());
      l->set_quantity(in.quantity());
      l->set_unit_price_cents(in.unit_price_cents());
      units += in.quantity();
      continue;
    }
    // A kit: one line per component; the kit's unit price rides on the first component line.
    for (size_t k = 0; k < kit.size(); ++k) {
      v1::OrderLine* l = o.add_lines();
      l->set_line_no(++line_no);
      l->set_sku(kit[k].component_sku());
      l->set_kit_sku(in.sku());
      int64_t q = 0;
      if (__builtin_mul_overflow(in.quantity(), kit[k].quantity(), &q)) {
        return absl::InvalidArgumentError(StrCat("line ", i + 1, ": quantity is too large"));
      }
      l->set_quantity(q);
      l->set_unit_price_cents(k == 0 ? in.unit_price_cents() : 0);
      units += q;
    }
  }
  o.set_order_id(OrderIdOf(tx.NextOrderNumber()));
  o.set_channel(req.channel());
  o.set_external_id(req.external_id());
  *o.mutable_ship_to() = req.ship_to();
  o.set_service_level(req.service_level());
  o.set_shipping_fee_cents(req.shipping_fee_cents());
  o.set_marketplace_fee_cents(req.marketplace_fee_cents());
  o.set_currency(req.currency());
  o.set_value_cents(value);
  o.set_captured_ms(ctx.now_ms);
  AddHistory(
      &o, ctx.now_ms, "captured", "",
      StrCat("channel ", o.channel(), ", external id ", o.external_id(), ": ", o.lines_size(),
             o.lines_size() == 1 ? " line, " : " lines, ", units,
             units == 1 ? " unit, " : " units, ", Money(value, o.currency()), By(operator_id)));

  std::vector<std::string> hold;
  if (channel->review_above_cents() > 0 && value > channel->review_above_cents()) {
    hold.push_back(StrCat("value ", Money(value, o.currency()), " is above channel ", channel->id(),
                          "'s review limit ", Money(channel->review_above_cents(), o.currency())));
  }
  if (std::string a = AddressProblems(o.ship_to()); !a.empty()) hold.push_back(a);
  Flags flags;
  if (!hold.empty()) {
    flags.on_hold = true;
    o.set_hold_reason(absl::StrJoin(hold, "; "));
    AddHistory(&o, ctx.now_ms, "held", "", o.hold_reason());
    Recompute(&o, flags);
  } else {
    Recompute(&o, flags);
    RouteOpen(tx, ctx, &o);
  }
  const int64_t open = Recompute(&o, flags);
  tx.SaveOrder(o, nullptr, fingerprint, NeedsRouting(o, open));
  *out->mutable_order() = std::move(o);
  out->set_replayed(false);
  return absl::OkStatus();
}

absl::StatusOr<v1::Order> LoadOrNotFound(OrderTx& tx, const std::string& order_id) {
  if (order_id.empty()) return absl::InvalidArgumentError("order_id is required");
  auto o = tx.LoadOrder(order_id);
  if (!o) return absl::NotFoundError(StrCat("unknown order '", order_id, "'"));
  return std::move(*o);
}

absl::Status ReviewInTx(OrderTx& tx, const BatchCtx& ctx, const v1::ReviewOrderRequest& req,
                        const std::string& operator_id, v1::Order* out) {
  auto loaded = LoadOrNotFound(tx, req.order_id());
  if (!loaded.ok()) return loaded.status();
  v1::Order o = std::move(*loaded);
  const v1::Order before = o;
  if (o.status() != v1::ORDER_ON_HOLD) {
    return absl::FailedPreconditionError(StrCat("order ", o.order_id(), " is not on hold (it is ",
                                                orders::OrderStatusName(o.status()), ")"));
  }
  Flags flags;
  o.set_review_note(req.note());
  const std::string detail = StrCat(req.note(), By(operator_id));
  if (req.approve()) {
    AddHistory(&o, ctx.now_ms, "approved", "", detail);
    Recompute(&o, flags);
    RouteOpen(tx, ctx, &o);
  } else {
    flags.rejected = true;
    AddHistory(&o, ctx.now_ms, "rejected", "", detail);
  }
  const int64_t open = Recompute(&o, flags);
  tx.SaveOrder(o, &before, 0, NeedsRouting(o, open));
  *out = std::move(o);
  return absl::OkStatus();
}

absl::Status CancelInTx(OrderTx& tx, const BatchCtx& ctx, const v1::CancelOrderRequest& req,
                        const std::string& operator_id, v1::Order* out) {
  auto loaded = LoadOrNotFound(tx, req.order_id());
  if (!loaded.ok()) return loaded.status();
  v1::Order o = std::move(*loaded);
  const v1::Order before = o;
  Flags flags = FlagsOf(o);
  if (flags.rejected) {
    return absl::FailedPreconditionError(StrCat("order ", o.order_id(), " was rejected"));
  }
  if (o.status() == v1::ORDER_CANCELLED) {
    *out = std::move(o);
    return absl::OkStatus();
  }
  const std::string reason = req.reason().empty() ? std::string("no reason given") : req.reason();
  flags.on_hold = false;  // a held order cancels completely
  Recompute(&o, flags);
  const int64_t cancelled = CancelOpenUnits(&o);
  int asked = 0, too_late = 0, pending = 0;
  for (auto& f : *o.mutable_fulfilments()) {
    orders::CentralView view;
    view.status = f.status();
    view.cancel_requested = f.cancel_requested();
    view.short_total = ShortTotal(f);
    switch (orders::CentralCancelAction(view)) {
      case orders::CentralCancel::kAsk: {
        f.set_cancel_requested(true);
        v1::FeedEntry e;
        e.set_hlc(ctx.hlc);
        e.mutable_cancel()->set_fulfilment_id(f.fulfilment_id());
        e.mutable_cancel()->set_reason(reason);
        tx.AppendFeed(f.site(), std::move(e));
        *ctx.fed = true;
        AddHistory(&o, ctx.now_ms, "cancel_requested", f.site(),
                   StrCat(f.fulfilment_id(), ": ", reason, By(operator_id)));
        ++asked;
        break;
      }
      case orders::CentralCancel::kTooLate:
        ++too_late;
        break;
      case orders::CentralCancel::kNothingToDo:
        if (f.status() != v1::FULFILMENT_CANCELLED && f.cancel_requested()) ++pending;
        break;
    }
  }
  if (cancelled == 0 && asked == 0) {
    if (pending == 0 && too_late > 0) {
      return absl::FailedPreconditionError(
          StrCat("order ", o.order_id(), " already shipped; start a return"));
    }
    *out = std::move(before);  // already asked: nothing new
    return absl::OkStatus();
  }
  if (cancelled > 0) {
    AddHistory(&o, ctx.now_ms, "cancelled", "",
               StrCat(cancelled, cancelled == 1 ? " open unit" : " open units",
                      " cancelled: ", reason, By(operator_id)));
  }
  o.set_cancel_requested(true);
  o.clear_routing_note();
  const int64_t open = Recompute(&o, flags);
  tx.SaveOrder(o, &before, 0, NeedsRouting(o, open));
  *out = std::move(o);
  return absl::OkStatus();
}

absl::Status DeliveryInTx(OrderTx& tx, const BatchCtx& ctx, const v1::DeliveryRequest& req,
                          const std::string& operator_id, v1::Order* out) {
  auto loaded = LoadOrNotFound(tx, req.order_id());
  if (!loaded.ok()) return loaded.status();
  v1::Order o = std::move(*loaded);
  const v1::Order before = o;
  v1::Fulfilment* f = nullptr;
  if (req.fulfilment_id().empty()) {
    int live = 0;
    for (auto& x : *o.mutable_fulfilments()) {
      if (x.status() != v1::FULFILMENT_CANCELLED) {
        ++live;
        f = &x;
      }
    }
    if (live != 1) {
      return absl::InvalidArgumentError(
          StrCat("order ", o.order_id(), " has ", live, " fulfilments: name the fulfilment_id"));
    }
  } else {
    for (auto& x : *o.mutable_fulfilments()) {
      if (x.fulfilment_id() == req.fulfilment_id()) f = &x;
    }
    if (!f) {
      return absl::NotFoundError(
          StrCat("order ", o.order_id(), " has no fulfilment '", req.fulfilment_id(), "'"));
    }
  }
  if (auto s = orders::CheckDelivery(f->status()); !s.ok()) return s;
  if (req.failed()) {
    f->set_delivery_note(req.note());
    v1::ExceptionEntry x;
    x.set_kind("failed_shipment");
    x.set_node_id(f->site());
    x.set_order_id(o.order_id());
    x.set_fulfilment_id(f->fulfilment_id());
    x.set_at_ms(ctx.now_ms);
    x.set_message(StrCat("delivery of ", f->fulfilment_id(), " (", f->carrier(), " ", f->tracking(),
                         ") failed: ", req.note().empty() ? "no note" : req.note()));
    tx.AddException(x);
    AddHistory(&o, ctx.now_ms, "delivery_failed", f->site(),
               StrCat(f->fulfilment_id(), ": ", req.note(), By(operator_id)));
  } else {
    if (f->status() == v1::FULFILMENT_DELIVERED) {
      *out = std::move(o);
      return absl::OkStatus();
    }
    f->set_status(v1::FULFILMENT_DELIVERED);
    f->set_delivered_ms(ctx.now_ms);
    f->set_delivery_note(req.note());
    AddHistory(
        &o, ctx.now_ms, "delivered", f->site(),
        StrCat(f->fulfilment_id(), req.note().empty() ? "" : ": ", req.note(), By(operator_id)));
  }
  const int64_t open = Recompute(&o, FlagsOf(o));
  tx.SaveOrder(o, &before, 0, NeedsRouting(o, open));
  *out = std::move(o);
  return absl::OkStatus();
}

// Re-routes one order's open units (the re-routing pass). *changed: the order was rewritten
// with new fulfilments or a new note.
absl::Status RerouteInTx(OrderTx& tx, const BatchCtx& ctx, const std::string& order_id,
                         bool* changed) {
  auto loaded = tx.LoadOrder(order_id);
  if (!loaded) return absl::OkStatus();
  v1::Order o = std::move(*loaded);
  const v1::Order before = o;
  const Flags flags = FlagsOf(o);
  int64_t open = Recompute(&o, flags);
  if (!NeedsRouting(o, open)) {
    tx.SaveOrder(o, &before, 0, false);  // leaves the queue
    return absl::OkStatus();
  }
  if (!RouteOpen(tx, ctx, &o)) return absl::OkStatus();
  open = Recompute(&o, flags);
  tx.SaveOrder(o, &before, 0, NeedsRouting(o, open));
  *changed = true;
  return absl::OkStatus();
}

void RaiseException(OrderTx& tx, const std::string& kind, const std::string& node,
                    const std::string& order_id, const std::string& fulfilment_id,
                    const std::string& sku, const std::string& message, int64_t at_ms) {
  v1::ExceptionEntry x;
  x.set_kind(kind);
  x.set_node_id(node);
  x.set_order_id(order_id);
  x.set_fulfilment_id(fulfilment_id);
  x.set_sku(sku);
  x.set_message(message);
  x.set_at_ms(at_ms);
  tx.AddException(x);
}

const char* LocalKindName(v1::LocalOrderKind k) {
  return k == v1::CLICK_AND_COLLECT ? "click-and-collect" : "counter sale";
}

// The first update of a node-local sale: central records the order.
void CreateLocalOrder(OrderTx& tx, const std::string& node, const v1::FulfilmentUpdate& u,
                      int64_t at_ms) {
  const std::string order_id = u.order_id().empty() ? u.fulfilment_id() : u.order_id();
  if (tx.LoadOrder(order_id) || tx.FindExternal(kLocalChannel, order_id)) {
    RaiseException(tx, "conflict", node, order_id, u.fulfilment_id(), "",
                   StrCat("node ", node, " reported local order ", order_id, " (fulfilment ",
                          u.fulfilment_id(), "), but central has an order with that id"),
                   at_ms);
    return;
  }
  v1::Order o;
  o.set_order_id(order_id);
  o.set_channel(kLocalChannel);
  o.set_external_id(order_id);
  o.set_local_site(node);
  o.set_currency("EUR");
  o.set_service_level(u.local_kind() == v1::CLICK_AND_COLLECT ? "click_and_collect" : "counter");
  o.set_captured_ms(at_ms);
  int64_t value = 0;
  for (int i = 0; i < u.local_lines_size(); ++i) {
    const auto& in = u.local_lines(i);
    v1::OrderLine* l = o.add_lines();
    l->set_line_no(i + 1);
    l->set_sku(in.sku());
    l->set_quantity(in.quantity());
    l->set_unit_price_cents(in.unit_price_cents());
    value += in.quantity() * in.unit_price_cents();
  }
  o.set_value_cents(value);
  v1::Fulfilment* f = o.add_fulfilments();
  f->set_fulfilment_id(u.fulfilment_id());
  f->set_site(node);
  f->set_status(u.status());
  f->set_reason(StrCat(LocalKindName(u.local_kind()), " at ", node));
  f->set_released_ms(at_ms);
  if (u.lines_size() > 0) {
    *f->mutable_lines() = u.lines();
  } else {
    for (const auto& l : o.lines()) {
      v1::FulfilmentLine* fl = f->add_lines();
      fl->set_line_no(l.line_no());
      fl->set_sku(l.sku());
      fl->set_quantity(l.quantity());
    }
  }
  *f->mutable_packages() = u.packages();
  f->set_carrier(u.carrier());
  f->set_tracking(u.tracking());
  if (IsShipped(u.status())) f->set_shipped_ms(at_ms);
  AddHistory(&o, at_ms, "captured", node,
             StrCat(LocalKindName(u.local_kind()), " at ", node,
                    u.operator_id().empty() ? "" : StrCat(" (by ", u.operator_id(), ")")));
  AddHistory(&o, at_ms, u.change().empty() ? orders::StatusName(u.status()) : u.change(), node,
             StrCat(u.fulfilment_id(), u.note().empty() ? "" : ": ", u.note()));
  Recompute(&o, Flags{});
  if (o.status() == v1::ORDER_SHIPPED || o.status() == v1::ORDER_DELIVERED) {
    o.set_shipped_ms(at_ms);
  }
  tx.SaveOrder(o, nullptr, 0, false);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Node updates (inside the store's ApplyEvents transaction)

void ApplyNodeUpdate(OrderTx& tx, const std::string& node, const v1::Event& event) {
  const v1::FulfilmentUpdate& u = event.fulfilment();
  const int64_t at_ms = HybridLogicalClock::Millis(u.hlc() != 0 ? u.hlc() : event.hlc());
  const std::string change = u.change().empty() ? orders::StatusName(u.status()) : u.change();
  std::optional<std::string> order_id = tx.OrderOfFulfilment(u.fulfilment_id());
  if (!order_id) {
    if (u.local_kind() != v1::LOCAL_ORDER_KIND_UNSPECIFIED) {
      CreateLocalOrder(tx, node, u, at_ms);
      return;
    }
    RaiseException(tx, "unknown_fulfilment", node, u.order_id(), u.fulfilment_id(), "",
                   StrCat("node ", node, " reported '", change, "' for fulfilment '",
                          u.fulfilment_id(), "', which central never released"),
                   at_ms);
    return;
  }
  std::optional<v1::Order> loaded = tx.LoadOrder(*order_id);
  if (!loaded) {
    RaiseException(tx, "unknown_fulfilment", node, *order_id, u.fulfilment_id(), "",
                   StrCat("fulfilment '", u.fulfilment_id(), "' names order ", *order_id,
                          ", which central does not have"),
                   at_ms);
    return;
  }
  v1::Order o = std::move(*loaded);
  const v1::Order before = o;
  v1::Fulfilment* f = nullptr;
  for (auto& x : *o.mutable_fulfilments()) {
    if (x.fulfilment_id() == u.fulfilment_id()) f = &x;
  }
  if (!f) return;  // the index and the order disagree: cannot happen
  if (f->site() != node) {
    RaiseException(tx, "conflict", node, o.order_id(), f->fulfilment_id(), "",
                   StrCat("node ", node, " reported '", change, "' for fulfilment ",
                          f->fulfilment_id(), ", which was released to ", f->site()),
                   at_ms);
    return;
  }
  const v1::FulfilmentStatus old_status = f->status();
  const v1::Fulfilment f_before = *f;  // for the rights deltas
  std::map<uint32_t, int64_t> old_short;
  for (const auto& l : f->lines()) old_short[l.line_no()] += l.short_quantity();

  orders::CentralView view;
  view.status = f->status();
  view.cancel_requested = f->cancel_requested();
  view.short_total = ShortTotal(*f);
  const orders::MergeOutcome m = orders::MergeNodeUpdate(view, u);
  if (m.take_lines) {
    *f->mutable_lines() = u.lines();
    *f->mutable_packages() = u.packages();
    f->set_carrier(u.carrier());
    f->set_tracking(u.tracking());
  }
  f->set_status(m.status);
  if (IsShipped(m.status) && !IsShipped(old_status)) f->set_shipped_ms(at_ms);
  if (o.local_site().empty() && u.local_kind() == v1::LOCAL_ORDER_KIND_UNSPECIFIED) {
    // Central's allocation: shipped units consume its rights, short ones return them, a closed
    // fulfilment drops its commitment (central/central_rights.h). Local orders are the node's.
    rights::ApplyFulfilmentChange(tx, node, o.order_id(), f_before, *f, at_ms,
                                  u.hlc() != 0 ? u.hlc() : event.hlc());
  }
  std::string detail = StrCat(f->fulfilment_id(), u.note().empty() ? "" : ": ", u.note());
  if (!m.take_lines && m.status == old_status && u.status() != old_status) {
    absl::StrAppend(&detail, " (node reports ", orders::StatusName(u.status()), "; central keeps ",
                    orders::StatusName(old_status), ")");
  }
  AddHistory(&o, at_ms, change, node, detail);

  for (const std::string& kind : m.exceptions) {
    if (kind == "short_pick") {
      for (const auto& l : f->lines()) {
        const int64_t more = l.short_quantity() - old_short[l.line_no()];
        if (more <= 0) continue;
        const std::string reason = l.short_reason().empty() ? u.note() : l.short_reason();
        RaiseException(
            tx, "short_pick", node, o.order_id(), f->fulfilment_id(), l.sku(),
            StrCat(node, " shorted ", more, " of ", l.quantity(), " units of ", l.sku(), " for ",
                   f->fulfilment_id(), reason.empty() ? "" : StrCat(" (", reason, ")"),
                   o.cancel_requested() ? "" : "; central re-routes them"),
            at_ms);
        if (reason == "not_found" || reason == "damaged") {
          RaiseException(tx, "stock_discrepancy", node, o.order_id(), f->fulfilment_id(), l.sku(),
                         StrCat(node, " could not pick ", more, " units of ", l.sku(), " (", reason,
                                "): its stock record needs a count"),
                         at_ms);
        }
      }
    } else if (kind == "cancel_after_ship") {
      RaiseException(tx, "cancel_after_ship", node, o.order_id(), f->fulfilment_id(), "",
                     StrCat("cancel of order ", o.order_id(), " came after ", f->fulfilment_id(),
                            " shipped from ", node, ": start a return"),
                     at_ms);
    } else {
      RaiseException(
          tx, kind, node, o.order_id(), f->fulfilment_id(), "",
          StrCat("node ", node, " reported ", f->fulfilment_id(), " as ",
                 orders::StatusName(u.status()), " ('", change, "') but central has it ",
                 orders::StatusName(old_status), "; central keeps ", orders::StatusName(m.status)),
          at_ms);
    }
  }
  const Flags flags = FlagsOf(o);
  if (m.status == v1::FULFILMENT_CANCELLED && old_status != v1::FULFILMENT_CANCELLED &&
      f->cancel_requested()) {
    // The customer's cancellation took these units; a node cancelling on its own hands them
    // back to routing instead (Exclusions keeps the site out).
    std::map<uint32_t, int64_t> units;
    for (const auto& l : f->lines()) {
      units[l.line_no()] += std::max<int64_t>(0, l.quantity() - l.short_quantity());
    }
    for (auto& l : *o.mutable_lines()) l.set_cancelled(l.cancelled() + units[l.line_no()]);
  }
  int64_t open = Recompute(&o, flags);
  if (open > 0 && o.cancel_requested()) {
    const int64_t n = CancelOpenUnits(&o);
    AddHistory(&o, at_ms, "cancelled", node,
               StrCat(n, n == 1 ? " unit" : " units", " handed back by ", node,
                      " cancelled: the customer cancelled"));
    open = Recompute(&o, flags);
  }
  if (o.shipped_ms() == 0 &&
      (o.status() == v1::ORDER_SHIPPED || o.status() == v1::ORDER_DELIVERED)) {
    o.set_shipped_ms(at_ms);
  }
  tx.SaveOrder(o, &before, 0, NeedsRouting(o, open));
}

// ---------------------------------------------------------------------------------------------
// KPIs

OrderKpiFacts KpiFactsOf(const v1::Order& o) {
  OrderKpiFacts k;
  k.channel = o.channel();
  k.captured_ms = o.captured_ms();
  k.shipped_ms = o.shipped_ms();
  for (const auto& l : o.lines()) {
    k.units_requested += l.quantity() - l.cancelled();
    k.units_shipped += l.shipped();
  }
  return k;
}

FulfilmentKpiFacts KpiFactsOf(const v1::Order& o, const v1::Fulfilment& f) {
  FulfilmentKpiFacts k;
  k.site = f.site();
  k.captured_ms = o.captured_ms();
  const bool shipped = IsShipped(f.status());
  const bool customer_cancelled = f.status() == v1::FULFILMENT_CANCELLED && f.cancel_requested();
  if (shipped) k.shipped_ms = f.shipped_ms();
  for (const auto& l : f.lines()) {
    k.units_requested += customer_cancelled ? l.short_quantity() : l.quantity();
    if (shipped) k.units_shipped += LineShipped(l);
  }
  return k;
}

void KpiAccumulator::Add(const OrderKpiFacts& o) {
  Acc& a = channels_[o.channel];
  a.requested += o.units_requested;
  a.shipped_units += o.units_shipped;
  if (o.shipped_ms > 0) a.cycle_s.push_back((o.shipped_ms - o.captured_ms) / 1000.0);
}

void KpiAccumulator::Add(const FulfilmentKpiFacts& f) {
  Acc& a = sites_[f.site];
  a.requested += f.units_requested;
  a.shipped_units += f.units_shipped;
  if (f.shipped_ms > 0) a.cycle_s.push_back((f.shipped_ms - f.captured_ms) / 1000.0);
}

void KpiAccumulator::Add(const v1::Order& o) {
  Add(KpiFactsOf(o));
  for (const auto& f : o.fulfilments()) Add(KpiFactsOf(o, f));
}

v1::KpiResponse KpiAccumulator::Result() const {
  auto fill = [](const Acc& a, v1::KpiRow* row) {
    std::vector<double> c = a.cycle_s;
    std::sort(c.begin(), c.end());
    row->set_orders(static_cast<int64_t>(c.size()));
    if (!c.empty()) {
      double sum = 0;
      for (double x : c) sum += x;
      auto pct = [&](double q) {
        size_t rank = static_cast<size_t>(std::ceil(q * c.size()));
        return c[std::max<size_t>(rank, 1) - 1];
      };
      row->set_cycle_time_avg_s(sum / c.size());
      row->set_cycle_time_p50_s(pct(0.5));
      row->set_cycle_time_p90_s(pct(0.9));
    }
    row->set_units_requested(a.requested);
    row->set_units_shipped(a.shipped_units);
    row->set_fill_rate(a.requested > 0 ? static_cast<double>(a.shipped_units) / a.requested : 0);
  };
  v1::KpiResponse out;
  for (const auto& [site, a] : sites_) {
    v1::KpiRow* row = out.add_by_site();
    row->set_site(site);
    fill(a, row);
  }
  for (const auto& [channel, a] : channels_) {
    v1::KpiRow* row = out.add_by_channel();
    row->set_channel(channel);
    fill(a, row);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// OrderService

OrderService::OrderService(CentralStore* store, const Clock* clock, OnlineSites online,
                           FeedChanged feed_changed, OrderServiceOptions options)
    : store_(store),
      orders_(store->orders()),
      clock_(clock),
      hlc_(*clock),
      online_(std::move(online)),
      feed_changed_(std::move(feed_changed)),
      options_(options) {
  if (!orders_) throw std::invalid_argument("OrderService needs a store with orders()");
  orders_->SetEventsAppliedListener([this] { Kick(); });
  writer_ = std::thread([this] { WriterLoop(); });
  if (options_.reroute_every_ms > 0) router_ = std::thread([this] { RoutingLoop(); });
}

OrderService::~OrderService() {
  orders_->SetEventsAppliedListener(nullptr);
  {
    std::lock_guard<std::mutex> lock(route_mu_);
    route_stop_ = true;
  }
  route_cv_.notify_all();
  if (router_.joinable()) router_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  writer_.join();
}

void OrderService::Submit(std::function<absl::Status(OrderTx&, Ctx&)> fn,
                          std::function<void(absl::Status)> done) {
  Op op;
  op.fn = [this, fn = std::move(fn)](OrderTx& tx) { return fn(tx, *ctx_); };
  op.done = std::move(done);
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(op));
  }
  cv_.notify_one();
}

absl::Status OrderService::SubmitAndWait(std::function<absl::Status(OrderTx&, Ctx&)> fn) {
  std::promise<absl::Status> p;
  auto f = p.get_future();
  Submit(std::move(fn), [&p](absl::Status s) { p.set_value(std::move(s)); });
  return f.get();
}

void OrderService::WriterLoop() {
  for (;;) {
    std::vector<Op> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    Ctx ctx;
    ctx.now_ms = clock_->NowMicros() / 1000;
    ctx.hlc = hlc_.Now();
    if (online_) ctx.online = online_();
    ctx.naive = !options_.selling_rights;
    ctx_ = &ctx;
    std::vector<OrderStore::TxFn*> fns;
    fns.reserve(batch.size());
    for (Op& op : batch) fns.push_back(&op.fn);
    std::vector<absl::Status> results;
    const absl::Status commit = orders_->RunBatch(fns, &results);
    ctx_ = nullptr;
    if (!commit.ok()) spdlog::warn("orders: write transaction failed: {}", commit.ToString());
    if (commit.ok() && ctx.fed && feed_changed_) feed_changed_();
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].done) batch[i].done(commit.ok() ? results[i] : commit);
    }
  }
}

namespace {
BatchCtx View(int64_t now_ms, uint64_t hlc, const std::set<std::string>* online, bool* fed,
              bool naive) {
  return BatchCtx{now_ms, hlc, online, fed, naive};
}
}  // namespace

void OrderService::CaptureAsync(
    v1::CaptureOrderRequest request, std::string operator_id,
    std::function<void(absl::StatusOr<v1::CaptureOrderResponse>)> done) {
  if (auto s = ValidateCapture(&request); !s.ok()) return done(s);
  const uint64_t fp = Fingerprint(request);
  auto out = std::make_shared<v1::CaptureOrderResponse>();
  auto req = std::make_shared<v1::CaptureOrderRequest>(std::move(request));
  Submit(
      [req, fp, out, op = std::move(operator_id)](OrderTx& tx, Ctx& c) {
        out->Clear();
        return CaptureInTx(tx, View(c.now_ms, c.hlc, &c.online, &c.fed, c.naive), *req, fp, op, out.get());
      },
      [out, done = std::move(done)](absl::Status s) {
        if (!s.ok()) return done(s);
        done(std::move(*out));
      });
}

void OrderService::ReviewAsync(v1::ReviewOrderRequest request, std::string operator_id,
                               std::function<void(absl::StatusOr<v1::Order>)> done) {
  auto out = std::make_shared<v1::Order>();
  Submit(
      [request = std::move(request), out, op = std::move(operator_id)](OrderTx& tx, Ctx& c) {
        return ReviewInTx(tx, View(c.now_ms, c.hlc, &c.online, &c.fed, c.naive), request, op, out.get());
      },
      [out, done = std::move(done)](absl::Status s) {
        if (!s.ok()) return done(s);
        done(std::move(*out));
      });
}

void OrderService::CancelAsync(v1::CancelOrderRequest request, std::string operator_id,
                               std::function<void(absl::StatusOr<v1::Order>)> done) {
  auto out = std::make_shared<v1::Order>();
  Submit(
      [request = std::move(request), out, op = std::move(operator_id)](OrderTx& tx, Ctx& c) {
        return CancelInTx(tx, View(c.now_ms, c.hlc, &c.online, &c.fed, c.naive), request, op, out.get());
      },
      [out, done = std::move(done)](absl::Status s) {
        if (!s.ok()) return done(s);
        done(std::move(*out));
      });
}

void OrderService::ConfirmDeliveryAsync(v1::DeliveryRequest request, std::string operator_id,
                                        std::function<void(absl::StatusOr<v1::Order>)> done) {
  auto out = std::make_shared<v1::Order>();
  Submit(
      [request = std::move(request), out, op = std::move(operator_id)](OrderTx& tx, Ctx& c) {
        return DeliveryInTx(tx, View(c.now_ms, c.hlc, &c.online, &c.fed, c.naive), request, op, out.get());
      },
      [out, done = std::move(done)](absl::Status s) {
        if (!s.ok()) return done(s);
        done(std::move(*out));
      });
}

namespace {
// Runs an async call and waits for its answer.
template <typename T, typename F>
absl::StatusOr<T> Wait(F&& start) {
  std::promise<absl::StatusOr<T>> p;
  auto f = p.get_future();
  start([&p](absl::StatusOr<T> r) { p.set_value(std::move(r)); });
  return f.get();
}
}  // namespace

absl::StatusOr<v1::CaptureOrderResponse> OrderService::Capture(
    const v1::CaptureOrderRequest& request, const std::string& operator_id) {
  return Wait<v1::CaptureOrderResponse>(
      [&](auto done) { CaptureAsync(request, operator_id, std::move(done)); });
}

absl::StatusOr<v1::Order> OrderService::Review(const v1::ReviewOrderRequest& request,
                                               const std::string& operator_id) {
  return Wait<v1::Order>([&](auto done) { ReviewAsync(request, operator_id, std::move(done)); });
}

absl::StatusOr<v1::Order> OrderService::Cancel(const v1::CancelOrderRequest& request,
                                               const std::string& operator_id) {
  return Wait<v1::Order>([&](auto done) { CancelAsync(request, operator_id, std::move(done)); });
}

absl::StatusOr<v1::Order> OrderService::ConfirmDelivery(const v1::DeliveryRequest& request,
                                                        const std::string& operator_id) {
  return Wait<v1::Order>(
      [&](auto done) { ConfirmDeliveryAsync(request, operator_id, std::move(done)); });
}

absl::StatusOr<v1::Order> OrderService::Get(const std::string& order_id) {
  if (order_id.empty()) return absl::InvalidArgumentError("order_id is required");
  return orders_->GetOrder(order_id);
}

absl::StatusOr<v1::ListOrdersResponse> OrderService::List(const v1::ListOrdersRequest& request) {
  v1::ListOrdersRequest r = request;
  if (r.limit() == 0) r.set_limit(100);
  if (r.limit() > 1000) {
    return absl::InvalidArgumentError(StrCat("limit ", r.limit(), " is above 1000"));
  }
  auto out = orders_->ListOrders(r);
  if (!out.ok()) return out.status();
  for (auto& o : *out->mutable_orders()) o.clear_history();
  return out;
}

absl::StatusOr<v1::KpiResponse> OrderService::Kpis(const v1::KpiRequest& request) {
  if (request.from_ms() < 0 || request.to_ms() < 0 ||
      (request.to_ms() != 0 && request.to_ms() < request.from_ms())) {
    return absl::InvalidArgumentError("the window needs 0 <= from_ms <= to_ms (0 = unbounded)");
  }
  KpiAccumulator acc;
  auto s = orders_->ScanKpiFacts(
      request.from_ms(), request.to_ms(), [&acc](const OrderKpiFacts& o) { acc.Add(o); },
      [&acc](const FulfilmentKpiFacts& f) { acc.Add(f); });
  if (!s.ok()) return s;
  return acc.Result();
}

absl::StatusOr<int> OrderService::RunRoutingPass() {
  std::lock_guard<std::mutex> pass(pass_mu_);
  std::string cursor;
  {
    std::lock_guard<std::mutex> lock(route_mu_);
    cursor = route_cursor_;
  }
  auto ids = orders_->OrdersToRoute(cursor, options_.reroute_batch);
  if (!ids.ok()) return ids.status();
  {
    std::lock_guard<std::mutex> lock(route_mu_);
    route_cursor_ = ids->size() < options_.reroute_batch ? "" : ids->back();
  }
  if (ids->empty()) return 0;
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    size_t left = 0;
    int changed = 0;
    absl::Status error;
  } shared;
  shared.left = ids->size();
  for (const std::string& id : *ids) {
    auto changed = std::make_shared<bool>(false);
    Submit(
        [id, changed](OrderTx& tx, Ctx& c) {
          *changed = false;
          return RerouteInTx(tx, View(c.now_ms, c.hlc, &c.online, &c.fed, c.naive), id, changed.get());
        },
        [&shared, changed](absl::Status s) {
          std::lock_guard<std::mutex> lock(shared.mu);
          if (!s.ok() && shared.error.ok()) shared.error = s;
          if (s.ok() && *changed) ++shared.changed;
          if (--shared.left == 0) shared.cv.notify_all();
        });
  }
  std::unique_lock<std::mutex> lock(shared.mu);
  shared.cv.wait(lock, [&] { return shared.left == 0; });
  if (!shared.error.ok()) return shared.error;
  return shared.changed;
}

void OrderService::Kick() {
  {
    std::lock_guard<std::mutex> lock(route_mu_);
    kicked_ = true;
  }
  route_cv_.notify_all();
}

void OrderService::RoutingLoop() {
  using std::chrono::milliseconds;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(route_mu_);
      route_cv_.wait_for(lock, milliseconds(options_.reroute_every_ms),
                         [&] { return route_stop_ || kicked_; });
      if (route_stop_) return;
      kicked_ = false;
    }
    auto r = RunRoutingPass();
    if (!r.ok()) {
      spdlog::warn("orders: re-routing pass failed: {}", r.status().ToString());
    } else if (*r > 0) {
      spdlog::info("orders: re-routing pass released or noted {} orders", *r);
    }
    // At most ten passes a second however often events arrive (a pass is bounded work, but
    // unroutable backorders are evaluated again each time).
    std::unique_lock<std::mutex> lock(route_mu_);
    route_cv_.wait_for(lock, milliseconds(100), [&] { return route_stop_; });
    if (route_stop_) return;
  }
}

}  // namespace depot::central
