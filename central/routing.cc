#include "central/routing.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace depot::central::routing {
namespace {

using absl::StrCat;

struct Candidate {
  const SiteSnapshot* site = nullptr;
  bool region_match = false;
  int position = 0;                      // 0-based, in the priority list (or by id)
  std::map<std::string, int64_t> avail;  // by SKU, >= 0
};

std::string Plural(int64_t n, const char* one, const char* many) {
  return StrCat(n, " ", n == 1 ? one : many);
}

// "online, region us-east matches ship-to, 1st in channel priority"
std::string Facts(const Candidate& c, const Request& r) {
  std::string region;
  if (c.region_match) {
    region = StrCat("region ", c.site->region, " matches ship-to");
  } else if (r.ship_to_region.empty()) {
    region = "ship-to has no region";
  } else if (c.site->region.empty()) {
    region = StrCat("no region (ship-to ", r.ship_to_region, ")");
  } else {
    region = StrCat("region ", c.site->region, " is not ship-to ", r.ship_to_region);
  }
  const std::string position =
      r.site_priority.empty() ? StrCat(Ordinal(c.position + 1), " of all sites by id (channel ",
                                       r.channel, " has no site priority)")
                              : StrCat(Ordinal(c.position + 1), " in channel priority");
  return StrCat(c.site->online ? "online" : "offline", ", ", region, ", ", position);
}

}  // namespace

int64_t Available(const SiteRights& r) { return r.central_rights - r.central_committed; }

std::string Ordinal(int n) {
  const int mod100 = n % 100, mod10 = n % 10;
  const char* suffix = "th";
  if (mod100 < 11 || mod100 > 13) {
    if (mod10 == 1) suffix = "st";
    if (mod10 == 2) suffix = "nd";
    if (mod10 == 3) suffix = "rd";
  }
  return StrCat(n, suffix);
}

Decision Route(const Request& r) {
  Decision d;
  std::vector<OpenLine> lines;
  std::map<std::string, int64_t> demand;  // by SKU
  int64_t total = 0;
  for (const OpenLine& l : r.lines) {
    if (l.open <= 0) continue;
    lines.push_back(l);
    demand[l.sku] += l.open;
    total += l.open;
  }
  if (total == 0) return d;

  // 1. Candidates.
  std::map<std::string, const SiteSnapshot*> by_id;
  for (const SiteSnapshot& s : r.sites) by_id[s.id] = &s;
  std::vector<std::string> order = r.site_priority;
  if (order.empty()) {
    for (const auto& [id, s] : by_id) order.push_back(id);
  }
  std::vector<Candidate> cands;
  std::set<std::string> seen;
  for (size_t i = 0; i < order.size(); ++i) {
    auto it = by_id.find(order[i]);
    if (it == by_id.end() || r.excluded.count(order[i]) || !seen.insert(order[i]).second) continue;
    Candidate c;
    c.site = it->second;
    c.position = static_cast<int>(i);
    c.region_match = !r.ship_to_region.empty() && c.site->region == r.ship_to_region;
    for (const auto& [sku, units] : demand) {
      auto st = c.site->rights.find(sku);
      c.avail[sku] = st == c.site->rights.end() ? 0 : std::max<int64_t>(0, Available(st->second));
    }
    cands.push_back(std::move(c));
  }
  d.unrouted = total;
  if (cands.empty()) {
    if (r.sites.empty()) {
      d.note = "no sites are registered";
    } else if (!r.excluded.empty()) {
      d.note = StrCat(
          "no candidate site left for channel ", r.channel,
          " (excluded because they shorted this order: ", absl::StrJoin(r.excluded, ", "), ")");
    } else {
      d.note = StrCat("channel ", r.channel, "'s site priority names no known site");
    }
    return d;
  }

  // 2. Rank: online first, region match first, then channel priority position.
  std::stable_sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) {
    return std::make_tuple(!a.site->online, !a.region_match, a.position) <
           std::make_tuple(!b.site->online, !b.region_match, b.position);
  });

  // 3. One site fills everything.
  for (const Candidate& c : cands) {
    bool fills = true;
    for (const auto& [sku, units] : demand) fills = fills && c.avail.at(sku) >= units;
    if (!fills) continue;
    Part p;
    p.site = c.site->id;
    for (const OpenLine& l : lines) p.lines.push_back({l.line_no, l.sku, l.open});
    std::string facts = Facts(c, r);
    if (!c.site->online) {
      facts.replace(0, 7, "offline (no online site can fill all lines)");
    }
    p.reason = StrCat(
        c.site->id, ": ", facts, ", fills ",
        lines.size() == 1 ? std::string("its 1 line") : StrCat("all ", lines.size(), " lines"));
    d.parts.push_back(std::move(p));
    d.routed = total;
    d.unrouted = 0;
    return d;
  }

  // Units a site could cover of what remains (shared SKUs counted once).
  std::vector<int64_t> remaining;
  for (const OpenLine& l : lines) remaining.push_back(l.open);
  auto cover = [&](const Candidate& c, std::vector<int64_t>* take) {
    std::map<std::string, int64_t> left = c.avail;
    int64_t sum = 0;
    if (take) take->assign(lines.size(), 0);
    for (size_t i = 0; i < lines.size(); ++i) {
      const int64_t t = std::min(remaining[i], left[lines[i].sku]);
      left[lines[i].sku] -= t;
      sum += t;
      if (take) (*take)[i] = t;
    }
    return sum;
  };
  auto missing_skus = [&] {
    std::set<std::string> skus;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (remaining[i] > 0) skus.insert(lines[i].sku);
    }
    return absl::StrJoin(skus, ", ");
  };

  // 5. No splits allowed.
  if (!r.allow_split) {
    int64_t best = 0;
    const Candidate* best_site = nullptr;
    for (const Candidate& c : cands) {
      const int64_t n = cover(c, nullptr);
      if (n > best) {
        best = n;
        best_site = &c;
      }
    }
    if (!best_site) {
      d.note = StrCat("no candidate site has ", missing_skus(),
                      " available (central's selling rights)");
    } else {
      d.note = StrCat("no single site can fill all lines; channel ", r.channel,
                      " forbids splits (best: ", best_site->site->id, " has ", best, " of ",
                      Plural(total, "unit", "units"), ")");
    }
    return d;
  }

  // 4. Greedy fewest splits.
  std::vector<bool> used(cands.size(), false);
  std::vector<std::pair<size_t, int64_t>> taken;  // candidate, remaining units before it
  int64_t left_total = total;
  for (;;) {
    int64_t best = 0;
    size_t best_i = 0;
    for (size_t i = 0; i < cands.size(); ++i) {
      if (used[i]) continue;
      const int64_t n = cover(cands[i], nullptr);
      if (n > best) {
        best = n;
        best_i = i;
      }
    }
    if (best == 0) break;
    std::vector<int64_t> take;
    cover(cands[best_i], &take);
    used[best_i] = true;
    Part p;
    p.site = cands[best_i].site->id;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (take[i] == 0) continue;
      p.lines.push_back({lines[i].line_no, lines[i].sku, take[i]});
      remaining[i] -= take[i];
    }
    taken.emplace_back(best_i, left_total);
    p.reason = StrCat(" covers ", best, " of ", left_total, " remaining units (");
    left_total -= best;
    d.parts.push_back(std::move(p));
    if (left_total == 0) break;
  }
  const size_t n = d.parts.size();
  for (size_t k = 0; k < n; ++k) {
    const Candidate& c = cands[taken[k].first];
    d.parts[k].reason = StrCat(n > 1 ? StrCat("split ", k + 1, " of ", n) : std::string("partial"),
                               ": ", c.site->id, d.parts[k].reason, Facts(c, r), ")");
  }
  d.routed = total - left_total;
  d.unrouted = left_total;
  if (left_total > 0) {
    d.note = StrCat(left_total, " of ", Plural(total, "unit", "units"),
                    " backordered: no candidate site has ", d.parts.empty() ? "" : "more of ",
                    missing_skus(), " available (central's selling rights)");
  }
  return d;
}

}  // namespace depot::central::routing
