// Stock rules shared by the node (which writes the ledger) and central (which mirrors it): how a
// movement changes balances, and validation of codes, dates and reason codes. Plain C++ over
// plain data: no SQLite, gRPC or Asio here, so unit tests and the simulation call it directly.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "depot/v1/ledger.pb.h"

namespace depot {

// The effect of one movement row on balances.
struct MovementEffects {
  struct StockDelta {
    std::string bin;
    int64_t delta = 0;   // change of on hand at (sku, bin, lot)
  };
  StockDelta stock[2];   // MOVE has two (out of bin, into to_bin); others at most one
  int stock_count = 0;
  int64_t reserved_delta = 0;  // change of reserved at (sku, reference)
};
MovementEffects EffectsOf(const v1::Movement& m);

// A 64-bit hash of one event (its seq and movement), summed over a set of events to get an
// order-independent digest that node and central compare (SYNC.md invariant 1).
uint64_t EventHash(uint64_t seq, const v1::Movement& m);
// The same hash from the movement's deterministic serialization.
uint64_t EventHashOfBytes(uint64_t seq, std::string_view movement_bytes);
// Serializes event (canonically: no map fields) into *out and returns EventHash of its movement (0 when
// it carries none), hashing the movement's bytes inside the serialization: one pass.
uint64_t SerializeAndHash(const v1::Event& event, std::string* out);

// Available-to-promise: on_hand - reserved - safety_stock (may be negative).
inline int64_t Available(int64_t on_hand, int64_t reserved, int64_t safety_stock) {
  return on_hand - reserved - safety_stock;
}

// A GTIN-8/12/13/14 (EAN/UPC) with a correct GS1 mod-10 check digit.
bool ValidGtin(std::string_view gtin);
// A real calendar date written YYYY-MM-DD.
bool ValidDate(std::string_view date);
// A code for SKUs, bins, lots, serials, references: 1..64 printable ASCII characters, no spaces at
// either end, no control characters.
absl::Status CheckCode(std::string_view what, std::string_view code, bool required = true);

// Adjustment reason codes: damaged, lost and expired take stock out (quantity < 0), found brings
// it in (quantity > 0), count corrects either way. quantity 0 is never valid.
absl::Status CheckAdjustment(std::string_view reason, int64_t quantity);

// The UTC calendar date (YYYY-MM-DD) of a time in microseconds since the Unix epoch.
std::string UtcDate(int64_t unix_micros);
// A lot is expired when it has an expiry date before today (both YYYY-MM-DD); a lot without one
// never expires.
bool LotExpired(std::string_view expiry, std::string_view today);

}  // namespace depot
