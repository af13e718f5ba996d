// Rules of returns both sides apply (docs/ORDERS.md "Returns"): the reason codes, the derived
// status of a return, and the turnaround arithmetic. Plain C++ over the protobuf messages;
// header-only (no SQLite, gRPC or I/O).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "depot/v1/returns.pb.h"

namespace depot::returns {

inline constexpr std::string_view kReasons[] = {"damaged", "wrong_item", "not_as_described",
                                                "no_longer_needed", "other"};
inline constexpr const char* kReasonList =
    "damaged, wrong_item, not_as_described, no_longer_needed, other";

inline bool ValidReason(std::string_view reason) {
  return std::find(std::begin(kReasons), std::end(kReasons), reason) != std::end(kReasons);
}

// Units of a line that were restocked, refurbished or scrapped.
inline int64_t Disposed(const v1::ReturnLine& l) {
  return l.restocked() + l.refurbished() + l.scrapped();
}

// AUTHORISED until something is received; RECEIVED while a received unit waits for its
// disposition; then DISPOSED, or REFUNDED once the refund was issued too.
inline v1::ReturnStatus DeriveStatus(const v1::Return& r) {
  int64_t received = 0;
  bool open = false;
  for (const auto& l : r.lines()) {
    received += l.received();
    if (Disposed(l) < l.received()) open = true;
  }
  if (received == 0) return v1::RETURN_AUTHORISED;
  if (open) return v1::RETURN_RECEIVED;
  return r.refunded_ms() > 0 ? v1::RETURN_REFUNDED : v1::RETURN_DISPOSED;
}

// "authorised", "received", "disposed", "refunded".
inline std::string StatusName(v1::ReturnStatus s) {
  switch (s) {
    case v1::RETURN_AUTHORISED: return "authorised";
    case v1::RETURN_RECEIVED: return "received";
    case v1::RETURN_DISPOSED: return "disposed";
    case v1::RETURN_REFUNDED: return "refunded";
    default: return "unspecified";
  }
}

// Parses "RETURN_RECEIVED" or "received"; false when neither.
inline bool ParseStatus(const std::string& text, v1::ReturnStatus* out) {
  if (v1::ReturnStatus_Parse(text, out)) return true;
  for (v1::ReturnStatus s : {v1::RETURN_AUTHORISED, v1::RETURN_RECEIVED, v1::RETURN_DISPOSED,
                             v1::RETURN_REFUNDED}) {
    if (text == StatusName(s)) {
      *out = s;
      return true;
    }
  }
  return false;
}

}  // namespace depot::returns
