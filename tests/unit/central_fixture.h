// Central in-process against a real SQLite store in a temp dir: sites S1 (warehouse, east), S2
// (store, west), S3 (warehouse, north); SKUs A, B, C (safety stock 2); channels web (S1|S2,
// splits), market (S2|S1, no splits, review above 1000.00) and any (every site, splits); kit KIT =
// 2 A + 1 B. Node events go through ApplyEvents (the path the sync engine uses); the order service
// runs without its background thread (tests run the re-routing passes).
// Shared by the order and selling-rights tests.
#pragma once

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "central/central_rights.h"
#include "central/central_sync.h"
#include "central/grpc_service.h"
#include "central/orders.h"
#include "central/sqlite_store.h"
#include "common/clock.h"

namespace depot::testing {

inline constexpr int64_t kSecond = 1'000'000;  // ManualClock counts microseconds

struct CentralWorld {
  std::string dir;
  ManualClock clock;
  std::unique_ptr<central::CentralStore> store;
  std::unique_ptr<central::CentralSyncEngine> engine;
  std::unique_ptr<central::CentralService> central;
  std::unique_ptr<central::OrderService> orders;
  std::unique_ptr<central::RightsService> rights;
  std::mutex online_mu;
  std::set<std::string> online = {"S1", "S2", "S3"};
  int feed_changes = 0;
  std::map<std::string, uint64_t> seq;
  std::map<std::pair<std::string, std::string>, uint64_t> grant_seq;

  CentralWorld() {
    char tmpl[] = "/tmp/depot-central-XXXXXX";
    dir = mkdtemp(tmpl);
    auto s = central::OpenSqliteStore({.path = dir + "/central.db", .durable = false});
    REQUIRE(s.ok());
    store = std::move(*s);
    REQUIRE(store
                ->Import("sites",
                         "id,name,kind,region\nS1,East,warehouse,east\nS2,West,store,west\n"
                         "S3,North,warehouse,north\n")
                .ok());
    REQUIRE(store->Import("skus", "code,safety_stock\nA,0\nB,0\nC,2\n").ok());
    REQUIRE(store
                ->Import("channels",
                         "id,name,site_priority,allow_split,review_above_cents\n"
                         "web,Web shop,S1|S2,true,0\n"
                         "market,Marketplace,S2|S1,false,100000\n"
                         "any,Everywhere,,true,0\n")
                .ok());
    REQUIRE(store->Import("kits", "kit_sku,component_sku,quantity\nKIT,A,2\nKIT,B,1\n").ok());
    for (const char* site : {"S1", "S2", "S3"}) {
      REQUIRE(store->BeginEpoch(site, 7, UINT64_MAX).ok());
    }
    engine = std::make_unique<central::CentralSyncEngine>(store.get(), &clock);
    central = std::make_unique<central::CentralService>(store.get(), engine.get(), &clock);
    central::OrderServiceOptions options;
    options.reroute_every_ms = 0;  // the tests run the passes
    orders = std::make_unique<central::OrderService>(
        store.get(), &clock,
        [this] {
          std::lock_guard<std::mutex> lock(online_mu);
          return online;
        },
        [this] { ++feed_changes; }, options);
    central->AttachOrders(orders.get());
    rights =
        std::make_unique<central::RightsService>(store.get(), &clock, [this] { ++feed_changes; });
    central->AttachRights(rights.get());
  }
  ~CentralWorld() {
    rights.reset();
    orders.reset();
    central.reset();
    engine.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }

  int64_t NowMs() const { return clock.NowMicros() / 1000; }
  uint64_t Hlc() const { return HybridLogicalClock::Pack(NowMs(), 0); }

  void Apply(const std::string& site, std::vector<v1::Event> events) {
    std::vector<const v1::Event*> ptrs;
    for (auto& e : events) {
      e.set_node_id(site);
      e.set_epoch(7);
      e.set_seq(++seq[site]);
      if (e.hlc() == 0) e.set_hlc(Hlc());
      ptrs.push_back(&e);
    }
    auto mark = store->ApplyEvents(site, 7, ptrs);
    INFO(mark.status().ToString());
    REQUIRE(mark.ok());
    CHECK(*mark == seq[site]);
  }
  void Apply(const std::string& site, v1::Event event) {
    std::vector<v1::Event> v;
    v.push_back(std::move(event));
    Apply(site, std::move(v));
  }
  static v1::Event Movement(v1::MovementType type, const std::string& sku, int64_t qty,
                            const std::string& ref = "") {
    v1::Event e;
    auto* m = e.mutable_movement();
    m->set_type(type);
    m->set_sku(sku);
    m->set_bin("B1");
    m->set_quantity(qty);
    m->set_reference(ref);
    return e;
  }
  // A node's grant of selling rights to central (as if its policy gave central these units), with
  // the next grant seq of (site, sku).
  v1::Event Grant(const std::string& site, const std::string& sku, int64_t units,
                  const std::string& reason = "policy") {
    v1::Event e;
    auto* g = e.mutable_rights()->mutable_grant();
    g->set_sku(sku);
    g->set_units(units);
    g->set_seq(units > 0 || reason != "answer" ? ++grant_seq[{site, sku}] : 0);
    g->set_reason(reason);
    e.mutable_rights()->mutable_book()->set_sku(sku);
    return e;
  }
  // Goods in at a node that grants them all to central (a warehouse's default policy): the receipt
  // and the grant, two events.
  void Receive(const std::string& site, const std::string& sku, int64_t qty) {
    Apply(site, {Movement(v1::RECEIPT, sku, qty), Grant(site, sku, qty)});
  }
  void Send(const std::string& site, const v1::FulfilmentUpdate& u) {
    v1::Event e;
    *e.mutable_fulfilment() = u;
    e.mutable_fulfilment()->set_hlc(Hlc());
    Apply(site, {e});
  }
  std::vector<v1::FeedEntry> Feed(const std::string& site) {
    auto f = store->ReadFeed(site, 0, 100000);
    REQUIRE(f.ok());
    std::vector<v1::FeedEntry> out;
    for (auto& e : *f) {
      if (e.has_release() || e.has_cancel()) out.push_back(e);
    }
    return out;
  }
  v1::Order Capture(const v1::CaptureOrderRequest& r) {
    auto c = orders->Capture(r, "tester");
    INFO(c.status().ToString());
    REQUIRE(c.ok());
    CHECK_FALSE(c->replayed());
    return c->order();
  }
  v1::Order Get(const std::string& id) {
    auto o = orders->Get(id);
    REQUIRE(o.ok());
    return *o;
  }
  std::vector<v1::ExceptionEntry> Exceptions(const std::string& kind, const std::string& order_id) {
    v1::ListExceptionsRequest r;
    r.set_kind(kind);
    r.set_order_id(order_id);
    auto l = central->ListExceptions(r);
    REQUIRE(l.ok());
    return {l->exceptions().begin(), l->exceptions().end()};
  }
  int OrderCount() {
    auto l = orders->List({});
    REQUIRE(l.ok());
    return l->orders_size();
  }
};

inline v1::CaptureOrderRequest Req(const std::string& channel, const std::string& external_id,
                                   std::vector<std::tuple<std::string, int64_t, int64_t>> lines,
                                   const std::string& region = "east") {
  v1::CaptureOrderRequest r;
  r.set_channel(channel);
  r.set_external_id(external_id);
  r.set_service_level("standard");
  auto* a = r.mutable_ship_to();
  a->set_name("Ada");
  a->set_line1("1 Main St");
  a->set_city("Springfield");
  a->set_postal_code("12345");
  a->set_country("US");
  a->set_region(region);
  for (auto& [sku, qty, price] : lines) {
    auto* l = r.add_lines();
    l->set_sku(sku);
    l->set_quantity(qty);
    l->set_unit_price_cents(price);
  }
  return r;
}

// The node's report of a fulfilment: every line as released, filled in for the status; callers
// adjust it.
inline v1::FulfilmentUpdate Upd(const v1::Order& o, int f, v1::FulfilmentStatus status,
                                const std::string& change) {
  v1::FulfilmentUpdate u;
  u.set_fulfilment_id(o.fulfilments(f).fulfilment_id());
  u.set_order_id(o.order_id());
  u.set_status(status);
  u.set_change(change);
  const bool live = status != v1::FULFILMENT_CANCELLED;
  for (const auto& l : o.fulfilments(f).lines()) {
    auto* x = u.add_lines();
    x->set_line_no(l.line_no());
    x->set_sku(l.sku());
    x->set_quantity(l.quantity());
    if (live && status >= v1::FULFILMENT_ACCEPTED) x->set_reserved(l.quantity());
    if (live && status >= v1::FULFILMENT_PICKED) x->set_picked(l.quantity());
    if (status == v1::FULFILMENT_SHIPPED) x->set_shipped(l.quantity());
  }
  return u;
}

inline std::vector<std::string> Events(const v1::Order& o) {
  std::vector<std::string> out;
  for (const auto& h : o.history()) out.push_back(h.event());
  return out;
}
inline bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace depot::testing
