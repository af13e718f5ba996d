// Purchase orders at central (docs/OPERATIONS.md "Receiving against purchase orders").
//
// Ownership (SYNC.md): central owns a PO's header, lines, ordered quantities, tolerance and its
// closing or cancelling; the destination site owns what it physically received. Central sends
// the whole PO (FeedEntry.purchase_order, with its version) to the site's feed on create, close
// and cancel; the node keeps the newest version and receives against it offline. The node's
// receipts are ordinary RECEIPT movement events (reason "po", reference = po_id); central learns
// received quantities from them inside ApplyEvents (ApplyReceiptEvent), in the same transaction
// as the event mark, so exactly-once delivery makes the update idempotent. Receipts central
// cannot match (unknown PO, another site, a SKU not on the PO, over the tolerance, after close
// or cancel) raise exception entries and are still counted where they can be: they never stall
// the stream.
//
// Status: open -> partially_received -> received follow the received quantities
// (purchasing::DeriveStatus); closed_short and cancelled are central's decisions and terminal.
// Every write is one transaction (PoStore::RunPo). Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "central/order_store.h"
#include "common/clock.h"
#include "depot/v1/ledger.pb.h"
#include "depot/v1/purchasing.pb.h"

namespace depot::central {

// Reads and writes inside one open write transaction; valid only during the callback it is
// handed to. Storage failures throw (the owner rolls back and reports a Status).
class PoTx {
 public:
  virtual ~PoTx() = default;
  // Master data (Sites, SafetyStock as "SKU exists"), the feed and exceptions.
  virtual OrderTx& base() = 0;
  virtual std::optional<v1::PurchaseOrder> LoadPo(const std::string& po_id) = 0;
  virtual void SavePo(const v1::PurchaseOrder& po) = 0;  // insert or replace
  virtual std::optional<v1::Supplier> LoadSupplier(const std::string& id) = 0;
  virtual void SaveSupplier(const v1::Supplier& supplier) = 0;
};

// The storage seam (implemented by the SQLite store on central's database).
class PoStore {
 public:
  virtual ~PoStore() = default;
  // One write transaction around fn: committed when fn returns OK, else rolled back.
  virtual absl::Status RunPo(const std::function<absl::Status(PoTx&)>& fn) = 0;
  // Reads of committed data. NotFound for an unknown id.
  virtual absl::StatusOr<v1::PurchaseOrder> GetPo(const std::string& po_id) = 0;
  // Filtered by site, supplier, status (empty / unspecified = all), by po_id after `after`.
  virtual absl::StatusOr<v1::ListPurchaseOrdersResponse> ListPos(const std::string& site,
                                                                 const std::string& supplier,
                                                                 v1::PurchaseOrderStatus status,
                                                                 const std::string& after,
                                                                 uint32_t limit) = 0;
  virtual absl::StatusOr<v1::ListSuppliersResponse> ListSuppliers() = 0;
};

// One PO of a CSV file, with the file lines it came from (for error messages).
struct CsvPurchaseOrder {
  v1::PurchaseOrder po;
  int first_line = 0;
  std::vector<int> line_of;  // file line of po.lines(i)
};

// Parses a PO CSV file: columns po, supplier, site, sku, quantity (required), expected_date,
// line, tolerance_percent (optional). Rows of one PO share po, supplier, site, expected_date
// and tolerance_percent; line defaults to the row's position in its PO. Every PO passes
// purchasing::Validate. InvalidArgument "nothing imported: line N: ...; ..." on any error.
absl::StatusOr<std::vector<CsvPurchaseOrder>> ParsePurchaseOrdersCsv(std::string_view text);

// A node's movement event inside ApplyEvents (sign +1) or its reversal after a restore from
// backup (sign -1, no exceptions): a RECEIPT with reason "po" updates the PO's received
// quantity and status; anything else is ignored. Throws only on storage failure.
void ApplyReceiptEvent(PoTx& tx, const std::string& node_id, const v1::Event& event, int sign);

class PurchaseOrderService {
 public:
  // store and clock outlive this; feed_changed is called after a commit that fed a site.
  PurchaseOrderService(PoStore* store, const Clock* clock, std::function<void()> feed_changed);

  // A new PO: purchasing::Validate (InvalidArgument), unknown site or SKU (NotFound), po_id taken
  // (AlreadyExists). Tolerance unset = the supplier's default (0 without one). Status open,
  // version 1; the PO goes to its site's feed in the same transaction.
  absl::StatusOr<v1::PurchaseOrder> Create(v1::PurchaseOrder po);
  // All POs of the file or none; every error (parse, unknown site or SKU, po_id taken) names
  // its file line (InvalidArgument).
  absl::StatusOr<v1::ImportPurchaseOrdersResponse> Import(std::string_view csv);
  absl::StatusOr<v1::PurchaseOrder> Get(const std::string& po_id);
  // limit 0 = 100, at most 1000.
  absl::StatusOr<v1::ListPurchaseOrdersResponse> List(const std::string& site,
                                                      const std::string& supplier,
                                                      const std::string& status,
                                                      const std::string& after, uint32_t limit);
  // Close short: only an open or partially received PO (FailedPrecondition otherwise). Cancel:
  // only while nothing was received (else FailedPrecondition: close it short). Both bump the
  // version and feed the PO to its site.
  absl::StatusOr<v1::PurchaseOrder> Close(const v1::PurchaseOrderActionRequest& request);
  absl::StatusOr<v1::PurchaseOrder> Cancel(const v1::PurchaseOrderActionRequest& request);

  // A supplier's default tolerance (insert or update; version + 1). Applies to POs created later.
  absl::StatusOr<v1::Supplier> SetSupplier(v1::Supplier supplier);
  absl::StatusOr<v1::ListSuppliersResponse> ListSuppliers();

 private:
  absl::StatusOr<v1::PurchaseOrder> Finish(const v1::PurchaseOrderActionRequest& request,
                                           bool cancel);
  PoStore* store_;
  const Clock* clock_;
  std::function<void()> feed_changed_;
};

}  // namespace depot::central
