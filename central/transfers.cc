#include "central/transfers.h"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <vector>

#include "absl/strings/str_cat.h"
#include "central/central_rights.h"
#include "spdlog/spdlog.h"

namespace depot::central {
namespace {

using absl::StrCat;

std::string Units(int64_t n) { return StrCat(n, n == 1 ? " unit" : " units"); }


void Raise(OrderTx& tx, const std::string& kind, const std::string& node, const std::string& sku,
           const std::string& message, int64_t at_ms) {
  v1::ExceptionEntry x;
  x.set_kind(kind);
  x.set_node_id(node);
  x.set_sku(sku);
  x.set_message(message);
  x.set_at_ms(at_ms);
  tx.AddException(x);
}

// Subtracts units from *counter, clamping at 0 with a rights_conflict exception.
void Take(OrderTx& tx, const RightsRow& row, const char* name, int64_t* counter, int64_t units,
          const std::string& transfer_id, int64_t at_ms) {
  *counter -= units;
  if (*counter >= 0) return;
  Raise(tx, "rights_conflict", row.site, row.sku,
        StrCat("transfer ", transfer_id, " takes ", Units(units), " of ", row.sku, " from ",
               name, " at ", row.site, ", ", -*counter, " more than there were"),
        at_ms);
  *counter = 0;
}

bool Closed(v1::TransferStatus s) {
  return s == v1::TRANSFER_RECEIVED || s == v1::TRANSFER_RECEIVED_WITH_VARIANCE ||
         s == v1::TRANSFER_CANCELLED;
}

bool SiteKnown(OrderTx& tx, const std::string& site) {
  for (const v1::Site& s : tx.Sites()) {
    if (s.id() == site) return true;
  }
  return false;
}

void Feed(OrderTx& tx, const std::string& site, const v1::Transfer& t, uint64_t hlc) {
  v1::FeedEntry e;
  e.set_hlc(hlc);
  *e.mutable_transfer() = t;
  tx.AppendFeed(site, std::move(e));
}

}  // namespace

namespace transfers {

void ApplyTransferEvent(OrderTx& tx, const std::string& node, const v1::Event& event,
                        int64_t at_ms) {
  const v1::Transfer& t = event.transfer().transfer();
  const uint64_t hlc = event.hlc();
  if (t.transfer_id().empty() || (t.source() != node && t.destination() != node)) {
    Raise(tx, "transfer_conflict", node, "",
          StrCat("node ", node, " reported transfer '", t.transfer_id(), "' from ", t.source(),
                 " to ", t.destination(), ", which is not its own; ignored"),
          at_ms);
    return;
  }
  std::optional<v1::Transfer> stored = tx.LoadTransfer(t.transfer_id());
  if (stored && stored->version() >= t.version()) return;  // older news
  const v1::TransferStatus before =
      stored ? stored->status() : v1::TRANSFER_STATUS_UNSPECIFIED;
  if (!stored && !SiteKnown(tx, t.destination())) {
    Raise(tx, "transfer_unknown_site", node, "",
          StrCat("transfer ", t.transfer_id(), " from ", t.source(), " goes to '",
                 t.destination(), "', which is not a site: the goods cannot be forwarded"),
          at_ms);
  }
  tx.SaveTransfer(t, "");

  // Central's rights at the source: the commitment of a transfer central ordered ends when the
  // source ships or cancels it.
  if (t.origin() == "central" && before == v1::TRANSFER_REQUESTED &&
      t.status() != v1::TRANSFER_REQUESTED) {
    for (const auto& l : t.lines()) {
      RightsRow row = tx.LoadRights(t.source(), l.sku());
      Take(tx, row, "central's commitment", &row.central_committed, l.quantity(),
           t.transfer_id(), at_ms);
      const int64_t shipped = t.status() == v1::TRANSFER_CANCELLED ? 0 : l.shipped();
      const int64_t unshipped =
          t.status() == v1::TRANSFER_CANCELLED ? 0 : std::max<int64_t>(0, l.quantity() - shipped);
      if (shipped > 0) {
        Take(tx, row, "central's rights", &row.central_rights, shipped, t.transfer_id(), at_ms);
        row.consumed_total += shipped;
        rights::AddHistory(tx, row, hlc, at_ms, "ship", shipped, 0, t.transfer_id(),
                StrCat("transferred to ", t.destination()));
      }
      if (unshipped > 0) {
        Take(tx, row, "central's rights", &row.central_rights, unshipped, t.transfer_id(), at_ms);
        row.returned_total += unshipped;
        rights::AddHistory(tx, row, hlc, at_ms, "short_return", unshipped, 0, t.transfer_id(),
                "not shipped: rights back to the node as unassigned");
      }
      if (t.status() == v1::TRANSFER_CANCELLED) {
        rights::AddHistory(tx, row, hlc, at_ms, "cancel", l.quantity(), 0, t.transfer_id(),
                "transfer cancelled: commitment dropped, rights stay with central");
      }
      tx.SaveRights(row, nullptr);
    }
  }

  // Shipped: in transit; the destination learns of it through its feed.
  if (t.status() == v1::TRANSFER_SHIPPED && before != v1::TRANSFER_SHIPPED && !Closed(before)) {
    if (SiteKnown(tx, t.destination())) Feed(tx, t.destination(), t, hlc);
  }
  // Received: every line whose count differs from what left raises an exception; the source
  // learns the outcome.
  if ((t.status() == v1::TRANSFER_RECEIVED || t.status() == v1::TRANSFER_RECEIVED_WITH_VARIANCE) &&
      !Closed(before)) {
    for (int i = 0; i < t.lines_size(); ++i) {
      const auto& l = t.lines(i);
      const int64_t diff = l.received() - l.shipped();
      if (diff == 0) continue;
      Raise(tx, diff < 0 ? "transfer_short" : "transfer_over", t.destination(), l.sku(),
            StrCat("transfer ", t.transfer_id(), " from ", t.source(), " to ", t.destination(),
                   ", line ", i + 1, " (SKU ", l.sku(), "): shipped ", l.shipped(), ", received ",
                   l.received(), ": ", diff < 0 ? "short by " : "over by ", diff < 0 ? -diff : diff),
            at_ms);
    }
    if (SiteKnown(tx, t.source())) Feed(tx, t.source(), t, hlc);
  }
}

}  // namespace transfers

TransferService::TransferService(CentralStore* store, const Clock* clock,
                                 std::function<void()> feed_changed,
                                 TransferServiceOptions options)
    : store_(store),
      orders_(store->orders()),
      clock_(clock),
      hlc_(*clock),
      feed_changed_(std::move(feed_changed)),
      options_(options) {
  if (!orders_) throw std::invalid_argument("TransferService needs a store with orders()");
}

absl::StatusOr<std::pair<v1::Transfer, bool>> TransferService::Create(
    const v1::CreateTransferRequest& r, const std::string& operator_id) {
  if (r.source().empty()) return absl::InvalidArgumentError("source is required");
  if (r.destination().empty()) return absl::InvalidArgumentError("destination is required");
  if (r.source() == r.destination()) {
    return absl::InvalidArgumentError(
        StrCat("source and destination are the same site '", r.source(), "'"));
  }
  if (r.lines_size() == 0) return absl::InvalidArgumentError("a transfer needs at least one line");
  std::set<std::string> seen;
  for (const auto& l : r.lines()) {
    if (l.sku().empty()) return absl::InvalidArgumentError("every line needs a sku");
    if (!seen.insert(l.sku()).second) {
      return absl::InvalidArgumentError(StrCat("SKU '", l.sku(), "' appears twice"));
    }
    if (l.quantity() <= 0) {
      return absl::InvalidArgumentError(
          StrCat("quantity of SKU '", l.sku(), "' must be positive (got ", l.quantity(), ")"));
    }
  }
  const int64_t now_ms = clock_->NowMicros() / 1000;
  const uint64_t hlc = hlc_.Now();
  v1::Transfer out;
  bool replayed = false;
  OrderStore::TxFn op = [&](OrderTx& tx) -> absl::Status {
    replayed = false;
    if (!r.request_id().empty()) {
      if (auto prior = tx.TransferByRequest(r.request_id())) {
        out = *prior;
        replayed = true;
        return absl::OkStatus();
      }
    }
    for (const std::string& site : {r.source(), r.destination()}) {
      if (!SiteKnown(tx, site)) return absl::NotFoundError(StrCat("unknown site '", site, "'"));
    }
    for (const auto& l : r.lines()) {
      if (!tx.SafetyStock(l.sku())) {
        return absl::NotFoundError(StrCat("unknown SKU '", l.sku(), "'"));
      }
    }
    const std::string id = StrCat("T", tx.NextTransferNumber());
    if (options_.selling_rights) {
      for (const auto& l : r.lines()) {
        RightsRow row = tx.LoadRights(r.source(), l.sku());
        if (row.Available() < l.quantity()) {
          return absl::FailedPreconditionError(StrCat(
              "only ", std::max<int64_t>(0, row.Available()), " of SKU ", l.sku(),
              " available to central at ", r.source(), " (central selling rights: ",
              row.central_rights, " - committed ", row.central_committed, "), asked ",
              l.quantity(), "; order the transfer at the source to use its local rights"));
        }
        row.central_committed += l.quantity();
        rights::AddHistory(tx, row, hlc, now_ms, "allocate", l.quantity(), 0, id,
                StrCat("transfer to ", r.destination()));
        tx.SaveRights(row, nullptr);
      }
    }
    v1::Transfer t;
    t.set_transfer_id(id);
    t.set_source(r.source());
    t.set_destination(r.destination());
    t.set_status(v1::TRANSFER_REQUESTED);
    t.set_version(1);
    t.set_origin("central");
    t.set_note(r.note());
    t.set_created_by(operator_id);
    t.set_created_ms(now_ms);
    for (const auto& l : r.lines()) {
      auto* line = t.add_lines();
      line->set_sku(l.sku());
      line->set_quantity(l.quantity());
    }
    tx.SaveTransfer(t, r.request_id());
    Feed(tx, t.source(), t, hlc);
    out = t;
    return absl::OkStatus();
  };
  std::vector<OrderStore::TxFn*> ops{&op};
  std::vector<absl::Status> results;
  if (auto commit = orders_->RunBatch(ops, &results); !commit.ok()) return commit;
  if (!results[0].ok()) return results[0];
  if (!replayed && feed_changed_) feed_changed_();
  return std::make_pair(out, replayed);
}

absl::StatusOr<v1::ListTransfersResponse> TransferService::List(
    const v1::ListTransfersRequest& r) {
  const uint32_t limit = r.limit() == 0 ? 100 : r.limit();
  if (limit > 1000) return absl::InvalidArgumentError(StrCat("limit ", limit, " is above 1000"));
  auto all = orders_->ListTransfers(r.status(), r.site(), r.sku().empty() ? limit : 0);
  if (!all.ok()) return all.status();
  v1::ListTransfersResponse out;
  for (auto& t : *all) {
    if (out.transfers_size() >= static_cast<int>(limit)) break;
    if (!r.sku().empty()) {
      bool has = false;
      for (const auto& l : t.lines()) has = has || l.sku() == r.sku();
      if (!has) continue;
    }
    *out.add_transfers() = std::move(t);
  }
  return out;
}

absl::StatusOr<v1::Transfer> TransferService::Get(const std::string& transfer_id) {
  if (transfer_id.empty()) return absl::InvalidArgumentError("transfer id is required");
  return orders_->GetTransfer(transfer_id);
}

absl::StatusOr<v1::InTransitResponse> TransferService::InTransit(const std::string& sku,
                                                                 const std::string& site) {
  auto shipped = orders_->ListTransfers(v1::TRANSFER_SHIPPED, site, 0);
  if (!shipped.ok()) return shipped.status();
  std::map<std::pair<std::string, std::string>, std::pair<int64_t, int64_t>> by_key;
  std::map<std::string, int64_t> totals;
  for (const auto& t : *shipped) {
    if (!site.empty() && t.destination() != site) continue;
    for (const auto& l : t.lines()) {
      if ((!sku.empty() && l.sku() != sku) || l.shipped() == 0) continue;
      auto& v = by_key[{l.sku(), t.destination()}];
      v.first += l.shipped();
      v.second += 1;
      totals[l.sku()] += l.shipped();
    }
  }
  v1::InTransitResponse out;
  for (const auto& [key, v] : by_key) {
    auto* i = out.add_items();
    i->set_sku(key.first);
    i->set_destination(key.second);
    i->set_quantity(v.first);
    i->set_transfers(v.second);
  }
  for (const auto& [k, n] : totals) {
    auto* x = out.add_totals();
    x->set_sku(k);
    x->set_quantity(n);
  }
  return out;
}

}  // namespace depot::central
