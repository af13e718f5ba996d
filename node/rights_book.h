// The node's selling-rights book per SKU (docs/SYNC.md "Selling rights", rights.proto RightsBook).
//
// Contract:
// - Like node/fulfilment.h this module has no transaction of its own: the ledger calls it inside
//   its write transaction with a LedgerTx, and every change (the book row, its history row and
//   any RightsEvent in the outbox) commits or rolls back with the stock change that caused it.
// - Stock changes do not have to call it precisely: the ledger Touch()es every SKU an operation
//   changed and calls Settle() at the end of the operation. Settle is state-based (it recomputes
//   the over-claim, distributes unassigned units and asks for a refill from the current book and
//   stock), so settling a SKU twice changes nothing the second time.
// - What Settle cannot see is *who* committed a unit: local commitments (LocalCommit,
//   LocalRelease, LocalLeave) and central's allocations shipped or shorted (CentralDelta) are
//   reported by the caller.
// - SKUs that allow negative stock have no rights (non-stock items): every call is a no-op.
// - Not thread-safe: the ledger's write lock serialises it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "depot/v1/ledger.pb.h"
#include "depot/v1/rights.pb.h"
#include "depot/v1/master.pb.h"
#include "node/stmt_cache.h"

namespace depot::node {

class LedgerTx;

class RightsBook {
 public:
  static const char* const kSchema;  // ledger migration for node_rights, node_rights_log

  // Reads the stored policy and site kind (meta) at open. enabled = false: every call below is a
  // no-op (LedgerOptions.selling_rights, the naive baseline).
  absl::Status Load(StmtCache& w, const std::string& node_id, bool central_managed,
                    bool enabled = true);
  // The node joined central (its first feed entry): the default policy changes from "everything
  // local", so every SKU rebalances at the next Settle.
  absl::Status BecomeCentralManaged(LedgerTx& tx);

  // ---- inside the write transaction

  // The operation changed this SKU's stock; loss_units > 0 for a negative adjustment or scrap
  // (reported in a RightsLoss when it leaves central's rights over-claimed).
  void Touch(const std::string& sku, int64_t loss_units = 0) {
    if (enabled_) dirty_[sku].loss_units += loss_units > 0 ? loss_units : 0;
  }
  // The ledger changed this SKU's stock and `atp` is its ATP after the change (sku_totals change
  // only in the ledger's AppendRow, and every stock change reports here), so Settle need not
  // read it again.
  void NoteStock(const std::string& sku, const v1::Atp& atp) {
    if (enabled_) dirty_[sku].atp = atp;
  }
  // A local commitment of q units (counter sale when leaves_now, else click-and-collect or a
  // manual reservation). FailedPrecondition "only N of SKU X available for local sale at S (local
  // selling rights)" beyond local rights; the missing units are remembered for FlushWanted.
  absl::Status LocalCommit(LedgerTx& tx, const std::string& sku, int64_t q, bool leaves_now);
  // A local commitment given up (reservation released): back to local rights.
  absl::Status LocalRelease(LedgerTx& tx, const std::string& sku, int64_t q);
  // The goods of a local commitment left (hand-out, consume).
  absl::Status LocalLeave(LedgerTx& tx, const std::string& sku, int64_t q);
  // One of central's fulfilments shipped (`shipped` units: central's rights consumed) or was
  // shorted (`returned` units: central's rights come back as unassigned).
  absl::Status CentralDelta(LedgerTx& tx, const std::string& sku, int64_t shipped,
                            int64_t returned, const std::string& fulfilment_id);
  // Recomputes every touched SKU (see the contract above) and forgets them.
  absl::Status Settle(LedgerTx& tx);
  // The operation failed and was rolled back: forget what it touched (not what it wanted) and
  // the books it changed in memory.
  void Discard() {
    dirty_.clear();
    books_.clear();
    changed_.clear();
  }
  // After refused local sales: ask central for the missing units (once until answered).
  // Only on a central-managed node; runs in the batch's transaction outside the failed operation.
  absl::Status FlushWanted(LedgerTx& tx);
  bool HasWanted() const { return !wanted_.empty(); }
  bool enabled() const { return enabled_; }
  // A release of central's finds only `available` of `wanted` units: how many of the missing
  // ones a reported loss explains (they are then shorted as "stock_loss"; the rest is an
  // oversell, "no_stock_at_release"). Counts them against the reported shortfall.
  int64_t LossExplains(LedgerTx& tx, const std::string& sku, int64_t missing);

  // Central's feed.
  absl::Status ApplyRelease(LedgerTx& tx, const v1::RightsRelease& release);
  absl::Status ApplyRequest(LedgerTx& tx, const v1::RightsRequest& request);
  absl::Status ApplyPolicy(LedgerTx& tx, const v1::RightsPolicy& policy);
  absl::Status ApplySite(LedgerTx& tx, const v1::Site& site);
  // The operator asks central for rights now (v1::Operation.rights_request).
  absl::StatusOr<v1::RightsBook> Request(LedgerTx& tx, const v1::RightsRequest& request);

  // The policy in force (see rights.proto RightsPolicy for the defaults).
  v1::RightsPolicy Policy() const;

  // ---- reads (any connection)
  static absl::StatusOr<std::vector<v1::RightsBook>> List(StmtCache& db, const std::string& sku);
  static absl::StatusOr<v1::RightsHistoryResponse> History(StmtCache& db, const std::string& sku,
                                                           uint32_t limit);
  // Checks both conservation identities of rights.proto RightsBook and that the stored on_hand
  // matches stock totals; returns one line per violation.
  static absl::StatusOr<std::vector<std::string>> Verify(StmtCache& db);

 private:
  struct Dirty {
    int64_t loss_units = 0;
    bool rebalance = false;
    bool sold = false;  // a local commitment: check the refill threshold
    std::optional<v1::Atp> atp;  // the SKU's ATP after the operation's last stock change
  };

  // A write-back cache of the books (only this class writes node_rights, on the ledger's one
  // write connection): LoadBook returns the cached copy (read from node_rights the first time),
  // SaveBook replaces it in memory, and FlushBooks (the end of Settle and FlushWanted) writes the
  // changed ones in the caller's transaction. Anything rolled back calls Discard (and Load, at
  // open), which empties the cache, so it never holds what was not committed. At most
  // kMaxCachedBooks books are kept.
  absl::StatusOr<v1::RightsBook> LoadBook(StmtCache& db, const std::string& sku);
  void SaveBook(LedgerTx& tx, const v1::RightsBook& book);
  void FlushBooks(LedgerTx& tx);
  void Log(LedgerTx& tx, const std::string& sku, const std::string& kind, int64_t units,
           uint64_t seq, const std::string& reference, const std::string& note);
  void EmitEvent(LedgerTx& tx, v1::RightsEvent event, const v1::RightsBook& book);
  absl::Status SettleOne(LedgerTx& tx, const std::string& sku, const Dirty& d);
  absl::Status AskCentral(LedgerTx& tx, v1::RightsBook* book, int64_t units,
                          const std::string& reason);
  absl::Status TouchAll(LedgerTx& tx);  // a policy change: every SKU settles and rebalances

  std::string node_id_;
  bool enabled_ = true;
  bool central_managed_ = false;
  bool has_policy_ = false;
  v1::RightsPolicy policy_;   // from central's feed
  std::string site_kind_;     // of this node's site, from central's feed
  std::map<std::string, Dirty> dirty_;
  struct Cached {
    v1::RightsBook book;
    bool changed = false;
  };
  static constexpr size_t kMaxCachedBooks = 20000;
  std::map<std::string, Cached> books_;  // see LoadBook
  std::vector<std::string> changed_;      // SKUs of books_ with changed = true
  std::map<std::string, int64_t> wanted_;  // refused local sales: sku -> missing units
};

}  // namespace depot::node
