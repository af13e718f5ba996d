// Central-only master data from CSV: sales channels and kits. Parsing and row checks only (codes,
// numbers, repeats); whether named sites and SKUs exist is the store's check, inside its import
// transaction. Errors name the line: "nothing imported: line 3: ...", up to 20 in one
// InvalidArgument.
#pragma once

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "depot/v1/orders.pb.h"

namespace depot::central {

template <typename T>
struct CsvRow {
  int line = 0;  // 1-based line of the row in the file
  T value;
};

// Columns: id (required), name, site_priority (site ids separated by '|', in order of
// preference; empty = every site), allow_split (true/false/yes/no/1/0), review_above_cents
// (>= 0; 0 = never review), listing_buffer (>= 0, default 0: units held back from the channel's
// published listing quantity).
absl::StatusOr<std::vector<CsvRow<v1::Channel>>> ParseChannels(std::string_view text);

// Columns: kit_sku, component_sku, quantity (all required; quantity > 0). A kit's rows keep
// their file order (the first component carries the kit's price on orders).
absl::StatusOr<std::vector<CsvRow<v1::KitComponent>>> ParseKits(std::string_view text);

}  // namespace depot::central
