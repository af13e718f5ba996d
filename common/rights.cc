#include "common/rights.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace depot::rights {
namespace {

absl::Status CheckUnits(int64_t units) {
  if (units <= 0) return absl::InvalidArgumentError(absl::StrCat("units must be > 0, got ", units));
  return absl::OkStatus();
}

// Rights not backed by sellable stock (0 when on_hand is below safety stock and no rights exist).
int64_t Unbacked(const SiteBook& book) {
  return std::max<int64_t>(0, book.RightsOutstanding() - std::max<int64_t>(0, book.Sellable()));
}

// After a loss or a release back, local rights not backed by sellable stock go back to unassigned
// (the node may revoke its own rights without asking). Returns the excess left, which only
// central's rights account for.
int64_t RevokeUnbackedLocal(SiteBook* book) {
  const int64_t excess = Unbacked(*book);
  if (excess == 0) return 0;
  const int64_t revoke = std::min(excess, book->local_rights);
  book->local_rights -= revoke;
  book->unassigned += revoke;
  return excess - revoke;
}

}  // namespace

int64_t LocalTarget(int64_t sellable, const Policy& policy) {
  const int64_t share = policy.store_share_units > 0
                            ? policy.store_share_units
                            : std::max<int64_t>(0, sellable) * policy.store_share_percent / 100;
  return std::max(policy.floor_units, share);
}

Split Plan(const SiteBook& book, const Policy& policy) {
  const int64_t sellable = book.Sellable();
  const int64_t assignable =
      std::max<int64_t>(0, std::min(book.unassigned, sellable - book.RightsOutstanding()));
  const int64_t target = LocalTarget(sellable, policy);
  Split split;
  split.to_local = std::min(assignable, std::max<int64_t>(0, target - book.local_rights));
  split.to_central = assignable - split.to_local;
  return split;
}

bool NeedsRefill(const SiteBook& book, const Policy& policy) {
  return book.local_rights < policy.refill_below;
}

int64_t RefillFromCentral(const CentralBook& book) { return std::max<int64_t>(0, book.Available()) / 2; }

absl::Status Receipt(SiteBook* book, int64_t units) {
  if (absl::Status s = CheckUnits(units); !s.ok()) return s;
  book->on_hand += units;
  book->unassigned += units;
  book->received += units;
  return absl::OkStatus();
}

Transfer Distribute(SiteBook* book, const Policy& policy) {
  const Split split = Plan(*book, policy);
  book->unassigned -= split.to_local + split.to_central;
  book->local_rights += split.to_local;
  book->local_rights_received += split.to_local;
  Transfer grant{Side::kNode, split.to_central, 0};
  if (split.to_central > 0) {
    book->central_rights_granted += split.to_central;
    grant.seq = ++book->last_grant_seq_sent;
  }
  return grant;
}

absl::Status LocalSale(SiteBook* book, int64_t units) {
  if (absl::Status s = CheckUnits(units); !s.ok()) return s;
  if (units > book->local_rights) {
    return absl::FailedPreconditionError(
        absl::StrCat("only ", book->local_rights, " available for local sale, asked ", units));
  }
  book->local_rights -= units;
  book->local_committed += units;
  book->on_hand -= units;
  return absl::OkStatus();
}

absl::Status ApplyFromCentral(SiteBook* book, const Transfer& transfer) {
  if (transfer.from != Side::kCentral) {
    return absl::InvalidArgumentError("a release must come from central");
  }
  if (absl::Status s = CheckUnits(transfer.units); !s.ok()) return s;
  if (transfer.seq != book->last_release_seq_applied + 1) {
    return absl::FailedPreconditionError(absl::StrCat("release seq ", transfer.seq, ", expected ",
                                                      book->last_release_seq_applied + 1));
  }
  if (transfer.units > book->central_rights_granted) {
    return absl::FailedPreconditionError(absl::StrCat("release of ", transfer.units,
                                                      " exceeds the ", book->central_rights_granted,
                                                      " granted to central"));
  }
  book->last_release_seq_applied = transfer.seq;
  book->central_rights_granted -= transfer.units;
  book->local_rights += transfer.units;
  book->local_rights_received += transfer.units;
  RevokeUnbackedLocal(book);
  return absl::OkStatus();
}

absl::StatusOr<ShipReport> ApplyAllocation(SiteBook* book, const Allocation& allocation) {
  if (absl::Status s = CheckUnits(allocation.units); !s.ok()) return s;
  if (allocation.units > book->central_rights_granted) {
    return absl::FailedPreconditionError(absl::StrCat("allocation of ", allocation.units,
                                                      " exceeds the ", book->central_rights_granted,
                                                      " granted to central"));
  }
  ShipReport report{allocation.id, allocation.units,
                    std::min(allocation.units, std::max<int64_t>(0, book->on_hand))};
  book->on_hand -= report.shipped;
  book->central_shipped += report.shipped;
  book->central_rights_granted -= allocation.units;
  return report;
}

absl::StatusOr<std::optional<LossException>> Loss(SiteBook* book, int64_t units) {
  if (absl::Status s = CheckUnits(units); !s.ok()) return s;
  if (units > book->on_hand) {
    return absl::FailedPreconditionError(
        absl::StrCat("loss of ", units, " exceeds the ", book->on_hand, " on hand"));
  }
  const int64_t excess_before = Unbacked(*book);
  book->on_hand -= units;
  const int64_t from_unassigned = std::min(units, book->unassigned);
  book->unassigned -= from_unassigned;
  const int64_t from_local = std::min(units - from_unassigned, book->local_rights);
  book->local_rights -= from_local;
  book->written_off += from_unassigned + from_local;
  const int64_t excess_after = RevokeUnbackedLocal(book);
  const int64_t shortfall = excess_after - excess_before;
  if (shortfall <= 0) return std::optional<LossException>();
  book->shortfall_reported += shortfall;
  return std::optional<LossException>(LossException{units, shortfall, excess_after, book->on_hand,
                                                    book->Sellable(),
                                                    book->central_rights_granted});
}

absl::Status ApplyGrant(CentralBook* book, const Transfer& transfer) {
  if (transfer.from != Side::kNode) return absl::InvalidArgumentError("a grant must come from the node");
  if (absl::Status s = CheckUnits(transfer.units); !s.ok()) return s;
  if (transfer.seq != book->last_grant_seq_applied + 1) {
    return absl::FailedPreconditionError(absl::StrCat("grant seq ", transfer.seq, ", expected ",
                                                      book->last_grant_seq_applied + 1));
  }
  book->last_grant_seq_applied = transfer.seq;
  book->central_rights += transfer.units;
  return absl::OkStatus();
}

absl::StatusOr<Allocation> Allocate(CentralBook* book, int64_t units) {
  if (absl::Status s = CheckUnits(units); !s.ok()) return s;
  if (units > book->Available()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "only ", book->Available(), " available for central allocation, asked ", units));
  }
  book->central_committed += units;
  return Allocation{++book->last_allocation_id, units};
}

absl::StatusOr<Transfer> ReleaseBack(CentralBook* book, int64_t units) {
  if (absl::Status s = CheckUnits(units); !s.ok()) return s;
  if (units > book->Available()) {
    return absl::FailedPreconditionError(
        absl::StrCat("only ", book->Available(), " uncommitted rights to release, asked ", units));
  }
  book->central_rights -= units;
  return Transfer{Side::kCentral, units, ++book->last_release_seq_sent};
}

absl::Status Shipped(CentralBook* book, const ShipReport& report) {
  if (report.allocated <= 0 || report.shipped < 0 || report.shipped > report.allocated) {
    return absl::InvalidArgumentError(absl::StrCat("bad ship report: allocated ", report.allocated,
                                                   ", shipped ", report.shipped));
  }
  if (report.allocated > book->central_committed) {
    return absl::FailedPreconditionError(absl::StrCat("ship report for ", report.allocated,
                                                      " exceeds the ", book->central_committed,
                                                      " committed"));
  }
  book->central_committed -= report.allocated;
  book->central_rights -= report.allocated;
  book->consumed += report.shipped;
  book->written_off += report.allocated - report.shipped;
  return absl::OkStatus();
}

std::string CheckConservation(const SiteBook& n, const CentralBook& c, const InFlight& f) {
  const std::pair<const char*, int64_t> counters[] = {
      {"on_hand", n.on_hand},
      {"unassigned", n.unassigned},
      {"local_rights", n.local_rights},
      {"central_rights_granted", n.central_rights_granted},
      {"central_rights", c.central_rights},
      {"central_committed", c.central_committed},
      {"grants in flight", f.grants},
      {"releases in flight", f.releases},
  };
  for (const auto& [name, value] : counters) {
    if (value < 0) return absl::StrCat(name, " is negative: ", value);
  }
  const int64_t accounted = n.unassigned + n.local_rights + n.local_committed + n.written_off +
                            c.central_rights + c.consumed + c.written_off + f.grants + f.releases;
  if (accounted != n.received) {
    return absl::StrCat("received ", n.received, " != accounted ", accounted, " (unassigned ",
                        n.unassigned, ", local_rights ", n.local_rights, ", local_committed ",
                        n.local_committed, ", node written_off ", n.written_off,
                        ", central_rights ", c.central_rights, ", central consumed ", c.consumed,
                        ", central written_off ", c.written_off, ", grants in flight ", f.grants,
                        ", releases in flight ", f.releases, ")");
  }
  const int64_t central_expected = c.central_rights + f.grants + f.releases - f.ship_reports;
  if (n.central_rights_granted != central_expected) {
    return absl::StrCat("node's central_rights_granted ", n.central_rights_granted,
                        " != central_rights + in flight ", central_expected);
  }
  return "";
}

std::string CheckNoOversell(const SiteBook& n, const CentralBook& c, const InFlight& f) {
  if (n.on_hand < 0) return absl::StrCat("on_hand is negative: ", n.on_hand);
  if (n.local_committed > n.local_rights_received) {
    return absl::StrCat("local_committed ", n.local_committed, " > local rights received ",
                        n.local_rights_received);
  }
  if (c.central_committed > c.central_rights) {
    return absl::StrCat("central_committed ", c.central_committed, " > central_rights ",
                        c.central_rights);
  }
  const int64_t bound = std::max<int64_t>(0, n.Sellable()) + n.shortfall_reported;
  if (n.RightsOutstanding() > bound) {
    return absl::StrCat("rights outstanding ", n.RightsOutstanding(), " > sellable ", n.Sellable(),
                        " + reported shortfall ", n.shortfall_reported);
  }
  // Central's commitments whose ShipReport is not yet back but whose goods are still on hand.
  const int64_t to_ship = c.central_committed - f.ship_reports;
  if (to_ship > bound) {
    return absl::StrCat("central commitments to ship ", to_ship, " > sellable ", n.Sellable(),
                        " + reported shortfall ", n.shortfall_reported);
  }
  return "";
}

int64_t NaiveBook::Receipt(int64_t units) {
  truth_ += units;
  node_view_ += units;
  return units;
}

bool NaiveBook::LocalSale(int64_t units, int64_t* delta_to_central) {
  if (units > node_view_) return false;
  node_view_ -= units;
  Commit(units);
  *delta_to_central = -units;
  return true;
}

int64_t NaiveBook::Loss(int64_t units) {
  truth_ -= units;
  node_view_ -= units;
  return -units;
}

bool NaiveBook::Allocate(int64_t units, int64_t* delta_to_node) {
  if (units > central_view_) return false;
  central_view_ -= units;
  Commit(units);
  *delta_to_node = -units;
  return true;
}

void NaiveBook::Commit(int64_t units) {
  oversold_ += std::max<int64_t>(0, units - std::max<int64_t>(0, truth_));
  truth_ -= units;
}

}  // namespace depot::rights
