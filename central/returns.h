// Returns at central (docs/ORDERS.md "Returns"): return authorisations (RMAs) for an order's
// shipped lines, the merge of the nodes' ReturnUpdate events, the return exceptions and the
// turnaround KPI.
//
// Ownership (SYNC.md): central owns an RMA (its lines, authorised quantities and reasons); the
// node that receives the goods owns the return's progress (received, disposed, refunded) and
// reports its whole state after every change (Event.return_update, exactly once and in order).
// An RMA goes to every site's feed (FeedEntry.return_authorisation), so any site can receive it
// while offline; when a site first reports receiving it, it goes again (with that site) to the
// other sites, which then refuse to receive it. A store may receive a return without an RMA ("counter return", id
// "<node>-LR<n>"); central creates its record when the update arrives and checks it then.
//
// Exceptions raised when a node's update is merged (each at most once per return and kind):
// - return_over_shipped: a line's units received over all returns of the order exceed the units
//   the order line shipped;
// - return_unknown_serial: a received serial was never shipped for that order (central knows the
//   serials of CONSUME movements against the order's fulfilments, recorded as they arrive by
//   NoteShippedSerials; when none were recorded for the SKU nothing is checked);
// - return_unknown_order: a counter return names an order central does not know (or an SKU the
//   order does not have);
// - return_other_site: a second site reports the same RMA; its state is not merged (the first
//   site that received it owns it).
//
// Writes run through OrderStore::RunBatch (one transaction each; the store serializes them with
// the order service's writer and ApplyEvents). Thread-safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "central/order_store.h"
#include "common/clock.h"
#include "depot/v1/ledger.pb.h"
#include "depot/v1/returns.pb.h"

namespace depot::central {

// Merges a node's Event.return_update inside the caller's transaction (the store's ApplyEvents).
// Throws only on storage failure.
void ApplyReturnUpdate(OrderTx& tx, const std::string& node_id, const v1::Event& event);

// Records the serials of a CONSUME movement (the node shipped them against reference, a
// fulfilment id) for the serial check of returns. Called inside ApplyEvents.
void NoteShippedSerials(OrderTx& tx, const std::string& node_id, const v1::Movement& movement);

// Turnaround per (site, reason) over the returns' lines that were received: receipt -> the
// line's last disposition, receipt -> refund; hours, average and median (nearest rank).
v1::ReturnKpiResponse ReturnKpi(const std::vector<v1::Return>& returns);

class ReturnsService {
 public:
  // store and clock must outlive this object. feed_changed wakes the sync sessions after an RMA
  // was appended to the feeds (CentralService::FeedChanged); may be empty.
  ReturnsService(OrderStore* store, const Clock* clock, std::function<void()> feed_changed);

  // Creates an RMA "R" + 8 digits. InvalidArgument: no order id, no lines, quantity <= 0, a
  // reason not in the list, a line without line_no or SKU; NotFound: unknown order;
  // FailedPrecondition: a line the order does not have, or a quantity above what is still
  // returnable (shipped - authorised or received on the order's other returns; the message
  // names the numbers). The RMA is appended to every site's feed in the same transaction.
  absl::StatusOr<v1::Return> Create(const v1::CreateReturnRequest& request,
                                    const std::string& operator_id);
  absl::StatusOr<v1::Return> Get(const std::string& return_id);  // NotFound
  // Filters status, order_id, site; newest first; limit 1..1000 (0 = 100). With the KPI of the
  // listed returns.
  absl::StatusOr<v1::ListReturnsResponse> List(const v1::ListReturnsRequest& request);
  // The KPI over every return (site empty) or one site's.
  absl::StatusOr<v1::ReturnKpiResponse> Kpi(const std::string& site);

 private:
  OrderStore* store_;
  const Clock* clock_;
  std::function<void()> feed_changed_;
};

}  // namespace depot::central
