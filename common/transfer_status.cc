#include "common/transfer_status.h"

#include <cctype>

namespace depot::transfers {

bool ParseTransferStatus(const std::string& text, v1::TransferStatus* out) {
  *out = v1::TRANSFER_STATUS_UNSPECIFIED;
  if (text.empty()) return true;
  std::string upper;
  for (char c : text) upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (upper == "IN_TRANSIT" || upper == "IN-TRANSIT") upper = "SHIPPED";
  if (v1::TransferStatus_Parse(upper, out) && *out != v1::TRANSFER_STATUS_UNSPECIFIED) return true;
  return v1::TransferStatus_Parse("TRANSFER_" + upper, out) &&
         *out != v1::TRANSFER_STATUS_UNSPECIFIED;
}

}  // namespace depot::transfers
