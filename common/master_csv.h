// Master data from CSV, shared by the node (until central feeds it) and central. Parsing and
// validation only; storing is the caller's business. Every function reads all rows and reports
// every bad one (up to 20) by line number in one InvalidArgument, "nothing imported: line 3: ...".
#pragma once

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "depot/v1/master.pb.h"

namespace depot::csv {

// Columns: code (required), gtin, name, unit, tracking (none|lot|serial), expiry_tracked,
// allow_negative (true/false/yes/no/1/0), safety_stock (>= 0).
absl::StatusOr<std::vector<v1::Sku>> ParseSkus(std::string_view text);
// Columns: code (required), zone, walk_order (>= 0); with_site adds a required site column.
absl::StatusOr<std::vector<v1::Bin>> ParseBins(std::string_view text, bool with_site);
// Columns: id (required), name, kind (warehouse|store), region.
absl::StatusOr<std::vector<v1::Site>> ParseSites(std::string_view text);

}  // namespace depot::csv
