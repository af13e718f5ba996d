#include "common/master_csv.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/csv.h"
#include "common/stock_rules.h"

namespace depot::csv {
namespace {

using absl::StrCat;

absl::StatusOr<bool> ParseBool(const std::string& v) {
  if (v.empty() || v == "0" || v == "false" || v == "no" || v == "n") return false;
  if (v == "1" || v == "true" || v == "yes" || v == "y") return true;
  return absl::InvalidArgumentError(StrCat("'", v, "' is not a boolean (true/false)"));
}

absl::StatusOr<int64_t> ParseInt(const std::string& v, int64_t min) {
  if (v.empty()) return 0;
  size_t used = 0;
  int64_t out = 0;
  try {
    out = std::stoll(v, &used);
  } catch (...) {
    used = 0;
  }
  if (used != v.size()) return absl::InvalidArgumentError(StrCat("'", v, "' is not an integer"));
  if (out < min) return absl::InvalidArgumentError(StrCat(v, " is below ", min));
  return out;
}

// Collects row errors and checks the key column: present, a valid code, not repeated.
class Errors : public csv::ImportErrors {
 public:
  bool Key(const Row& row, const std::string& what, const std::string& key) {
    if (auto s = CheckCode(what, key); !s.ok()) {
      Add(row.line, s.message());
      return false;
    }
    if (auto [it, fresh] = seen_.emplace(key, row.line); !fresh) {
      Add(row.line, StrCat(what, " '", key, "' repeats line ", it->second));
      return false;
    }
    return true;
  }

 private:
  std::map<std::string, int> seen_;
};

}  // namespace

absl::StatusOr<std::vector<v1::Sku>> ParseSkus(std::string_view text) {
  auto table = Table::FromText(text, {"code"},
                               {"code", "gtin", "name", "unit", "tracking", "expiry_tracked",
                                "allow_negative", "safety_stock"});
  if (!table.ok()) return table.status();
  Errors errors;
  std::vector<v1::Sku> out;
  for (const auto& row : table->rows()) {
    v1::Sku sku;
    sku.set_code(table->Get(row, "code"));
    if (!errors.Key(row, "code", sku.code())) continue;
    sku.set_gtin(table->Get(row, "gtin"));
    if (!sku.gtin().empty() && !ValidGtin(sku.gtin())) {
      errors.Add(row.line, StrCat("gtin '", sku.gtin(), "' is not a valid GTIN-8/12/13/14"));
    }
    sku.set_name(table->Get(row, "name"));
    sku.set_unit(table->Get(row, "unit").empty() ? "ea" : table->Get(row, "unit"));
    const std::string tracking = table->Get(row, "tracking");
    if (tracking.empty() || tracking == "none") {
      sku.set_tracking(v1::TRACKING_NONE);
    } else if (tracking == "lot") {
      sku.set_tracking(v1::TRACKING_LOT);
    } else if (tracking == "serial") {
      sku.set_tracking(v1::TRACKING_SERIAL);
    } else {
      errors.Add(row.line, StrCat("tracking '", tracking, "' is not none, lot or serial"));
    }
    auto expiry = ParseBool(table->Get(row, "expiry_tracked"));
    auto negative = ParseBool(table->Get(row, "allow_negative"));
    if (!expiry.ok()) errors.Add(row.line, StrCat("expiry_tracked: ", expiry.status().message()));
    if (!negative.ok()) {
      errors.Add(row.line, StrCat("allow_negative: ", negative.status().message()));
    }
    sku.set_expiry_tracked(expiry.value_or(false));
    sku.set_allow_negative(negative.value_or(false));
    if (sku.expiry_tracked() && sku.tracking() == v1::TRACKING_NONE) {
      errors.Add(row.line, "expiry_tracked needs tracking lot or serial");
    }
    auto safety = ParseInt(table->Get(row, "safety_stock"), 0);
    if (!safety.ok()) errors.Add(row.line, StrCat("safety_stock: ", safety.status().message()));
    sku.set_safety_stock(safety.value_or(0));
    out.push_back(std::move(sku));
  }
  if (auto s = errors.Status(); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<v1::Bin>> ParseBins(std::string_view text, bool with_site) {
  std::vector<std::string> required = {"code"}, allowed = {"code", "zone", "walk_order"};
  if (with_site) {
    required.push_back("site");
    allowed.push_back("site");
  }
  auto table = Table::FromText(text, required, allowed);
  if (!table.ok()) return table.status();
  Errors errors;
  std::vector<v1::Bin> out;
  for (const auto& row : table->rows()) {
    v1::Bin bin;
    bin.set_site(table->Get(row, "site"));
    bin.set_code(table->Get(row, "code"));
    if (with_site) {
      if (auto s = CheckCode("site", bin.site()); !s.ok()) {
        errors.Add(row.line, s.message());
        continue;
      }
    }
    if (!errors.Key(row, "code", with_site ? StrCat(bin.site(), "/", bin.code()) : bin.code())) {
      continue;
    }
    if (auto s = CheckCode("code", bin.code()); !s.ok()) {
      errors.Add(row.line, s.message());
      continue;
    }
    bin.set_zone(table->Get(row, "zone"));
    auto walk = ParseInt(table->Get(row, "walk_order"), 0);
    if (!walk.ok()) errors.Add(row.line, StrCat("walk_order: ", walk.status().message()));
    bin.set_walk_order(walk.value_or(0));
    out.push_back(std::move(bin));
  }
  if (auto s = errors.Status(); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<v1::Site>> ParseSites(std::string_view text) {
  auto table = Table::FromText(text, {"id"}, {"id", "name", "kind", "region"});
  if (!table.ok()) return table.status();
  Errors errors;
  std::vector<v1::Site> out;
  for (const auto& row : table->rows()) {
    v1::Site site;
    site.set_id(table->Get(row, "id"));
    if (!errors.Key(row, "id", site.id())) continue;
    site.set_name(table->Get(row, "name"));
    site.set_kind(table->Get(row, "kind").empty() ? "warehouse" : table->Get(row, "kind"));
    if (site.kind() != "warehouse" && site.kind() != "store") {
      errors.Add(row.line, StrCat("kind '", site.kind(), "' is not warehouse or store"));
    }
    site.set_region(table->Get(row, "region"));
    out.push_back(std::move(site));
  }
  if (auto s = errors.Status(); !s.ok()) return s;
  return out;
}

}  // namespace depot::csv
