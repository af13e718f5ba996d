#include "central/channels_csv.h"

#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/csv.h"
#include "common/stock_rules.h"

namespace depot::central {
namespace {

using absl::StrCat;

using Errors = csv::ImportErrors;

bool ParseBool(const std::string& v, bool* out) {
  if (v.empty() || v == "0" || v == "false" || v == "no" || v == "n") {
    *out = false;
    return true;
  }
  if (v == "1" || v == "true" || v == "yes" || v == "y") {
    *out = true;
    return true;
  }
  return false;
}

bool ParseInt(const std::string& v, int64_t* out) {
  if (v.empty()) {
    *out = 0;
    return true;
  }
  size_t used = 0;
  try {
    *out = std::stoll(v, &used);
  } catch (...) {
    return false;
  }
  return used == v.size();
}

}  // namespace

absl::StatusOr<std::vector<CsvRow<v1::Channel>>> ParseChannels(std::string_view text) {
  auto table = csv::Table::FromText(
      text, {"id"},
      {"id", "name", "site_priority", "allow_split", "review_above_cents", "listing_buffer"});
  if (!table.ok()) return table.status();
  Errors errors;
  std::map<std::string, int> seen;
  std::vector<CsvRow<v1::Channel>> out;
  for (const auto& row : table->rows()) {
    v1::Channel c;
    c.set_id(table->Get(row, "id"));
    if (auto s = CheckCode("id", c.id()); !s.ok()) {
      errors.Add(row.line, s.message());
      continue;
    }
    if (auto [it, fresh] = seen.emplace(c.id(), row.line); !fresh) {
      errors.Add(row.line, StrCat("channel '", c.id(), "' repeats line ", it->second));
      continue;
    }
    c.set_name(table->Get(row, "name"));
    std::set<std::string> sites;
    for (absl::string_view part : absl::StrSplit(table->Get(row, "site_priority"), '|')) {
      std::string site(absl::StripAsciiWhitespace(part));
      if (site.empty()) continue;
      if (!sites.insert(site).second) {
        errors.Add(row.line, StrCat("site_priority names '", site, "' twice"));
        continue;
      }
      c.add_site_priority(site);
    }
    bool split = false;
    if (!ParseBool(table->Get(row, "allow_split"), &split)) {
      errors.Add(row.line, StrCat("allow_split: '", table->Get(row, "allow_split"),
                                  "' is not a boolean (true/false)"));
    }
    c.set_allow_split(split);
    int64_t review = 0;
    if (!ParseInt(table->Get(row, "review_above_cents"), &review) || review < 0) {
      errors.Add(row.line, StrCat("review_above_cents: '", table->Get(row, "review_above_cents"),
                                  "' is not an integer >= 0"));
    }
    c.set_review_above_cents(review);
    int64_t buffer = 0;
    if (!ParseInt(table->Get(row, "listing_buffer"), &buffer) || buffer < 0) {
      errors.Add(row.line, StrCat("listing_buffer: '", table->Get(row, "listing_buffer"),
                                  "' is not an integer >= 0"));
    }
    c.set_listing_buffer(buffer);
    out.push_back({row.line, std::move(c)});
  }
  if (auto s = errors.Status(); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<CsvRow<v1::KitComponent>>> ParseKits(std::string_view text) {
  auto table = csv::Table::FromText(text, {"kit_sku", "component_sku", "quantity"},
                                    {"kit_sku", "component_sku", "quantity"});
  if (!table.ok()) return table.status();
  Errors errors;
  std::map<std::pair<std::string, std::string>, int> seen;
  std::vector<CsvRow<v1::KitComponent>> out;
  for (const auto& row : table->rows()) {
    v1::KitComponent k;
    k.set_kit_sku(table->Get(row, "kit_sku"));
    k.set_component_sku(table->Get(row, "component_sku"));
    if (auto s = CheckCode("kit_sku", k.kit_sku()); !s.ok()) {
      errors.Add(row.line, s.message());
      continue;
    }
    if (auto s = CheckCode("component_sku", k.component_sku()); !s.ok()) {
      errors.Add(row.line, s.message());
      continue;
    }
    if (k.kit_sku() == k.component_sku()) {
      errors.Add(row.line, StrCat("kit '", k.kit_sku(), "' cannot contain itself"));
      continue;
    }
    if (auto [it, fresh] = seen.emplace(std::make_pair(k.kit_sku(), k.component_sku()), row.line);
        !fresh) {
      errors.Add(row.line, StrCat("component '", k.component_sku(), "' of kit '", k.kit_sku(),
                                  "' repeats line ", it->second));
      continue;
    }
    int64_t q = 0;
    if (!ParseInt(table->Get(row, "quantity"), &q) || q <= 0) {
      errors.Add(row.line,
                 StrCat("quantity: '", table->Get(row, "quantity"), "' is not an integer > 0"));
      continue;
    }
    k.set_quantity(q);
    out.push_back({row.line, std::move(k)});
  }
  if (auto s = errors.Status(); !s.ok()) return s;
  return out;
}

}  // namespace depot::central
