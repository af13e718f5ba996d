// Purchase-order rules both sides need (docs/OPERATIONS.md "Receiving against purchase orders"):
// validation of a PO as central accepts it, the over-receipt limit and the status derived from
// received quantities. Plain C++ over protobuf data: no SQLite, gRPC or I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "depot/v1/purchasing.pb.h"

namespace depot::purchasing {

// The most a line of `ordered` units may receive in total: ordered + floor(ordered *
// tolerance_percent / 100).
int64_t MaxReceivable(int64_t ordered, uint32_t tolerance_percent);

// Closed short and cancelled are terminal: nothing more is received against the PO.
bool IsTerminal(v1::PurchaseOrderStatus status);

// The status from the received quantities (open, partially received, received), or the PO's own
// status when it is terminal.
v1::PurchaseOrderStatus DeriveStatus(const v1::PurchaseOrder& po);

// A new PO's fields: po_id, supplier and site are codes; expected_date empty or YYYY-MM-DD; at
// least one line; line_no > 0 and unique; sku a code and unique within the PO; ordered > 0;
// tolerance <= 1000. Errors are InvalidArgument naming the line.
absl::Status Validate(const v1::PurchaseOrder& po);

// "open", "partially_received", "received", "closed_short", "cancelled".
std::string StatusName(v1::PurchaseOrderStatus status);
// Accepts the short name or the enum name (PO_OPEN); "" = unspecified. False when unknown.
bool ParseStatus(std::string_view text, v1::PurchaseOrderStatus* out);

// Receipts against a PO are movements with this reason and reference = po_id.
inline constexpr const char* kReceiptReason = "po";

}  // namespace depot::purchasing
