// The node's stock ledger: an append-only log of movements in SQLite with balances,
// reservations, serials and the outbox derived in the same transaction.
//
// Contract:
// - Every write is one SQLite transaction: the movement rows (immutable, gap-free seq), their
//   outbox events (gap-free seq per (node, epoch)), balances, SKU totals, reservations, serials
//   and the idempotency record commit together or not at all.
// - Writes are serialized internally (one writer); reads run concurrently on their own
//   connections and see only committed state. All methods are thread-safe.
// - Nothing is acknowledged before its commit: Apply/ApplyBatch return only after COMMIT.
// - Errors: InvalidArgument (bad request), NotFound (unknown SKU/bin/reservation),
//   FailedPrecondition (insufficient stock or ATP, serial state, central-owned data),
//   AlreadyExists (request_id reused with different content), Internal/Unavailable (storage).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/request_context.h"
#include "depot/v1/node_api.pb.h"
#include "depot/v1/purchasing.pb.h"
#include "depot/v1/rights.pb.h"
#include "depot/v1/sync.pb.h"
#include "depot/v1/transfers.pb.h"

namespace depot::node {

// Cycle counts (node/counts.h): a count variance is within tolerance when |variance| <= units or
// |variance| * 100 <= percent * expected; outside it, the line waits for a supervisor's approval.
// The node's default; a count task may override both.
struct CountTolerance {
  int64_t units = 2;
  int64_t percent = 5;
};

struct LedgerOptions {
  std::string path;                       // SQLite file (created when missing)
  std::string node_id;                    // must match the one stored in an existing database
  bool durable = true;                    // synchronous=FULL (else NORMAL)
  bool central_managed = false;           // master data comes from central: refuse CSV imports
  const Clock* clock = &SystemClock();
  int read_connections = 4;               // pool size for concurrent readers
  // Selling rights (node/rights_book.h). false is the naive baseline the benchmarks and the
  // simulation compare against: local sales check ATP only, no book, no rights events.
  bool selling_rights = true;
  CountTolerance count_tolerance;         // cycle counts' default tolerance
};

struct MovementFilter {
  std::string sku, bin, lot, reference, operator_id;
  v1::MovementType type = v1::MOVEMENT_TYPE_UNSPECIFIED;
  uint64_t after_seq = 0;                 // page start (exclusive)
  uint32_t limit = 100;                   // 1..1000
};

// One queued write for ApplyBatch.
struct WriteItem {
  const RequestContext* context;
  const v1::Operation* operation;
};

// The operation's client idempotency key (its request_id), "" when none was given.
std::string RequestIdOf(const v1::Operation& op);

class Ledger {
 public:
  static absl::StatusOr<std::unique_ptr<Ledger>> Open(const LedgerOptions& options);
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // One operation in its own durable transaction.
  absl::StatusOr<v1::OperationResult> Apply(const RequestContext& context,
                                            const v1::Operation& operation);
  // Several operations in ONE durable transaction (group commit). Each runs in a savepoint: a
  // failing operation is rolled back alone and gets its error; the others commit together. If
  // the commit itself fails, every result is that error.
  std::vector<absl::StatusOr<v1::OperationResult>> ApplyBatch(std::span<const WriteItem> items);

  // Master data from CSV (until central replicates it). All rows or nothing; errors name the
  // line. SKU columns: code,gtin,name,unit,tracking,expiry_tracked,allow_negative,safety_stock.
  // Bin columns: code,zone,walk_order. Existing codes are updated; returns the row count.
  absl::StatusOr<int64_t> ImportSkus(std::string_view csv_text);
  absl::StatusOr<int64_t> ImportBins(std::string_view csv_text);

  absl::StatusOr<v1::Sku> GetSku(const std::string& code) const;
  absl::StatusOr<v1::SkusResponse> ListSkus(const std::string& after, uint32_t limit) const;
  absl::StatusOr<v1::BinsResponse> ListBins() const;
  // Codes of the SKUs whose master-data GTIN equals one of gtins (exact text), sorted, no
  // duplicates; empty when none. For scanning: pass gs1::GtinForms of the scanned GTIN.
  absl::StatusOr<std::vector<std::string>> SkuCodesByGtin(
      const std::vector<std::string>& gtins) const;

  absl::StatusOr<v1::Atp> GetAtp(const std::string& sku) const;
  // Balances of one SKU by bin and lot (or, with sku empty, of one bin), plus the SKU's ATP.
  absl::StatusOr<v1::StockResponse> GetStock(const std::string& sku, const std::string& bin) const;
  absl::StatusOr<v1::MovementsResponse> ListMovements(const MovementFilter& filter) const;
  // Lots with expiry: one lot of one SKU, whether it has expired (its expiry is before the UTC
  // date of LedgerOptions.clock), its non-zero balances now and its movements with seq >
  // after_seq (limit as MovementFilter; the movements page is read after the balances, so a
  // write in between may show in one and not the other). NotFound for an unknown SKU or lot.
  // Expired lots are skipped by FEFO draws and wave allocation, refused when named by a consume
  // or a pick and refused on receipt; the Operation member expire_lots writes them off.
  absl::StatusOr<v1::LotResponse> GetLot(const std::string& sku, const std::string& lot,
                                         uint64_t after_seq = 0, uint32_t limit = 100) const;
  absl::StatusOr<v1::ReservationsResponse> ListReservations(const std::string& sku) const;

  // Order fulfilment at this node (node/fulfilment.h). Writes are the fulfilment members of
  // v1::Operation (Apply/ApplyBatch) and FeedEntry.release/.cancel (ApplyFeed); these are reads.
  // Lists are newest first; limit 1..10000.
  absl::StatusOr<v1::FulfilmentsResponse> ListFulfilments(v1::FulfilmentStatus status,
                                                          const std::string& wave_id,
                                                          uint32_t limit = 1000) const;
  absl::StatusOr<v1::NodeFulfilment> GetFulfilment(const std::string& fulfilment_id) const;
  absl::StatusOr<v1::WavesResponse> ListWaves(uint32_t limit = 100) const;  // without tasks
  absl::StatusOr<v1::Wave> GetWave(const std::string& wave_id) const;       // with its tasks
  // Fulfilments per status (v1::FulfilmentStatus as int).
  absl::StatusOr<std::map<int, int64_t>> FulfilmentCounts() const;

  // Selling rights (node/rights_book.h): the book of one SKU (or all, sku empty) with the
  // policy in force, and the transfer history newest first (limit 1..10000, default 100).
  // Asking central for rights is the Operation member rights_request.
  absl::StatusOr<v1::NodeRightsResponse> ListRights(const std::string& sku) const;
  absl::StatusOr<v1::RightsHistoryResponse> RightsHistory(const std::string& sku,
                                                          uint32_t limit) const;

  // Cycle counts (node/counts.h). Writes are the count members of v1::Operation; these are
  // reads in the full (supervisor) view: the HTTP adapter blinds them for counters. Lists are
  // newest first (limit 1..10000). The KPI covers lines posted in the last `days` (0 = all).
  absl::StatusOr<v1::CountsResponse> ListCounts(v1::CountStatus status, uint32_t limit) const;

  // Transfers between sites (node/transfers.h) from or to this site, newest first (filters and
  // limit as ListTransfersRequest says). Writes are the transfer members of v1::Operation and
  // FeedEntry.transfer (ApplyFeed).
  absl::StatusOr<v1::ListTransfersResponse> ListTransfers(
      const v1::ListTransfersRequest& request) const;
  absl::StatusOr<v1::Transfer> GetTransfer(const std::string& transfer_id) const;
  absl::StatusOr<v1::CountTask> GetCount(const std::string& count_id) const;
  absl::StatusOr<v1::CountKpi> CountKpi(uint32_t days) const;

  // Purchase orders of this site as central fed them, with this node's received quantities
  // (node/receiving.h): by po_id, status unspecified = all, limit 1..10000; NotFound for an
  // unknown id. Receiving is the Operation member po_receive. SuggestPutaway: a bin that holds
  // the SKU (same lot when given; most on hand, then walk order), else an empty bin by walk
  // order; reason "none" and no bin when neither exists; NotFound for an unknown SKU.
  absl::StatusOr<v1::ListPurchaseOrdersResponse> ListPurchaseOrders(
      v1::PurchaseOrderStatus status, uint32_t limit) const;
  absl::StatusOr<v1::PurchaseOrder> GetPurchaseOrder(const std::string& po_id) const;
  absl::StatusOr<v1::PutawaySuggestion> SuggestPutaway(const std::string& sku,
                                                       const std::string& lot) const;

  // Returns (node/returns.h). Writes are the return members of v1::Operation and
  // FeedEntry.return_authorisation; these are reads. List: newest first, status unspecified =
  // all, limit 1..10000.
  absl::StatusOr<v1::ReturnsResponse> ListReturns(v1::ReturnStatus status, uint32_t limit) const;
  absl::StatusOr<v1::Return> GetReturn(const std::string& return_id) const;

  // Recomputes balances, totals, reservations and serials from the movements (in one read
  // snapshot) and reports every difference from the stored ones, and checks that every
  // fulfilment's lines account for its open reservation ("fulfilment_reserved") and that every
  // selling-rights book holds its identities ("rights", "rights_on_hand").
  absl::StatusOr<v1::VerifyResponse> Verify() const;

  v1::NodeStatus Status() const;
  uint64_t LastSeq() const;        // number of movements (seq is gap-free from 1)
  uint64_t OutboxDepth() const;    // events not yet acknowledged by central

  // Outbox access for the sync engine: events with seq > after_seq, in order.
  absl::StatusOr<std::vector<v1::Event>> ReadOutbox(uint64_t after_seq, uint32_t limit) const;
  // Deletes events up to and including acked_seq (central has applied them).
  absl::Status TrimOutbox(uint64_t acked_seq);
  // Central acknowledged events up to acked_seq; they leave OutboxDepth() at once and are
  // deleted by the next TrimOutbox (which the sync engine batches to save fsyncs).
  void NoteAcked(uint64_t acked_seq);
  uint64_t LastEventSeq() const;   // newest event seq (continues across epochs)
  uint64_t OutboxAcked() const;    // events up to here were acknowledged and trimmed

  // Identity for the sync Hello. previous_* are set after a restore from backup.
  struct Identity {
    std::string node_id;
    uint64_t epoch = 0;
    uint64_t previous_epoch = 0;
    uint64_t previous_last_seq = 0;
    // Restore chain, newest first: (epoch, last event seq of this history in that epoch).
    std::vector<std::pair<uint64_t, uint64_t>> ancestors;
  };
  Identity GetIdentity() const;
  // Records that central accepted this database's epoch (idempotent, cheap after the first call).
  // A backup of a database whose epoch central never accepted restores to a chain that names
  // the last accepted epoch, so restoring twice while offline still connects.
  absl::Status ConfirmEpoch();

  // Central's feed of master data and orders. Entries with seq <= FeedMark() are duplicates and
  // skipped; a gap stops application; the rest are applied in one transaction with the new
  // mark, newer versions winning. Releases and cancel requests are decided by the node
  // (node/fulfilment.h) in the same transaction, writing their movements and events. Once anything was applied the node is central-managed and CSV imports are
  // refused (FailedPrecondition). Returns the new mark.
  absl::StatusOr<uint64_t> ApplyFeed(const std::vector<v1::FeedEntry>& entries);
  uint64_t FeedMark() const;

  // Restores a node database from a backup copy: copies backup_path to target_path with SQLite's
  // online backup, then starts a new epoch there, remembering the previous epoch and the
  // backup's last event seq so central can tell which events the restore lost. target_path must
  // not be open by a running node.
  static absl::Status RestoreFromBackup(const std::string& backup_path,
                                        const std::string& target_path);

  class Impl;

 private:
  explicit Ledger(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace depot::node
