// Routing policy: which site(s) get an order's open units. A pure function over a snapshot (no
// storage, no clock, no I/O), so it is unit-tested directly (tests/unit/routing_test.cc) and the
// order service (central/orders.*) calls it inside its write transaction.
//
// Availability(site, sku) = central's selling rights there - central's commitments there
//                           (docs/SYNC.md "Selling rights": rights the node granted to central
//                           and central has not yet allocated to a released fulfilment). The
//                           node already kept its safety stock and local share out of them, so
//                           routing never looks at the stock mirror.
//
// Policy, in this order:
//  1. candidates = the channel's site priority (empty = every site, by id), minus excluded sites
//     (those that already shorted this order) and sites unknown to the snapshot;
//  2. rank candidates by (online first, region == ship-to region first, channel priority
//     position);
//  3. if one site can fill every open line completely, the best-ranked such site gets everything
//     (one part). Offline sites are candidates too: they rank after the online ones, so they are
//     chosen only when no online site can fill (the feed delivers when they reconnect);
//  4. else, if the channel allows splits: greedy fewest splits - repeatedly take the ranked site
//     covering the most remaining units (ties by rank) until everything is covered or no site
//     has anything left; the rest stays open (backordered) and `note` says why;
//  5. else nothing is routed and `note` says why (e.g. "no single site can fill all lines;
//     channel web forbids splits").
// Every part carries `reason`, a sentence naming the facts that chose the site.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace depot::central::routing {

// Central's selling rights for one SKU at one site (the `rights` row of central's store).
struct SiteRights {
  int64_t central_rights = 0;     // granted by the node, not released, consumed or written off
  int64_t central_committed = 0;  // allocated to released fulfilments not yet shipped or returned
};

// central_rights - central_committed (negative only after a rights_conflict; routing treats it
// as 0).
int64_t Available(const SiteRights& rights);

struct SiteSnapshot {
  std::string id;
  std::string region;
  bool online = false;                       // an open, welcomed sync stream
  std::map<std::string, SiteRights> rights;  // by SKU; absent = no rights there
};

struct OpenLine {
  uint32_t line_no = 0;
  std::string sku;
  int64_t open = 0;  // units still to route (> 0; lines with 0 are ignored)
};

struct Request {
  std::vector<OpenLine> lines;
  std::string channel;                     // for the sentences
  std::vector<std::string> site_priority;  // empty = every site in `sites`, by id
  bool allow_split = false;
  std::string ship_to_region;
  std::vector<SiteSnapshot> sites;  // every known site
  std::set<std::string> excluded;
};

struct PartLine {
  uint32_t line_no = 0;
  std::string sku;
  int64_t quantity = 0;
};

// One fulfilment to release.
struct Part {
  std::string site;
  std::vector<PartLine> lines;  // in order-line order, quantity > 0
  std::string reason;
};

struct Decision {
  std::vector<Part> parts;  // empty: nothing can be released now
  int64_t routed = 0;       // units in parts
  int64_t unrouted = 0;     // open units left open
  std::string note;         // why units stay open; empty when everything was routed
};

Decision Route(const Request& request);

// "1st", "2nd", "3rd", "4th", ..., "11th", "12th", "13th", "21st", ...
std::string Ordinal(int n);

}  // namespace depot::central::routing
