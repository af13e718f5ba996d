// Integration tests of node <-> central sync with real processes: a depot-central and depot-node
// processes on ephemeral loopback ports, driven over HTTP (libcurl) and through depotctl.
// Master data goes down central's feed, stock events go up the nodes' streams, and central's
// mirror must converge with every node's own stock through central crashes, node crashes and a
// restore from backup. Every wait polls with a deadline; nothing sleeps a fixed time to "let
// things settle".
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>
#include <google/protobuf/struct.pb.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/http_client.h"
#include "common/json.h"
#include "depot/v1/central.grpc.pb.h"
#include "depot/v1/central.pb.h"
#include "depot/v1/sync.grpc.pb.h"
#include "depot/v1/node_api.pb.h"
#include "tests/integration/cluster_util.h"
#include "tests/support/central_support.h"
#include "tests/integration/integration_util.h"
#include "tests/support/test_support.h"

namespace depot::testing {
namespace {

// ---------------------------------------------------------------------------------------------

TEST_CASE("central feeds master data to two nodes and mirrors their stock",
          "[integration][central]") {
  Cluster cl("depot-central-basic-", [](const CentralProcess& c, const std::string& d) {
    ImportMasterData(c, d, {"S1", "S2"});
  });
  const std::string& dir = cl.dir;
  auto& central = cl.central;
  auto& n1 = cl.s1;
  auto& n2 = cl.s2;
  Http c(central->url()), h1(n1->url()), h2(n2->url());
  for (Http* n : {&h1, &h2}) {
    for (const char* kind : {"skus", "bins"}) {
      auto r = n->Send("POST", absl::StrCat("/v1/import/", kind),
                       kind == std::string("skus") ? sample::SkusCsv() : sample::BinsCsv());
      INFO(r.body);
      CHECK(r.status == 409);  // master data is central's
    }
  }

  h1.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA1, 10));
  h1.WriteOk("/v1/receipts", Receipt(sample::kSafety, sample::kBinA2, 20));
  h1.WriteOk("/v1/reservations", Reserve(sample::kPlain, "order-1", 3));
  h2.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA1, 4));
  h2.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinB1, 6));
  h2.WriteOk("/v1/reservations", Reserve(sample::kPlain, "order-2", 1));
  {
    v1::ReceiptRequest milk = Receipt(sample::kLot, sample::kBinA1, 8);
    milk.set_lot("L1");
    milk.set_expiry("2090-01-31");
    h2.WriteOk("/v1/receipts", milk);
  }
  RequireConverged(c, h1, "S1");
  RequireConverged(c, h2, "S2");

  // By SKU across sites.
  auto widget = Parse<v1::NetworkStockResponse>(
      CtlCentral(*central, {"central", "stock", "--sku", sample::kPlain}));
  std::map<std::string, v1::SiteSkuStock> by_site;
  for (const auto& item : widget.items()) by_site[item.site()] = item;
  REQUIRE(by_site.size() == 2);
  CHECK(by_site["S1"].on_hand() == 10);
  CHECK(by_site["S1"].reserved() == 3);
  CHECK(by_site["S1"].available() == 7);
  CHECK(by_site["S2"].on_hand() == 10);
  CHECK(by_site["S2"].available() == 9);
  CHECK(widget.total_on_hand() == 20);
  CHECK(widget.total_available() == 16);

  // By site: S2 holds the widgets and the milk lot.
  auto s2 = c.GetOk<v1::NetworkStockResponse>("/v1/stock?site=S2");
  std::map<std::string, v1::SiteSkuStock> by_sku;
  for (const auto& item : s2.items()) by_sku[item.sku()] = item;
  CHECK(by_sku[sample::kPlain].on_hand() == 10);
  REQUIRE(by_sku[sample::kLot].lots_size() == 1);
  CHECK(by_sku[sample::kLot].lots(0).lot() == "L1");
  CHECK(by_sku[sample::kLot].lots(0).on_hand() == 8);
  auto s1 = c.GetOk<v1::NetworkStockResponse>("/v1/stock?site=S1");
  by_sku.clear();
  for (const auto& item : s1.items()) by_sku[item.sku()] = item;
  CHECK(by_sku[sample::kSafety].on_hand() == 20);
  CHECK(by_sku[sample::kSafety].safety_stock() == sample::kSafetyStock);
  CHECK(by_sku[sample::kSafety].available() == 20 - sample::kSafetyStock);

  // Both nodes connected, central's mark = the node's newest event.
  auto nodes = Parse<v1::ListNodesResponse>(CtlCentral(*central, {"central", "nodes"}));
  CHECK(nodes.nodes_size() == 2);
  // Movements plus one selling-rights grant per receipt (stores keep 30 %, grant the rest).
  const std::vector<std::tuple<std::string, Http*, uint64_t>> expect = {{"S1", &h1, 5},
                                                                        {"S2", &h2, 7}};
  for (const auto& [id, h, events] : expect) {
    v1::NodeInfo info = FindNode(nodes, id);
    auto sync = SyncState(*h);
    auto status = h->GetOk<v1::NodeStatus>("/v1/status");
    INFO(MessageToJson(info) << "\n" << MessageToJson(sync));
    CHECK(info.connected());
    CHECK(info.epoch() == status.epoch());
    CHECK(std::to_string(info.applied_seq()) == Field(sync, "last_event_seq"));
    CHECK(info.applied_seq() == events);
    CHECK(info.feed_acked() == info.feed_seq());
    CHECK(Field(sync, "acked_seq") == Field(sync, "last_event_seq"));
  }

  auto metrics = c.Send("GET", "/metrics").body;
  CHECK(MetricValue(metrics, "depot_central_nodes_connected") == 2);
  CHECK(MetricValue(metrics, "depot_central_events_applied_total") == 12);
  auto node_metrics = h1.Send("GET", "/metrics").body;
  CHECK(MetricValue(node_metrics, "depot_sync_connected") == 1);
  CHECK(MetricValue(node_metrics, "depot_sync_acked_seq") == 5);
  CHECK(MetricValue(node_metrics, "depot_sync_lag_events") == 0);

  // Master data changed while the nodes are connected reaches them through the open streams.
  REQUIRE(WriteFile(dir + "/more.csv", "code,name,safety_stock\nNEW-1,New thing,2\n").ok());
  CtlCentral(*central, {"central", "import", "skus", dir + "/more.csv"});
  for (Http* n : {&h1, &h2}) {
    bool arrived = Eventually(
        [&] {
          auto r = n->Send("GET", "/v1/skus/NEW-1");
          return r.status == 200 && Parse<v1::Sku>(r.body).safety_stock() == 2;
        },
        kConvergeTimeout);
    CHECK(arrived);
  }

  // Bad requests are refused with the JSON error body.
  CHECK(c.Send("GET", "/v1/stock").status == 400);
  CHECK(c.Send("GET", "/v1/stock?sku=NOPE").status == 404);
  CHECK(c.Send("POST", "/v1/import/widgets", "x").status == 404);
  CHECK(c.Send("POST", "/v1/import/skus", "code\n\"broken").status == 400);
  {
    auto r = http::NewCurlClient()->Send("POST", central->url() + "/v1/import/skus",
                                         sample::SkusCsv());  // no operator header
    REQUIRE(r.ok());
    CHECK(r->status == 401);
  }

  CHECK(n1->Stop() == 0);
  CHECK(n2->Stop() == 0);
  CHECK(central->Stop() == 0);
}

TEST_CASE("nodes keep working while central is down and converge after it restarts",
          "[integration][central]") {
  Cluster cl("depot-central-crash-", [](const CentralProcess& c, const std::string& d) {
    ImportMasterData(c, d, {"S1", "S2"});
  });
  auto& central = cl.central;
  auto& n1 = cl.s1;
  auto& n2 = cl.s2;
  Http c(central->url()), h1(n1->url()), h2(n2->url());
  h1.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA1, 5));
  h2.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA1, 5));
  RequireConverged(c, h1, "S1");
  RequireConverged(c, h2, "S2");

  // Receipts keep flowing at both sites; central is killed in the middle of the stream (while it
  // applies events) and stays down for a while; local writes must not wait for central.
  auto slowest = milliseconds(0);
  int writes = 0;
  const auto kill_at = SteadyClock::now() + milliseconds(400);
  const auto down_until = SteadyClock::now() + milliseconds(2900);
  while (SteadyClock::now() < down_until) {
    if (central->running() && SteadyClock::now() >= kill_at) central->Kill(SIGKILL);
    for (Http* h : {&h1, &h2}) {
      const auto t0 = SteadyClock::now();
      h->WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA2, 1));
      slowest = std::max(slowest,
                         std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t0));
      ++writes;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  INFO(writes << " writes while central was down, slowest " << slowest.count() << " ms");
  CHECK(writes > 40);
  CHECK(slowest < milliseconds(1000));
  CHECK(Eventually([&] { return Field(SyncState(h1), "connected") == "false"; },
                   milliseconds(5000)));
  CHECK(Field(SyncState(h1), "last_error") != "");

  REQUIRE(central->Start().ok());  // same db, same ports
  h1.WriteOk("/v1/receipts", Receipt(sample::kSafety, sample::kBinB1, 7));
  h2.WriteOk("/v1/reservations", Reserve(sample::kPlain, "after-restart", 2));
  RequireConverged(c, h1, "S1");
  RequireConverged(c, h2, "S2");
  CHECK(CentralOnHand(c, sample::kPlain, "S1") == NodeOnHand(h1, sample::kPlain));
  CHECK(CentralOnHand(c, sample::kPlain, "S2") == NodeOnHand(h2, sample::kPlain));
  auto nodes = c.GetOk<v1::ListNodesResponse>("/v1/nodes");
  CHECK(FindNode(nodes, "S1").connected());
  CHECK(FindNode(nodes, "S2").connected());
  // A crash of central is not an exception.
  CHECK(c.Send("GET", "/v1/exceptions").body == "{\"exceptions\":[]}");
  CHECK(n1->Stop() == 0);
  CHECK(n2->Stop() == 0);
  CHECK(central->Stop() == 0);
}

TEST_CASE("a node SIGKILLed while writing restarts and central converges, no double count",
          "[integration][central]") {
  const std::string dir = TestDir("depot-central-nodekill-");
  auto central = StartCentral(dir);
  ImportMasterData(*central, dir, {"S1"});
  auto node = StartNode(dir, "S1", *central);
  Http c(central->url()), h(node->url());
  WaitForMasterData(h);

  // A client streams one-unit receipts, each with its own request id, until the node dies.
  std::atomic<int> acked{0};
  std::atomic<int> in_flight{-1};
  std::thread writer([&, url = node->url()] {
    Http w(url);
    for (int i = 0;; ++i) {
      in_flight = i;
      auto r = w.TrySend("POST", "/v1/receipts",
                         MessageToJson(Receipt(sample::kPlain, sample::kBinA1, 1,
                                               absl::StrCat("w-", i))));
      if (!r.ok() || r->status != 201) return;
      acked = i + 1;
    }
  });
  const bool enough = Eventually([&] { return acked.load() >= 150; }, milliseconds(20000));
  node->Kill(SIGKILL);
  writer.join();
  REQUIRE(enough);

  REQUIRE(node->Start().ok());
  Http h2(node->url());
  // The unanswered request is retried with its id: applied once whether or not it committed.
  auto retry = h2.Send("POST", "/v1/receipts",
                       MessageToJson(Receipt(sample::kPlain, sample::kBinA1, 1,
                                             absl::StrCat("w-", in_flight.load()))));
  INFO(retry.body);
  REQUIRE((retry.status == 201 || retry.status == 200));
  const int64_t expected = in_flight.load() + 1;
  CHECK(NodeOnHand(h2, sample::kPlain) == expected);
  for (int i = 0; i < 20; ++i) {
    h2.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA2, 1));
  }
  RequireConverged(c, h2, "S1");
  CHECK(NodeOnHand(h2, sample::kPlain) == expected + 20);
  CHECK(CentralOnHand(c, sample::kPlain, "S1") == expected + 20);
  auto info = FindNode(c.GetOk<v1::ListNodesResponse>("/v1/nodes"), "S1");
  CHECK(std::to_string(info.applied_seq()) == Field(SyncState(h2), "last_event_seq"));
  CHECK(c.Send("GET", "/v1/exceptions").body == "{\"exceptions\":[]}");
  CHECK(node->Stop() == 0);
  CHECK(central->Stop() == 0);
}

TEST_CASE("a node restored from a backup: central reports the lost events and follows the node",
          "[integration][central]") {
  const std::string dir = TestDir("depot-central-restore-");
  auto central = StartCentral(dir);
  ImportMasterData(*central, dir, {"S1"});
  auto node = StartNode(dir, "S1", *central);
  Http c(central->url());
  {
    Http h(node->url());
    WaitForMasterData(h);
    h.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA1, 10));
    h.WriteOk("/v1/receipts", Receipt(sample::kSafety, sample::kBinA2, 20));
    h.WriteOk("/v1/reservations", Reserve(sample::kPlain, "kept", 3));
    RequireConverged(c, h, "S1");

    // An online backup while the node runs.
    const std::string backup = dir + "/backup.db";
    ProcessResult b = RunProcess({"sqlite3", node->db_path(), ".backup '" + backup + "'"});
    INFO(b.err);
    REQUIRE(b.exit_code == 0);

    // Writes the restore will lose, after central has applied them.
    h.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA1, 5));
    h.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinB1, 5));
    h.WriteOk("/v1/reservations", Reserve(sample::kSafety, "lost", 4));
    RequireConverged(c, h, "S1");
    REQUIRE(CentralOnHand(c, sample::kPlain, "S1") == 20);
    REQUIRE(node->Stop() == 0);

    auto restored = StartNode(dir, "S1", *central, {"--restore-from", backup});
    Http r(restored->url());
    CHECK(NodeOnHand(r, sample::kPlain) == 10);
    std::string exceptions;
    bool reported = Eventually(
        [&] {
          auto e = c.GetOk<v1::ListExceptionsResponse>(
              "/v1/exceptions?node_id=S1&kind=restore_lost_events");
          exceptions = MessageToJson(e);
          return e.exceptions_size() >= 1;
        },
        kConvergeTimeout);
    INFO("exceptions: " << exceptions << "\ncentral log:\n" << central->LogTail());
    CHECK(reported);
    RequireConverged(c, r, "S1");
    auto all = c.GetOk<v1::ListExceptionsResponse>("/v1/exceptions");
    INFO(MessageToJson(all));
    REQUIRE(all.exceptions_size() == 1);
    CHECK(all.exceptions(0).kind() == "restore_lost_events");
    CHECK(CentralOnHand(c, sample::kPlain, "S1") == 10);
    auto soap = c.GetOk<v1::NetworkStockResponse>(
        absl::StrCat("/v1/stock?sku=", sample::kSafety, "&site=S1"));
    REQUIRE(soap.items_size() == 1);
    CHECK(soap.items(0).reserved() == 0);
    auto info = FindNode(c.GetOk<v1::ListNodesResponse>("/v1/nodes"), "S1");
    CHECK(info.epoch() == r.GetOk<v1::NodeStatus>("/v1/status").epoch());

    // Life goes on in the new epoch.
    r.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA1, 1));
    RequireConverged(c, r, "S1");
    CHECK(CentralOnHand(c, sample::kPlain, "S1") == 11);
    CHECK(restored->Stop() == 0);
  }
  CHECK(central->Stop() == 0);
}

TEST_CASE("central refuses an unregistered node and lists it as an exception",
          "[integration][central]") {
  const std::string dir = TestDir("depot-central-unknown-");
  auto central = StartCentral(dir);
  ImportMasterData(*central, dir, {"S1"});
  auto ghost = StartNode(dir, "GHOST", *central);
  Http c(central->url()), g(ghost->url());

  std::string exceptions;
  bool listed = Eventually(
      [&] {
        auto e = c.GetOk<v1::ListExceptionsResponse>(
            "/v1/exceptions?node_id=GHOST&kind=unknown_node");
        exceptions = MessageToJson(e);
        return e.exceptions_size() >= 1;
      },
      kConvergeTimeout);
  INFO(exceptions);
  REQUIRE(listed);
  auto listed_by_ctl = Parse<v1::ListExceptionsResponse>(
      CtlCentral(*central, {"central", "exceptions", "--node", "GHOST"}));
  REQUIRE(listed_by_ctl.exceptions_size() >= 1);
  CHECK(listed_by_ctl.exceptions(0).kind() == "unknown_node");

  CHECK(Eventually([&] { return Field(SyncState(g), "last_error").find("unknown node") !=
                                std::string::npos; },
                   milliseconds(5000)));
  CHECK(Field(SyncState(g), "connected") == "false");
  const auto nodes = c.GetOk<v1::ListNodesResponse>("/v1/nodes");
  for (const auto& n : nodes.nodes()) {
    CHECK(n.node_id() != "GHOST");
  }
  // The refused node still serves its local API.
  CHECK(g.Send("GET", "/v1/status").status == 200);
  CHECK(ghost->Stop() == 0);
  CHECK(central->Stop() == 0);
}

std::string ToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return "";
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}
grpc::ByteBuffer FromString(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

TEST_CASE("central's gRPC door: Central service, NodeSync refusals, health and reflection",
          "[integration][central]") {
  const std::string dir = TestDir("depot-central-grpc-");
  auto central = StartCentral(dir);
  ImportMasterData(*central, dir, {"S1"});
  auto channel = grpc::CreateChannel(central->grpc_address(), grpc::InsecureChannelCredentials());
  auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(10); };

  // Service Central: the same operations as the HTTP API, absl codes mapped 1:1.
  auto stub = v1::Central::NewStub(channel);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    v1::ListNodesResponse nodes;
    grpc::Status s = stub->ListNodes(&ctx, v1::ListNodesRequest(), &nodes);
    INFO(s.error_message());
    REQUIRE(s.ok());
    REQUIRE(nodes.nodes_size() == 1);
    CHECK(nodes.nodes(0).node_id() == "S1");
    CHECK_FALSE(nodes.nodes(0).connected());
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    v1::NetworkStockResponse stock;
    CHECK(stub->GetNetworkStock(&ctx, v1::NetworkStockRequest(), &stock).error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    v1::NetworkStockRequest q;
    q.set_sku("NO-SUCH-SKU");
    v1::NetworkStockResponse stock;
    CHECK(stub->GetNetworkStock(&ctx, q, &stock).error_code() == grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    v1::ImportRequest q;
    q.set_kind("sites");
    q.set_csv("id,name,kind,region\nS9,Site 9,store,east\n");
    v1::ImportResult r;
    grpc::Status s = stub->Import(&ctx, q, &r);
    INFO(s.error_message());
    REQUIRE(s.ok());
    CHECK(r.rows() == 1);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    v1::ImportRequest q;
    q.set_kind("widgets");
    q.set_csv("a\n1\n");
    v1::ImportResult r;
    CHECK(stub->Import(&ctx, q, &r).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }

  // NodeSync: the first message must be a Hello; an unknown node is refused with NOT_FOUND.
  auto sync = v1::NodeSync::NewStub(channel);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    auto stream = sync->Sync(&ctx);
    v1::NodeMessage m;
    m.mutable_heartbeat()->set_hlc(1);
    stream->Write(m);
    stream->WritesDone();
    v1::CentralMessage in;
    CHECK_FALSE(stream->Read(&in));
    CHECK(stream->Finish().error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    auto stream = sync->Sync(&ctx);
    v1::NodeMessage m;
    m.mutable_hello()->set_node_id("NOBODY");
    m.mutable_hello()->set_epoch(42);
    stream->Write(m);
    v1::CentralMessage in;
    CHECK_FALSE(stream->Read(&in));
    grpc::Status s = stream->Finish();
    CHECK(s.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(s.error_message().find("NOBODY") != std::string::npos);
  }

  grpc::GenericStub generic(channel);
  // Health: grpc.health.v1.Health/Check for the whole server answers SERVING (status = 1).
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    grpc::ByteBuffer request = FromString(""), response;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    grpc::Status status;
    generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                      &response, [&](grpc::Status s) {
                        std::lock_guard<std::mutex> lock(mu);
                        status = std::move(s);
                        done = true;
                        cv.notify_all();
                      });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
    INFO(status.error_message());
    REQUIRE(status.ok());
    CHECK(ToString(response) == std::string("\x08\x01", 2));
  }
  // Reflection lists our services (grpc.reflection.v1alpha, list_services = field 7).
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    grpc::CompletionQueue cq;
    void* tag = nullptr;
    bool ok = false;
    auto call = generic.PrepareCall(
        &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
    auto step = [&](intptr_t want) {
      REQUIRE(cq.Next(&tag, &ok));
      CHECK(reinterpret_cast<intptr_t>(tag) == want);
      return ok;
    };
    call->StartCall(reinterpret_cast<void*>(1));
    REQUIRE(step(1));
    call->Write(FromString(std::string("\x3a\x00", 2)), reinterpret_cast<void*>(2));
    REQUIRE(step(2));
    grpc::ByteBuffer response;
    call->Read(&response, reinterpret_cast<void*>(3));
    REQUIRE(step(3));
    const std::string bytes = ToString(response);
    CHECK(bytes.find("depot.v1.NodeSync") != std::string::npos);
    CHECK(bytes.find("depot.v1.Central") != std::string::npos);
    CHECK(bytes.find("grpc.health.v1.Health") != std::string::npos);
    call->WritesDone(reinterpret_cast<void*>(4));
    step(4);
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(5));
    step(5);
    CHECK(status.ok());
  }

  auto exceptions = Parse<v1::ListExceptionsResponse>(
      CtlCentral(*central, {"central", "exceptions", "--kind", "unknown_node"}));
  REQUIRE(exceptions.exceptions_size() == 1);
  CHECK(exceptions.exceptions(0).node_id() == "NOBODY");
  CHECK(central->Stop() == 0);
}

}  // namespace
}  // namespace depot::testing
