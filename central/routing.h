// Routing policy: which site(s) get an order's open units. A pure function over a snapshot (no
// storage, no clock, no I/O), so it is unit-tested directly (tests/unit/routing_test.cc) and the
// order service (central/orders.*) calls it inside its write transaction.
//
// Availability(site, sku) = mirror on hand (all lots) - mirror reserved - the SKU's safety stock
//                           - units in this site's fulfilments still RELEASED (sent, but the node
//                             has not reserved them yet).
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

// What central knows about one SKU at one site.
struct StockFacts {
  int64_t on_hand = 0;   // mirror, summed over lots
  int64_t reserved = 0;  // mirror
  int64_t released = 0;  // units in the site's fulfilments still FULFILMENT_RELEASED
};

// on_hand - reserved - safety_stock - released (may be negative).
int64_t Available(const StockFacts& facts, int64_t safety_stock);

struct SiteSnapshot {
  std::string id;
  std::string region;
  bool online = false;                      // an open, welcomed sync stream
  std::map<std::string, StockFacts> stock;  // by SKU; absent = nothing there
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
  std::map<std::string, int64_t> safety_stock;  // by SKU; absent = 0
  std::vector<SiteSnapshot> sites;              // every known site
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
