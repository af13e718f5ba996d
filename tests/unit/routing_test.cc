// The routing policy (central/routing.h) as a pure function: every rule and the facts its reason
// sentences name. Availability is central's selling rights per site (rights - committed).
#include "central/routing.h"

#include <catch2/catch.hpp>

#include "absl/strings/match.h"

using namespace depot::central::routing;

namespace {

SiteSnapshot Site(const std::string& id, const std::string& region, bool online,
                  std::map<std::string, SiteRights> rights) {
  SiteSnapshot s;
  s.id = id;
  s.region = region;
  s.online = online;
  s.rights = std::move(rights);
  return s;
}

// Central holds n rights there, none committed.
SiteRights OnHand(int64_t n) { return SiteRights{n, 0}; }

Request Order(std::vector<OpenLine> lines, std::vector<std::string> priority, bool split,
              std::string region, std::vector<SiteSnapshot> sites) {
  Request r;
  r.lines = std::move(lines);
  r.channel = "web";
  r.site_priority = std::move(priority);
  r.allow_split = split;
  r.ship_to_region = std::move(region);
  r.sites = std::move(sites);
  return r;
}

int64_t Units(const Part& p) {
  int64_t n = 0;
  for (const auto& l : p.lines) n += l.quantity;
  return n;
}

}  // namespace

TEST_CASE("availability is central's rights minus its commitments", "[routing]") {
  CHECK(Available(SiteRights{10, 4}) == 6);
  CHECK(Available(SiteRights{1, 3}) == -2);

  // S1 holds 10 rights but 9 are committed; S2 holds 2 and fills the order of 2.
  Request r = Order({{1, "A", 2}}, {"S1", "S2"}, false, "east",
                    {Site("S1", "east", true, {{"A", SiteRights{10, 9}}}),
                     Site("S2", "west", true, {{"A", OnHand(2)}})});
  Decision d = Route(r);
  REQUIRE(d.parts.size() == 1);
  CHECK(d.parts[0].site == "S2");
  CHECK(d.unrouted == 0);

  // With fewer commitments S1 has enough and wins (first in priority, region match).
  r.sites[0].rights["A"].central_committed = 8;
  d = Route(r);
  REQUIRE(d.parts.size() == 1);
  CHECK(d.parts[0].site == "S1");

  // A negative availability (after a rights conflict) counts as nothing.
  r.sites[0].rights["A"] = SiteRights{1, 3};
  r.sites[1].rights.clear();
  d = Route(r);
  CHECK(d.parts.empty());
  CHECK(d.unrouted == 2);
  CHECK(absl::StrContains(d.note, "no candidate site has A available (central's selling rights)"));
}

TEST_CASE("one site that fills every line beats a split, even a better-ranked one", "[routing]") {
  Request r = Order({{1, "A", 3}, {2, "B", 2}}, {"S1", "S2"}, true, "east",
                    {Site("S1", "east", true, {{"A", OnHand(5)}}),
                     Site("S2", "west", true, {{"A", OnHand(5)}, {"B", OnHand(5)}})});
  Decision d = Route(r);
  REQUIRE(d.parts.size() == 1);
  CHECK(d.parts[0].site == "S2");
  REQUIRE(d.parts[0].lines.size() == 2);
  CHECK(d.parts[0].lines[0].line_no == 1);
  CHECK(d.parts[0].lines[0].quantity == 3);
  CHECK(d.parts[0].lines[1].sku == "B");
  CHECK(d.parts[0].lines[1].quantity == 2);
  CHECK(d.note.empty());
  INFO(d.parts[0].reason);
  CHECK(absl::StrContains(d.parts[0].reason, "S2: online"));
  CHECK(absl::StrContains(d.parts[0].reason, "region west is not ship-to east"));
  CHECK(absl::StrContains(d.parts[0].reason, "2nd in channel priority"));
  CHECK(absl::StrContains(d.parts[0].reason, "fills all 2 lines"));
}

TEST_CASE("a region match outranks channel priority", "[routing]") {
  Request r = Order(
      {{1, "A", 1}}, {"S1", "S2"}, false, "west",
      {Site("S1", "east", true, {{"A", OnHand(5)}}), Site("S2", "west", true, {{"A", OnHand(5)}})});
  Decision d = Route(r);
  REQUIRE(d.parts.size() == 1);
  CHECK(d.parts[0].site == "S2");
  CHECK(d.parts[0].reason ==
        "S2: online, region west matches ship-to, 2nd in channel priority, fills its 1 line");
}

TEST_CASE("channel priority decides between equal sites", "[routing]") {
  Request r = Order(
      {{1, "A", 1}}, {"S2", "S1"}, false, "north",
      {Site("S1", "east", true, {{"A", OnHand(5)}}), Site("S2", "east", true, {{"A", OnHand(5)}})});
  Decision d = Route(r);
  REQUIRE(d.parts.size() == 1);
  CHECK(d.parts[0].site == "S2");
  CHECK(absl::StrContains(d.parts[0].reason, "1st in channel priority"));

  // Without a priority list every site is a candidate, by id.
  r.site_priority.clear();
  d = Route(r);
  REQUIRE(d.parts.size() == 1);
  CHECK(d.parts[0].site == "S1");
  CHECK(absl::StrContains(d.parts[0].reason, "1st of all sites by id"));
  CHECK(absl::StrContains(d.parts[0].reason, "channel web has no site priority"));

  // A site the channel does not list is never a candidate.
  r.site_priority = {"S2"};
  r.sites[1].rights.clear();
  d = Route(r);
  CHECK(d.parts.empty());
  CHECK(d.unrouted == 1);
}

TEST_CASE("online sites are preferred; offline ones are the fallback", "[routing]") {
  Request r = Order({{1, "A", 2}}, {"S1", "S2"}, false, "east",
                    {Site("S1", "east", false, {{"A", OnHand(5)}}),
                     Site("S2", "west", true, {{"A", OnHand(5)}})});
  Decision d = Route(r);
  REQUIRE(d.parts.size() == 1);
  CHECK(d.parts[0].site == "S2");
  CHECK(absl::StrContains(d.parts[0].reason, "S2: online"));

  // The online site cannot fill: the offline one gets it (the feed delivers on reconnect).
  r.sites[1].rights["A"] = OnHand(1);
  d = Route(r);
  REQUIRE(d.parts.size() == 1);
  CHECK(d.parts[0].site == "S1");
  INFO(d.parts[0].reason);
  CHECK(absl::StrContains(d.parts[0].reason, "offline (no online site can fill all lines)"));
  CHECK(absl::StrContains(d.parts[0].reason, "region east matches ship-to"));
}

TEST_CASE("split: greedy fewest parts, most remaining units first, ties by rank", "[routing]") {
  Request r = Order(
      {{1, "A", 10}}, {"S1", "S2", "S3"}, true, "",
      {Site("S1", "east", true, {{"A", OnHand(3)}}), Site("S2", "east", true, {{"A", OnHand(6)}}),
       Site("S3", "east", true, {{"A", OnHand(4)}})});
  Decision d = Route(r);
  REQUIRE(d.parts.size() == 2);
  CHECK(d.parts[0].site == "S2");
  CHECK(Units(d.parts[0]) == 6);
  CHECK(d.parts[1].site == "S3");
  CHECK(Units(d.parts[1]) == 4);
  CHECK(d.unrouted == 0);
  CHECK(d.note.empty());
  INFO(d.parts[0].reason);
  CHECK(absl::StrContains(d.parts[0].reason, "split 1 of 2: S2 covers 6 of 10 remaining units"));
  CHECK(absl::StrContains(d.parts[1].reason, "split 2 of 2: S3 covers 4 of 4 remaining units"));

  // Ties go to the better-ranked site: S1 and S3 both cover 4, S3 ranks first by region.
  r.sites[0].rights["A"] = OnHand(4);
  r.sites[1].rights["A"] = OnHand(6);
  r.ship_to_region = "west";
  r.sites[2].region = "west";
  d = Route(r);
  REQUIRE(d.parts.size() == 2);
  CHECK(d.parts[0].site == "S2");
  CHECK(d.parts[1].site == "S3");
}

TEST_CASE("split: a shared SKU and several lines are covered per line", "[routing]") {
  Request r = Order({{1, "A", 3}, {2, "B", 2}, {3, "A", 2}}, {"S1", "S2"}, true, "",
                    {Site("S1", "", true, {{"A", OnHand(4)}, {"B", OnHand(2)}}),
                     Site("S2", "", true, {{"A", OnHand(10)}})});
  Decision d = Route(r);
  // S1 covers 6 (A 3 + B 2 + A 1), S2 covers 5 (A only): S1 first, then S2 the last A.
  REQUIRE(d.parts.size() == 2);
  CHECK(d.parts[0].site == "S1");
  CHECK(Units(d.parts[0]) == 6);
  CHECK(d.parts[1].site == "S2");
  REQUIRE(d.parts[1].lines.size() == 1);
  CHECK(d.parts[1].lines[0].line_no == 3);
  CHECK(d.parts[1].lines[0].quantity == 1);
}

TEST_CASE("split: what no site has stays open with a note", "[routing]") {
  Request r =
      Order({{1, "A", 10}}, {"S1", "S2"}, true, "",
            {Site("S1", "", true, {{"A", OnHand(3)}}), Site("S2", "", true, {{"A", OnHand(2)}})});
  Decision d = Route(r);
  REQUIRE(d.parts.size() == 2);
  CHECK(d.routed == 5);
  CHECK(d.unrouted == 5);
  INFO(d.note);
  CHECK(absl::StrContains(d.note, "5 of 10 units backordered"));
  CHECK(absl::StrContains(d.note, "more of A"));

  // Nothing anywhere.
  for (auto& s : r.sites) s.rights.clear();
  d = Route(r);
  CHECK(d.parts.empty());
  CHECK(d.unrouted == 10);
  CHECK(absl::StrContains(d.note, "no candidate site has A available"));
}

TEST_CASE("no split allowed: nothing is released and the note says why", "[routing]") {
  Request r =
      Order({{1, "A", 3}, {2, "B", 2}}, {"S1", "S2"}, false, "",
            {Site("S1", "", true, {{"A", OnHand(5)}}), Site("S2", "", true, {{"B", OnHand(5)}})});
  Decision d = Route(r);
  CHECK(d.parts.empty());
  CHECK(d.unrouted == 5);
  INFO(d.note);
  CHECK(absl::StrContains(d.note, "no single site can fill all lines; channel web forbids splits"));
  CHECK(absl::StrContains(d.note, "best: S1 has 3 of 5 units"));

  // Two lines of one SKU need the sum at one site.
  r = Order({{1, "A", 3}, {2, "A", 3}}, {"S1"}, false, "",
            {Site("S1", "", true, {{"A", OnHand(5)}})});
  d = Route(r);
  CHECK(d.parts.empty());
}

TEST_CASE("excluded sites (they shorted this order) are never chosen", "[routing]") {
  Request r =
      Order({{1, "A", 2}}, {"S1", "S2"}, false, "",
            {Site("S1", "", true, {{"A", OnHand(5)}}), Site("S2", "", true, {{"A", OnHand(5)}})});
  r.excluded = {"S1"};
  Decision d = Route(r);
  REQUIRE(d.parts.size() == 1);
  CHECK(d.parts[0].site == "S2");

  r.excluded = {"S1", "S2"};
  d = Route(r);
  CHECK(d.parts.empty());
  CHECK(absl::StrContains(d.note, "shorted this order: S1, S2"));
}

TEST_CASE("lines with nothing open are ignored; ordinals", "[routing]") {
  Request r =
      Order({{1, "A", 0}, {2, "B", 1}}, {}, false, "", {Site("S1", "", true, {{"B", OnHand(1)}})});
  Decision d = Route(r);
  REQUIRE(d.parts.size() == 1);
  REQUIRE(d.parts[0].lines.size() == 1);
  CHECK(d.parts[0].lines[0].line_no == 2);
  CHECK(Route(Order({}, {}, true, "", {})).parts.empty());
  CHECK(Ordinal(1) == "1st");
  CHECK(Ordinal(2) == "2nd");
  CHECK(Ordinal(3) == "3rd");
  CHECK(Ordinal(4) == "4th");
  CHECK(Ordinal(11) == "11th");
  CHECK(Ordinal(12) == "12th");
  CHECK(Ordinal(13) == "13th");
  CHECK(Ordinal(21) == "21st");
  CHECK(Ordinal(112) == "112th");
}
