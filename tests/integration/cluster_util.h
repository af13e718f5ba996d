// Helpers for integration tests that run a cluster of real processes (depot-central and
// depot-nodes) and drive them over HTTP and depotctl. Header-only (inline): used by several test
// files of the one integration_tests binary. Main-thread helpers REQUIRE on failure.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <google/protobuf/struct.pb.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/http_client.h"
#include "common/json.h"
#include "depot/v1/central.pb.h"
#include "depot/v1/node_api.pb.h"
#include "depot/v1/orders.pb.h"
#include "tests/integration/integration_util.h"
#include "tests/support/central_support.h"
#include "tests/support/test_support.h"

namespace depot::testing {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr auto kConvergeTimeout = std::chrono::seconds(20);
constexpr const char* kOperator = "tester";
inline const std::vector<std::string> kSkus = {sample::kPlain, sample::kLot, sample::kSerial,
                                        sample::kNegative, sample::kSafety};


// Polls f every 50 ms until it returns true or timeout passes; returns f's last answer.
inline bool Eventually(const std::function<bool()>& f, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    if (f()) return true;
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(50));
  }
}

// A curl client for one server. Not thread-safe (one per thread).
class Http {
 public:
  explicit Http(std::string base) : base_(std::move(base)), client_(http::NewCurlClient(milliseconds(10000))) {}

  absl::StatusOr<http::ClientResponse> TrySend(std::string_view method, const std::string& path,
                                               const std::string& body = "") {
    return client_->Send(method, base_ + path, body, {{"X-Depot-Operator", kOperator}});
  }
  // The transport must work (main thread only: it REQUIREs).
  http::ClientResponse Send(std::string_view method, const std::string& path,
                            const std::string& body = "") {
    auto r = TrySend(method, path, body);
    INFO(method << " " << base_ << path << ": " << r.status().ToString());
    REQUIRE(r.ok());
    return *r;
  }
  template <typename M>
  M GetOk(const std::string& path) {
    auto r = Send("GET", path);
    INFO("GET " << base_ << path << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    return Parse<M>(r.body);
  }
  void WriteOk(const std::string& path, const google::protobuf::Message& request) {
    auto r = Send("POST", path, MessageToJson(request));
    INFO("POST " << base_ << path << " " << MessageToJson(request) << " -> " << r.status << " "
                 << r.body);
    REQUIRE(r.status == 201);
  }
  const std::string& base() const { return base_; }

 private:
  std::string base_;
  std::unique_ptr<http::Client> client_;
};

inline v1::ReceiptRequest Receipt(const std::string& sku, const std::string& bin, int64_t qty,
                           const std::string& request_id = "") {
  v1::ReceiptRequest r;
  r.set_sku(sku);
  r.set_bin(bin);
  r.set_quantity(qty);
  r.set_request_id(request_id);
  return r;
}
inline v1::ReserveRequest Reserve(const std::string& sku, const std::string& ref, int64_t qty) {
  v1::ReserveRequest r;
  r.set_sku(sku);
  r.set_reference(ref);
  r.set_quantity(qty);
  return r;
}

// Runs depotctl against central and REQUIREs exit 0; returns stdout.
inline std::string CtlCentral(const CentralProcess& central, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kCtlBin, "--operator", kOperator, "--central", central.url()};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessResult r = RunProcess(argv);
  INFO("depotctl " << absl::StrJoin(args, " ") << " -> " << r.exit_code << "\nstdout: " << r.out
                   << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  return r.out;
}

// The node's GET /v1/sync answer (a plain JSON object).
inline google::protobuf::Struct SyncState(Http& node) {
  return Parse<google::protobuf::Struct>(node.Send("GET", "/v1/sync").body);
}
inline std::string Field(const google::protobuf::Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  if (it == s.fields().end()) return "";
  if (it->second.has_bool_value()) return it->second.bool_value() ? "true" : "false";
  return it->second.string_value();
}

// Imports sites (one per node id), the sample SKUs and three bins per site at central through
// depotctl, from CSV files in dir.
inline void ImportMasterData(const CentralProcess& central, const std::string& dir,
                      const std::vector<std::string>& sites) {
  std::string sites_csv = "id,name,kind,region\n";
  std::string bins_csv = "site,code,zone,walk_order\n";
  for (const auto& s : sites) {
    absl::StrAppend(&sites_csv, s, ",Site ", s, ",store,north\n");
    absl::StrAppend(&bins_csv, s, ",", sample::kBinA1, ",A,10\n", s, ",", sample::kBinA2,
                    ",A,20\n", s, ",", sample::kBinB1, ",B,30\n");
  }
  REQUIRE(WriteFile(dir + "/sites.csv", sites_csv).ok());
  REQUIRE(WriteFile(dir + "/skus.csv", sample::SkusCsv()).ok());
  REQUIRE(WriteFile(dir + "/bins.csv", bins_csv).ok());
  auto rows = [](const std::string& out) { return Parse<v1::ImportResult>(out).rows(); };
  CHECK(rows(CtlCentral(central, {"central", "import", "sites", dir + "/sites.csv"})) ==
        static_cast<int64_t>(sites.size()));
  CHECK(rows(CtlCentral(central, {"central", "import", "skus", dir + "/skus.csv"})) == 5);
  CHECK(rows(CtlCentral(central, {"central", "import", "bins", dir + "/bins.csv"})) ==
        static_cast<int64_t>(3 * sites.size()));
}

inline std::unique_ptr<CentralProcess> StartCentral(const std::string& dir) {
  auto central = std::make_unique<CentralProcess>(dir + "/central.db");
  absl::Status s = central->Start();
  INFO(s.ToString());
  REQUIRE(s.ok());
  return central;
}

// A node whose sync client dials `central_address` (central's gRPC address, or a proxy's).
inline std::unique_ptr<NodeProcess> StartNode(const std::string& dir, const std::string& id,
                                              const std::string& central_address,
                                              std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--central", central_address};
  args.insert(args.end(), extra.begin(), extra.end());
  auto node = std::make_unique<NodeProcess>(dir + "/" + id + ".db", id, std::move(args));
  absl::Status s = node->Start();
  INFO(s.ToString());
  REQUIRE(s.ok());
  return node;
}
inline std::unique_ptr<NodeProcess> StartNode(const std::string& dir, const std::string& id,
                                              const CentralProcess& central,
                                              std::vector<std::string> extra = {}) {
  return StartNode(dir, id, central.grpc_address(), std::move(extra));
}

// Waits until the node has central's master data: the five sample SKUs and its three bins.
inline void WaitForMasterData(Http& node) {
  bool ok = Eventually(
      [&] {
        auto skus = node.GetOk<v1::SkusResponse>("/v1/skus?limit=1000");
        auto bins = node.GetOk<v1::BinsResponse>("/v1/bins");
        return skus.skus_size() == 5 && bins.bins_size() == 3;
      },
      kConvergeTimeout);
  INFO("node " << node.base() << " skus: " << node.Send("GET", "/v1/skus").body);
  REQUIRE(ok);
}

// Compares central's mirror of `site` with the node's own ATP for every sample SKU and checks
// the node has nothing left to send. Returns "" when they agree, else what differs.
inline std::string Difference(Http& central, Http& node, const std::string& site) {
  std::string diff;
  for (const auto& sku : kSkus) {
    auto atp = node.GetOk<v1::AtpResponse>("/v1/atp/" + sku);
    REQUIRE(atp.items_size() == 1);
    const v1::Atp& a = atp.items(0);
    auto stock =
        central.GetOk<v1::NetworkStockResponse>(absl::StrCat("/v1/stock?sku=", sku, "&site=", site));
    // Central may list nothing for a SKU the site never moved: that is zero on hand and reserved.
    v1::SiteSkuStock mirror;
    mirror.set_available(a.on_hand() == 0 && a.reserved() == 0 ? a.available() : 0);
    for (const auto& item : stock.items()) {
      if (item.site() == site && item.sku() == sku) mirror = item;
    }
    if (mirror.on_hand() != a.on_hand() || mirror.reserved() != a.reserved() ||
        mirror.available() != a.available()) {
      absl::StrAppend(&diff, site, "/", sku, ": node on_hand ", a.on_hand(), " reserved ",
                      a.reserved(), " available ", a.available(), " vs central on_hand ",
                      mirror.on_hand(), " reserved ", mirror.reserved(), " available ",
                      mirror.available(), "; ");
    }
  }
  auto sync = SyncState(node);
  if (Field(sync, "outbox_depth") != "0" || Field(sync, "connected") != "true") {
    absl::StrAppend(&diff, site, " sync: ", MessageToJson(sync));
  }
  return diff;
}

inline void RequireConverged(Http& central, Http& node, const std::string& site) {
  std::string diff;
  bool ok = Eventually(
      [&] {
        diff = Difference(central, node, site);
        return diff.empty();
      },
      kConvergeTimeout);
  INFO("not converged: " << diff);
  REQUIRE(ok);
}

inline int64_t NodeOnHand(Http& node, const std::string& sku) {
  auto atp = node.GetOk<v1::AtpResponse>("/v1/atp/" + sku);
  REQUIRE(atp.items_size() == 1);
  return atp.items(0).on_hand();
}

inline int64_t CentralOnHand(Http& central, const std::string& sku, const std::string& site) {
  auto stock = central.GetOk<v1::NetworkStockResponse>(
      absl::StrCat("/v1/stock?sku=", sku, "&site=", site));
  int64_t n = 0;
  for (const auto& item : stock.items()) {
    if (item.site() == site && item.sku() == sku) n += item.on_hand();
  }
  return n;
}

inline v1::NodeInfo FindNode(const v1::ListNodesResponse& nodes, const std::string& id) {
  for (const auto& n : nodes.nodes()) {
    if (n.node_id() == id) return n;
  }
  FAIL("central does not list node " << id << ": " << MessageToJson(nodes));
  return {};
}

// ---- Order flow (captured at central, released to a node, shipped there) -------------------

inline v1::CaptureOrderRequest NewOrder(const std::string& channel, const std::string& external_id,
                                        const std::string& region,
                                        const std::vector<std::pair<std::string, int64_t>>& lines) {
  v1::CaptureOrderRequest o;
  o.set_channel(channel);
  o.set_external_id(external_id);
  o.set_service_level("standard");
  auto* a = o.mutable_ship_to();
  a->set_name("Ada Lovelace");
  a->set_line1("1 Main Street");
  a->set_city("Springfield");
  a->set_postal_code("12345");
  a->set_country("US");
  a->set_region(region);
  for (const auto& [sku, qty] : lines) {
    auto* l = o.add_lines();
    l->set_sku(sku);
    l->set_quantity(qty);
    l->set_unit_price_cents(1000);
  }
  return o;
}

// POSTs and REQUIREs a 2xx answer; returns the body.
inline std::string PostOk(Http& h, const std::string& path, const google::protobuf::Message& m) {
  auto r = h.Send("POST", path, MessageToJson(m));
  INFO("POST " << h.base() << path << " " << MessageToJson(m) << " -> " << r.status << " "
               << r.body);
  REQUIRE(r.status / 100 == 2);
  return r.body;
}
// POSTs and REQUIREs the given status; returns the body.
inline std::string PostStatus(Http& h, const std::string& path,
                              const google::protobuf::Message& m, int status) {
  auto r = h.Send("POST", path, MessageToJson(m));
  INFO("POST " << h.base() << path << " " << MessageToJson(m) << " -> " << r.status << " "
               << r.body);
  REQUIRE(r.status == status);
  return r.body;
}

inline v1::Order Capture(Http& central, const v1::CaptureOrderRequest& o) {
  return Parse<v1::CaptureOrderResponse>(PostOk(central, "/v1/orders", o)).order();
}
inline v1::Order GetOrder(Http& central, const std::string& id) {
  return central.GetOk<v1::Order>("/v1/orders/" + id);
}
// Waits until central shows the order in `status`; returns it.
inline v1::Order WaitOrder(Http& central, const std::string& id, v1::OrderStatus status) {
  v1::Order o;
  bool ok = Eventually(
      [&] {
        auto r = central.Send("GET", "/v1/orders/" + id);
        if (r.status == 404) return false;  // a node's local order may not have arrived yet
        INFO(r.body);
        REQUIRE(r.status == 200);
        o = Parse<v1::Order>(r.body);
        return o.status() == status;
      },
      kConvergeTimeout);
  INFO("waiting for " << v1::OrderStatus_Name(status) << ": " << MessageToJson(o));
  REQUIRE(ok);
  return o;
}
// Waits until the node lists the fulfilment in `status`; returns it.
inline v1::NodeFulfilment WaitFulfilment(Http& node, const std::string& id,
                                         v1::FulfilmentStatus status) {
  v1::NodeFulfilment f;
  std::string last;
  bool ok = Eventually(
      [&] {
        auto r = node.Send("GET", "/v1/fulfilments/" + id);
        last = r.body;
        if (r.status != 200) return false;
        f = Parse<v1::NodeFulfilment>(r.body);
        return f.status() == status;
      },
      kConvergeTimeout);
  INFO("waiting at " << node.base() << " for " << id << " to be "
                     << v1::FulfilmentStatus_Name(status) << ": " << last);
  REQUIRE(ok);
  return f;
}

// Picks every task of the fulfilment's wave for it, scanning the item by `item_of(sku)`.
inline void PickAll(Http& node, const v1::Wave& wave, const std::string& fulfilment_id,
                    const std::function<std::string(const std::string&)>& item_of) {
  for (const auto& t : wave.tasks()) {
    if (t.fulfilment_id() != fulfilment_id) continue;
    v1::PickRequest p;
    p.set_fulfilment_id(fulfilment_id);
    p.set_bin(t.bin());
    p.set_item(item_of(t.sku()));
    p.set_lot(t.lot());
    p.set_quantity(t.quantity());
    PostOk(node, "/v1/picks", p);
  }
}

inline v1::Wave MakeWave(Http& node, int max_orders = 50) {
  v1::CreateWaveRequest w;
  w.set_max_orders(max_orders);
  return Parse<v1::Wave>(PostOk(node, "/v1/waves", w));
}

// Packs into one package and ships; in one step (ShipRequest.packages, a pack-and-ship station)
// when `one_step`.
inline void PackAndShip(Http& node, const std::string& fulfilment_id, const std::string& tracking,
                        bool one_step = false) {
  v1::PackRequest pack;
  pack.set_fulfilment_id(fulfilment_id);
  auto* p = pack.add_packages();
  p->set_weight_g(1200);
  p->set_length_mm(300);
  p->set_width_mm(200);
  p->set_height_mm(100);
  v1::ShipRequest ship;
  if (one_step) {
    *ship.mutable_packages() = pack.packages();
  } else {
    PostOk(node, "/v1/packs", pack);
  }
  ship.set_fulfilment_id(fulfilment_id);
  ship.set_carrier("UPS");
  ship.set_tracking(tracking);
  PostOk(node, "/v1/shipments", ship);
}

// Runs depotctl against a node and returns the result (exit code checked by the caller).
inline ProcessResult CtlNode(const NodeProcess& node, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kCtlBin, "--operator", kOperator, "--node", node.url()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}

inline bool HasException(Http& central, const std::string& kind, const std::string& order_id) {
  auto list = central.GetOk<v1::ListExceptionsResponse>(
      absl::StrCat("/v1/exceptions?kind=", kind, "&order_id=", order_id));
  return list.exceptions_size() > 0;
}

// A depot-central with master data (imported by `import`) and nodes S1 and S2 connected to it,
// each holding central's master data (the five sample SKUs and three bins) when constructed.
// Master data for two sites S1 and S2 at central: `sites_rows` (CSV rows for
// id,name,kind,region), the sample SKUs, bins A1, A2 and B1 at each site, and `channel_rows`
// (CSV rows for id,name,site_priority,allow_split,review_above_cents).
inline void ImportTwoSites(const CentralProcess& central, const std::string& dir,
                           const std::string& sites_rows, const std::string& channel_rows) {
  std::string bins = "site,code,zone,walk_order\n";
  for (const char* s : {"S1", "S2"}) {
    absl::StrAppend(&bins, s, ",", sample::kBinA1, ",A,10\n", s, ",", sample::kBinA2, ",A,20\n",
                    s, ",", sample::kBinB1, ",B,30\n");
  }
  REQUIRE(WriteFile(dir + "/sites.csv", "id,name,kind,region\n" + sites_rows).ok());
  REQUIRE(WriteFile(dir + "/skus.csv", sample::SkusCsv()).ok());
  REQUIRE(WriteFile(dir + "/bins.csv", bins).ok());
  REQUIRE(WriteFile(dir + "/channels.csv",
                    "id,name,site_priority,allow_split,review_above_cents\n" + channel_rows)
              .ok());
  for (const char* kind : {"sites", "skus", "bins", "channels"}) {
    CtlCentral(central, {"central", "import", kind, absl::StrCat(dir, "/", kind, ".csv")});
  }
}

struct Cluster {
  std::string dir;
  std::unique_ptr<CentralProcess> central;
  std::unique_ptr<NodeProcess> s1, s2;

  Cluster(const std::string& prefix,
          const std::function<void(const CentralProcess&, const std::string& dir)>& import)
      : dir(TestDir(prefix)) {
    central = StartCentral(dir);
    import(*central, dir);
    s1 = StartNode(dir, "S1", *central);
    s2 = StartNode(dir, "S2", *central);
    Http h1(s1->url()), h2(s2->url());
    WaitForMasterData(h1);
    WaitForMasterData(h2);
  }
};

}  // namespace depot::testing
