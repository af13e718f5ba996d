// Transfer status names shared by the node's and central's HTTP APIs (proto/depot/v1/
// transfers.proto).
#pragma once

#include <string>

#include "depot/v1/transfers.pb.h"

namespace depot::transfers {

// Reads a status filter: "" = all (TRANSFER_STATUS_UNSPECIFIED); otherwise the enum name with or
// without its TRANSFER_ prefix, in any case ("shipped", "TRANSFER_RECEIVED"), and "in_transit"
// (or "in-transit") for SHIPPED. false for anything else.
bool ParseTransferStatus(const std::string& text, v1::TransferStatus* out);

}  // namespace depot::transfers
