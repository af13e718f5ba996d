#include "node/rights_book.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/rights.h"
#include "node/fulfilment.h"
#include "spdlog/spdlog.h"

namespace depot::node {
namespace {

using absl::StrCat;

constexpr int64_t kHistoryLimitMax = 10000;

rights::Policy ToPolicy(const v1::RightsPolicy& p) {
  rights::Policy out;
  out.store_share_percent = p.store_share_percent();
  out.store_share_units = p.store_share_units();
  out.floor_units = p.floor_units();
  out.refill_below = p.refill_below();
  return out;
}

int64_t Claimed(const v1::RightsBook& b) {
  return b.local_rights() + b.local_open() + b.central_granted();
}

void SetMeta(StmtCache& db, const char* key, const std::string& value) {
  auto up = db.Get(
      "INSERT INTO meta(key, value) VALUES (?, ?) "
      "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  up->bind(1, key);
  up->bind(2, value);
  up->exec();
}

}  // namespace

const char* const RightsBook::kSchema = R"sql(
-- Selling rights per SKU (node/rights_book.h): the RightsBook message, and the transfer history.
CREATE TABLE node_rights(sku TEXT PRIMARY KEY, book BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE node_rights_log(id INTEGER PRIMARY KEY, sku TEXT NOT NULL, hlc INTEGER NOT NULL,
  kind TEXT NOT NULL, units INTEGER NOT NULL, seq INTEGER NOT NULL, reference TEXT NOT NULL,
  note TEXT NOT NULL);
CREATE INDEX node_rights_log_by_sku ON node_rights_log(sku, id);
)sql";

absl::Status RightsBook::Load(StmtCache& w, const std::string& node_id, bool central_managed,
                              bool enabled) {
  node_id_ = node_id;
  central_managed_ = central_managed;
  enabled_ = enabled;
  Discard();
  try {
    auto q = w.Get("SELECT key, value FROM meta WHERE key IN ('rights_policy', 'site_kind')");
    while (q->executeStep()) {
      const std::string key = q->getColumn(0).getString();
      const std::string value = q->getColumn(1).getString();
      if (key == "site_kind") site_kind_ = value;
      if (key == "rights_policy") {
        has_policy_ = policy_.ParseFromString(value);
      }
    }
  } catch (const std::exception& e) {
    return absl::InternalError(StrCat("loading the rights policy: ", e.what()));
  }
  return absl::OkStatus();
}

v1::RightsPolicy RightsBook::Policy() const {
  if (has_policy_) return policy_;
  v1::RightsPolicy p;
  p.set_site(node_id_);
  p.set_is_default(true);
  // A node that never heard of central sells everything itself; a store keeps 30 % for walk-in
  // customers; a warehouse sells only through central.
  p.set_store_share_percent(!central_managed_ ? 100 : site_kind_ == "warehouse" ? 0 : 30);
  return p;
}


absl::StatusOr<v1::RightsBook> RightsBook::LoadBook(StmtCache& db, const std::string& sku) {
  if (auto it = books_.find(sku); it != books_.end()) return it->second.book;
  v1::RightsBook b;
  auto q = db.Get("SELECT book FROM node_rights WHERE sku = ?");
  q->bind(1, sku);
  if (q->executeStep()) {
    auto col = q->getColumn(0);
    if (!b.ParseFromArray(col.getBlob(), col.getBytes())) {
      return absl::DataLossError(StrCat("corrupt rights book of SKU '", sku, "'"));
    }
  }
  b.set_sku(sku);
  books_[sku].book = b;
  return b;
}

void RightsBook::SaveBook(LedgerTx&, const v1::RightsBook& book) {
  Cached& c = books_[book.sku()];
  c.book = book;
  if (!c.changed) changed_.push_back(book.sku());
  c.changed = true;
}

void RightsBook::FlushBooks(LedgerTx& tx) {
  std::string bytes;
  for (const std::string& sku : changed_) {
    Cached& c = books_[sku];
    bytes.clear();
    c.book.SerializeToString(&bytes);
    auto up = tx.stmts().Get(
        "INSERT INTO node_rights(sku, book) VALUES (?, ?) "
        "ON CONFLICT(sku) DO UPDATE SET book = excluded.book");
    up->bind(1, sku);
    up->bind(2, bytes.data(), static_cast<int>(bytes.size()));
    up->exec();
    c.changed = false;
  }
  changed_.clear();
  if (books_.size() > kMaxCachedBooks) books_.clear();
}

void RightsBook::Log(LedgerTx& tx, const std::string& sku, const std::string& kind, int64_t units,
                     uint64_t seq, const std::string& reference, const std::string& note) {
  auto ins = tx.stmts().Get(
      "INSERT INTO node_rights_log(sku, hlc, kind, units, seq, reference, note) "
      "VALUES (?, ?, ?, ?, ?, ?, ?)");
  ins->bind(1, sku);
  ins->bind(2, static_cast<int64_t>(tx.Now()));
  ins->bind(3, kind);
  ins->bind(4, units);
  ins->bind(5, static_cast<int64_t>(seq));
  ins->bind(6, reference);
  ins->bind(7, note);
  ins->exec();
}

void RightsBook::EmitEvent(LedgerTx& tx, v1::RightsEvent event, const v1::RightsBook& book) {
  v1::Event e;
  *event.mutable_book() = book;
  *e.mutable_rights() = std::move(event);
  tx.Emit(std::move(e));
}

absl::Status RightsBook::LocalCommit(LedgerTx& tx, const std::string& sku, int64_t q,
                                     bool leaves_now) {
  if (!enabled_) return absl::OkStatus();
  auto master = tx.Sku(sku);
  if (!master.ok() || master->allow_negative() || q <= 0) return absl::OkStatus();
  auto book = LoadBook(tx.stmts(), sku);
  if (!book.ok()) return book.status();
  v1::RightsBook& b = *book;
  if (q > b.local_rights()) {
    // The book may simply not have seen this stock yet (received in this same operation).
    if (auto s = SettleOne(tx, sku, Dirty{}); !s.ok()) return s;
    book = LoadBook(tx.stmts(), sku);
    if (!book.ok()) return book.status();
  }
  if (q > b.local_rights()) {
    wanted_[sku] = std::max(wanted_[sku], q - b.local_rights());
    return absl::FailedPreconditionError(
        StrCat("only ", b.local_rights(), " of SKU '", sku, "' available for local sale at ",
               node_id_, " (local selling rights), ", q, " asked",
               central_managed_ ? "; more were asked of central" : ""));
  }
  b.set_local_rights(b.local_rights() - q);
  if (leaves_now) {
    b.set_local_sold_total(b.local_sold_total() + q);
  } else {
    b.set_local_open(b.local_open() + q);
  }
  SaveBook(tx, b);
  Touch(sku);
  dirty_[sku].sold = true;
  return absl::OkStatus();
}

absl::Status RightsBook::LocalRelease(LedgerTx& tx, const std::string& sku, int64_t q) {
  if (!enabled_) return absl::OkStatus();
  auto master = tx.Sku(sku);
  if (!master.ok() || master->allow_negative() || q <= 0) return absl::OkStatus();
  auto book = LoadBook(tx.stmts(), sku);
  if (!book.ok()) return book.status();
  const int64_t back = std::min(q, book->local_open());
  book->set_local_open(book->local_open() - back);
  book->set_local_rights(book->local_rights() + back);
  SaveBook(tx, *book);
  Touch(sku);
  return absl::OkStatus();
}

absl::Status RightsBook::LocalLeave(LedgerTx& tx, const std::string& sku, int64_t q) {
  if (!enabled_) return absl::OkStatus();
  auto master = tx.Sku(sku);
  if (!master.ok() || master->allow_negative() || q <= 0) return absl::OkStatus();
  auto book = LoadBook(tx.stmts(), sku);
  if (!book.ok()) return book.status();
  const int64_t left = std::min(q, book->local_open());
  book->set_local_open(book->local_open() - left);
  book->set_local_sold_total(book->local_sold_total() + left);
  if (left < q) {
    // Goods left without a local commitment (cannot happen through the APIs): treated as a
    // loss of the difference, which Settle reports if it over-claims.
    dirty_[sku].loss_units += q - left;
  }
  SaveBook(tx, *book);
  Touch(sku);
  return absl::OkStatus();
}

absl::Status RightsBook::CentralDelta(LedgerTx& tx, const std::string& sku, int64_t shipped,
                                      int64_t returned, const std::string& fulfilment_id) {
  if (!enabled_) return absl::OkStatus();
  if (shipped <= 0 && returned <= 0) return absl::OkStatus();
  auto master = tx.Sku(sku);
  if (!master.ok() || master->allow_negative()) return absl::OkStatus();
  auto book = LoadBook(tx.stmts(), sku);
  if (!book.ok()) return book.status();
  v1::RightsBook& b = *book;
  // Central allocates only against rights it holds here, so these never exceed central_granted;
  // if they did (a release from before rights existed), the identity stays exact by counting
  // only what was granted.
  const int64_t ship = std::min(std::max<int64_t>(0, shipped), b.central_granted());
  if (ship < shipped) {
    spdlog::warn("rights: {} shipped {} of SKU {} for central beyond the {} granted", fulfilment_id,
                 shipped, sku, b.central_granted());
  }
  b.set_central_granted(b.central_granted() - ship);
  b.set_shipped_total(b.shipped_total() + ship);
  const int64_t ret = std::min(std::max<int64_t>(0, returned), b.central_granted());
  b.set_central_granted(b.central_granted() - ret);
  b.set_returned_total(b.returned_total() + ret);
  if (ret > 0) Log(tx, sku, "short_return", ret, 0, fulfilment_id, "");
  SaveBook(tx, b);
  Touch(sku);
  return absl::OkStatus();
}

absl::Status RightsBook::Settle(LedgerTx& tx) {
  if (!enabled_) return absl::OkStatus();
  while (!dirty_.empty()) {
    auto it = dirty_.begin();
    const std::string sku = it->first;
    const Dirty d = it->second;
    dirty_.erase(it);
    if (auto s = SettleOne(tx, sku, d); !s.ok()) return s;
  }
  FlushBooks(tx);
  return absl::OkStatus();
}

absl::Status RightsBook::AskCentral(LedgerTx& tx, v1::RightsBook* b, int64_t units,
                                    const std::string& reason) {
  if (!central_managed_ || units <= 0) return absl::OkStatus();
  b->set_refill_pending(true);
  v1::RightsEvent ev;
  auto* r = ev.mutable_request();
  r->set_sku(b->sku());
  r->set_units(units);
  r->set_reason(reason);
  Log(tx, b->sku(), "request", units, 0, "", reason);
  SaveBook(tx, *b);
  EmitEvent(tx, std::move(ev), *b);
  return absl::OkStatus();
}

absl::Status RightsBook::SettleOne(LedgerTx& tx, const std::string& sku, const Dirty& d) {
  const int64_t loss_units = d.loss_units;
  const bool rebalance = d.rebalance;
  auto master = tx.Sku(sku);
  if (!master.ok() || master->allow_negative()) return absl::OkStatus();
  absl::StatusOr<v1::Atp> atp = d.atp ? absl::StatusOr<v1::Atp>(*d.atp) : tx.Atp(sku);
  if (!atp.ok()) return atp.status();
  auto loaded = LoadBook(tx.stmts(), sku);
  if (!loaded.ok()) return loaded.status();
  v1::RightsBook b = std::move(*loaded);
  bool changed = false;  // (instead of comparing serialized copies: this runs on every sale)
  const v1::RightsPolicy policy = Policy();
  const rights::Policy split_policy = ToPolicy(policy);
  const int64_t safety = master->safety_stock();

  auto refresh = [&](int64_t on_hand) {
    const int64_t backing = std::max<int64_t>(0, on_hand - safety);
    const int64_t unassigned = std::max<int64_t>(0, backing - Claimed(b));
    const int64_t excess = std::max<int64_t>(0, Claimed(b) - backing);
    if (b.on_hand() != on_hand || b.safety_stock() != safety || b.unassigned() != unassigned ||
        b.excess() != excess) {
      changed = true;
    }
    b.set_on_hand(on_hand);
    b.set_safety_stock(safety);
    b.set_unassigned(unassigned);
    b.set_excess(excess);
  };
  refresh(atp->on_hand());

  // 1. Over-claim (a loss, or safety stock raised): local rights go first; then the node shorts
  //    central's fulfilments that cannot be filled here; what is left is reported.
  if (b.excess() > 0) {
    const int64_t revoke = std::min(b.excess(), b.local_rights());
    if (revoke > 0) {
      changed = true;
      b.set_local_rights(b.local_rights() - revoke);
      b.set_local_revoked_total(b.local_revoked_total() + revoke);
      Log(tx, sku, "revoke", revoke, 0, "", "local rights not backed by stock");
      refresh(atp->on_hand());
    }
  }
  if (b.excess() > b.excess_reported()) {
    std::vector<std::string> shorted;
    const int64_t short_of = atp->reserved() + safety - atp->on_hand();  // -ATP
    if (short_of > 0) {
      SaveBook(tx, b);  // the shorts below change the stored book (CentralDelta)
      auto ids = fulfilment::ShortForLoss(tx, sku, short_of);
      if (!ids.ok()) return ids.status();
      shorted = std::move(*ids);
      auto reloaded = LoadBook(tx.stmts(), sku);
      if (!reloaded.ok()) return reloaded.status();
      b = std::move(*reloaded);
      changed = true;
      dirty_.erase(sku);  // CentralDelta touched it again: this pass settles it
      refresh(atp->on_hand());
    }
    if (b.excess() > b.excess_reported()) {
      v1::RightsEvent ev;
      auto* loss = ev.mutable_loss();
      loss->set_sku(sku);
      loss->set_units_lost(loss_units);
      loss->set_shortfall(b.excess() - b.excess_reported());
      loss->set_excess(b.excess());
      for (const auto& id : shorted) loss->add_fulfilment_ids(id);
      loss->set_reason(loss_units > 0 ? "stock loss" : "sellable stock below the rights");
      changed = true;
      b.set_excess_reported(b.excess());
      b.set_shortfall_total(b.shortfall_total() + loss->shortfall());
      Log(tx, sku, "loss", loss->shortfall(), 0, "",
          StrCat("excess ", b.excess(), ", ", shorted.size(), " fulfilment(s) shorted"));
      b.set_hlc(tx.Now());
      EmitEvent(tx, std::move(ev), b);
    } else if (!shorted.empty()) {
      Log(tx, sku, "loss", 0, 0, "", StrCat(shorted.size(), " fulfilment(s) shorted"));
    }
  }
  if (b.excess() < b.excess_reported()) {
    b.set_excess_reported(b.excess());
    changed = true;
  }

  const int64_t sellable = atp->on_hand() - safety;
  const int64_t target = rights::LocalTarget(sellable, split_policy);
  // 2. A new policy: local rights above the target go to central.
  if (rebalance && central_managed_ && b.local_rights() > target) {
    const int64_t give = b.local_rights() - target;
    changed = true;
    b.set_local_rights(target);
    b.set_local_out_total(b.local_out_total() + give);
    b.set_central_granted(b.central_granted() + give);
    b.set_granted_total(b.granted_total() + give);
    b.set_grant_seq(b.grant_seq() + 1);
    v1::RightsEvent ev;
    auto* g = ev.mutable_grant();
    g->set_sku(sku);
    g->set_units(give);
    g->set_seq(b.grant_seq());
    g->set_reason("rebalance");
    Log(tx, sku, "grant", give, b.grant_seq(), "", "rebalance to the new policy");
    refresh(atp->on_hand());
    b.set_hlc(tx.Now());
    EmitEvent(tx, std::move(ev), b);
  }

  // 3. Distribute unassigned units: local first up to the target, the rest to central.
  if (b.unassigned() > 0) {
    rights::SiteBook sb;
    sb.on_hand = atp->on_hand();
    sb.safety_stock = safety;
    sb.unassigned = b.unassigned();
    sb.local_rights = b.local_rights() + b.local_open();
    sb.central_rights_granted = b.central_granted();
    rights::Split split = rights::Plan(sb, split_policy);
    if (!central_managed_) {  // nobody to grant to: everything stays local
      split.to_local += split.to_central;
      split.to_central = 0;
    }
    if (split.to_local > 0 || split.to_central > 0) changed = true;
    if (split.to_local > 0) {
      b.set_local_rights(b.local_rights() + split.to_local);
      b.set_local_in_total(b.local_in_total() + split.to_local);
    }
    if (split.to_central > 0) {
      b.set_central_granted(b.central_granted() + split.to_central);
      b.set_granted_total(b.granted_total() + split.to_central);
      b.set_grant_seq(b.grant_seq() + 1);
    }
    refresh(atp->on_hand());
    if (split.to_central > 0) {
      v1::RightsEvent ev;
      auto* g = ev.mutable_grant();
      g->set_sku(sku);
      g->set_units(split.to_central);
      g->set_seq(b.grant_seq());
      g->set_reason("policy");
      Log(tx, sku, "grant", split.to_central, b.grant_seq(), "", "policy split");
      b.set_hlc(tx.Now());
      EmitEvent(tx, std::move(ev), b);
    }
  }

  // 4. Refill: a local sale took local rights below the threshold: ask central, once until it
  //    answers (an answer, even of 0 units, is not asked again before the next sale).
  if (d.sold && central_managed_ && !b.refill_pending() && policy.refill_below() > 0 &&
      b.local_rights() < policy.refill_below()) {
    const int64_t want = std::max(target, policy.refill_below()) - b.local_rights();
    changed = true;
    b.set_hlc(tx.Now());
    if (auto s = AskCentral(tx, &b, want,
                            StrCat("refill: local ", b.local_rights(), " < ",
                                   policy.refill_below()));
        !s.ok()) {
      return s;
    }
  }

  if (changed) {
    if (b.hlc() == 0) b.set_hlc(tx.Now());
    SaveBook(tx, b);
  }
  return absl::OkStatus();
}

absl::Status RightsBook::FlushWanted(LedgerTx& tx) {
  if (!enabled_) return absl::OkStatus();
  auto wanted = std::move(wanted_);
  wanted_.clear();
  if (!central_managed_) return absl::OkStatus();
  for (const auto& [sku, units] : wanted) {
    auto book = LoadBook(tx.stmts(), sku);
    if (!book.ok()) return book.status();
    if (book->refill_pending()) continue;
    book->set_hlc(tx.Now());
    if (auto s = AskCentral(tx, &*book, units, "a local sale was refused"); !s.ok()) return s;
  }
  FlushBooks(tx);
  return absl::OkStatus();
}

absl::Status RightsBook::ApplyRelease(LedgerTx& tx, const v1::RightsRelease& r) {
  if (!enabled_) return absl::OkStatus();
  auto master = tx.Sku(r.sku());
  if (!master.ok()) {
    spdlog::warn("rights release for unknown SKU {} ignored", r.sku());
    return absl::OkStatus();
  }
  auto book = LoadBook(tx.stmts(), r.sku());
  if (!book.ok()) return book.status();
  v1::RightsBook& b = *book;
  if (r.answer()) b.set_refill_pending(false);
  if (r.units() > 0) {
    if (r.seq() != b.release_seq() + 1) {
      spdlog::warn("rights release of SKU {}: seq {}, expected {} (applied anyway)", r.sku(),
                   r.seq(), b.release_seq() + 1);
    }
    b.set_release_seq(std::max<uint64_t>(b.release_seq(), r.seq()));
    const int64_t units = std::min(r.units(), b.central_granted());
    if (units < r.units()) {
      spdlog::warn("rights release of {} of SKU {} exceeds the {} granted to central",
                   r.units(), r.sku(), b.central_granted());
    }
    b.set_central_granted(b.central_granted() - units);
    if (r.write_off()) {
      b.set_central_written_off_total(b.central_written_off_total() + units);
    } else {
      b.set_released_total(b.released_total() + units);
      b.set_local_rights(b.local_rights() + units);
      b.set_local_in_total(b.local_in_total() + units);
    }
  }
  Log(tx, r.sku(), r.write_off() ? "write_off" : r.answer() ? "answer" : "release", r.units(),
      r.seq(), "", r.reason());
  b.set_hlc(tx.Now());
  SaveBook(tx, b);
  Touch(r.sku());
  return absl::OkStatus();
}

absl::Status RightsBook::ApplyRequest(LedgerTx& tx, const v1::RightsRequest& r) {
  if (!enabled_) return absl::OkStatus();
  auto master = tx.Sku(r.sku());
  if (!master.ok() || master->allow_negative()) {
    spdlog::debug("rights request for SKU {} ignored: not a stock SKU here", r.sku());
    return absl::OkStatus();
  }
  // Settle first so the answer sees every unit the node could grant.
  Touch(r.sku());
  if (auto s = Settle(tx); !s.ok()) return s;
  auto book = LoadBook(tx.stmts(), r.sku());
  if (!book.ok()) return book.status();
  v1::RightsBook& b = *book;
  // Half of what the node can spare above its floor, rounded up, at most what was asked.
  const int64_t spare = std::max<int64_t>(0, b.local_rights() - Policy().floor_units());
  const int64_t give = std::min(std::max<int64_t>(0, r.units()), (spare + 1) / 2);
  v1::RightsEvent ev;
  auto* g = ev.mutable_grant();
  g->set_sku(r.sku());
  g->set_units(give);
  g->set_reason("answer");
  if (give > 0) {
    b.set_local_rights(b.local_rights() - give);
    b.set_local_out_total(b.local_out_total() + give);
    b.set_central_granted(b.central_granted() + give);
    b.set_granted_total(b.granted_total() + give);
    b.set_grant_seq(b.grant_seq() + 1);
    g->set_seq(b.grant_seq());
  }
  Log(tx, r.sku(), "answer", give, g->seq(), "", StrCat("central asked ", r.units(), ": ", r.reason()));
  b.set_hlc(tx.Now());
  SaveBook(tx, b);
  EmitEvent(tx, std::move(ev), b);
  return absl::OkStatus();
}

absl::Status RightsBook::TouchAll(LedgerTx& tx) {
  auto q = tx.stmts().Get("SELECT sku FROM node_rights UNION SELECT sku FROM sku_totals");
  std::vector<std::string> skus;
  while (q->executeStep()) skus.push_back(q->getColumn(0).getString());
  for (const auto& sku : skus) dirty_[sku].rebalance = true;
  return absl::OkStatus();
}

int64_t RightsBook::LossExplains(LedgerTx& tx, const std::string& sku, int64_t missing) {
  if (!enabled_ || missing <= 0) return 0;
  auto b = LoadBook(tx.stmts(), sku);
  if (!b.ok()) return 0;
  const int64_t explained =
      std::min(missing, std::max<int64_t>(0, b->shortfall_total() - b->loss_shorts_total()));
  if (explained > 0) {
    b->set_loss_shorts_total(b->loss_shorts_total() + explained);
    SaveBook(tx, *b);
  }
  return explained;
}

absl::Status RightsBook::BecomeCentralManaged(LedgerTx& tx) {
  if (!enabled_) return absl::OkStatus();
  if (central_managed_) return absl::OkStatus();
  central_managed_ = true;
  return TouchAll(tx);
}

absl::Status RightsBook::ApplyPolicy(LedgerTx& tx, const v1::RightsPolicy& p) {
  if (!enabled_) return absl::OkStatus();
  if (p.site() != node_id_) {
    spdlog::warn("rights policy for site {} ignored at {}", p.site(), node_id_);
    return absl::OkStatus();
  }
  if (has_policy_ && p.version() != 0 && p.version() < policy_.version()) return absl::OkStatus();
  policy_ = p;
  has_policy_ = true;
  SetMeta(tx.stmts(), "rights_policy", p.SerializeAsString());
  return TouchAll(tx);
}

absl::Status RightsBook::ApplySite(LedgerTx& tx, const v1::Site& site) {
  if (!enabled_) return absl::OkStatus();
  if (site.id() != node_id_ || site.kind() == site_kind_) return absl::OkStatus();
  site_kind_ = site.kind();
  SetMeta(tx.stmts(), "site_kind", site_kind_);
  return has_policy_ ? absl::OkStatus() : TouchAll(tx);  // the default policy changed
}

absl::StatusOr<v1::RightsBook> RightsBook::Request(LedgerTx& tx, const v1::RightsRequest& r) {
  if (!enabled_) return absl::FailedPreconditionError("selling rights are off on this node");
  if (r.units() <= 0) return absl::InvalidArgumentError("units must be positive");
  auto master = tx.Sku(r.sku());
  if (!master.ok()) return master.status();
  if (master->allow_negative()) {
    return absl::FailedPreconditionError(
        StrCat("SKU '", r.sku(), "' allows negative stock: it has no selling rights"));
  }
  if (!central_managed_) {
    return absl::FailedPreconditionError(
        "this node is not managed by central: every right is already local");
  }
  auto book = LoadBook(tx.stmts(), r.sku());
  if (!book.ok()) return book.status();
  book->set_hlc(tx.Now());
  if (auto s = AskCentral(tx, &*book, r.units(),
                          r.reason().empty() ? std::string("asked by an operator") : r.reason());
      !s.ok()) {
    return s;
  }
  return *book;
}

absl::StatusOr<std::vector<v1::RightsBook>> RightsBook::List(StmtCache& db,
                                                             const std::string& sku) {
  std::vector<v1::RightsBook> out;
  try {
    auto q = sku.empty() ? db.Get("SELECT book FROM node_rights ORDER BY sku")
                         : db.Get("SELECT book FROM node_rights WHERE sku = ?");
    if (!sku.empty()) q->bind(1, sku);
    while (q->executeStep()) {
      v1::RightsBook b;
      auto col = q->getColumn(0);
      if (!b.ParseFromArray(col.getBlob(), col.getBytes())) {
        return absl::DataLossError("corrupt rights book");
      }
      out.push_back(std::move(b));
    }
  } catch (const std::exception& e) {
    return absl::InternalError(e.what());
  }
  return out;
}

absl::StatusOr<v1::RightsHistoryResponse> RightsBook::History(StmtCache& db,
                                                              const std::string& sku,
                                                              uint32_t limit) {
  v1::RightsHistoryResponse out;
  const int64_t n = std::clamp<int64_t>(limit == 0 ? 100 : limit, 1, kHistoryLimitMax);
  try {
    auto q = sku.empty()
                 ? db.Get("SELECT id, sku, hlc, kind, units, seq, reference, note "
                          "FROM node_rights_log ORDER BY id DESC LIMIT ?")
                 : db.Get("SELECT id, sku, hlc, kind, units, seq, reference, note "
                          "FROM node_rights_log WHERE sku = ? ORDER BY id DESC LIMIT ?");
    int i = 1;
    if (!sku.empty()) q->bind(i++, sku);
    q->bind(i, n);
    while (q->executeStep()) {
      auto* e = out.add_entries();
      e->set_id(q->getColumn(0).getInt64());
      e->set_sku(q->getColumn(1).getString());
      e->set_hlc(q->getColumn(2).getInt64());
      e->set_at_ms(static_cast<int64_t>(e->hlc() >> 16));
      e->set_kind(q->getColumn(3).getString());
      e->set_units(q->getColumn(4).getInt64());
      e->set_seq(q->getColumn(5).getInt64());
      e->set_reference(q->getColumn(6).getString());
      e->set_note(q->getColumn(7).getString());
    }
  } catch (const std::exception& e) {
    return absl::InternalError(e.what());
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> RightsBook::Verify(StmtCache& db) {
  auto books = List(db, "");
  if (!books.ok()) return books.status();
  std::vector<std::string> out;
  for (const auto& b : *books) {
    const int64_t central = b.granted_total() - b.released_total() - b.returned_total() -
                            b.shipped_total() - b.central_written_off_total();
    if (central != b.central_granted()) {
      out.push_back(StrCat("rights ", b.sku(), ": central_granted ", b.central_granted(),
                           " != granted - released - returned - shipped - written off = ",
                           central));
    }
    const int64_t local = b.local_in_total() - b.local_out_total() - b.local_sold_total() -
                          b.local_revoked_total();
    if (local != b.local_rights() + b.local_open()) {
      out.push_back(StrCat("rights ", b.sku(), ": local_rights + local_open ",
                           b.local_rights() + b.local_open(), " != in - out - sold - revoked = ",
                           local));
    }
    for (int64_t v : {b.local_rights(), b.local_open(), b.central_granted()}) {
      if (v < 0) out.push_back(StrCat("rights ", b.sku(), ": a negative count"));
    }
    if (Claimed(b) > std::max<int64_t>(0, b.on_hand() - b.safety_stock()) + b.excess_reported()) {
      out.push_back(StrCat("rights ", b.sku(), ": claimed ", Claimed(b), " > sellable ",
                           b.on_hand() - b.safety_stock(), " + reported excess ",
                           b.excess_reported()));
    }
  }
  return out;
}

}  // namespace depot::node
