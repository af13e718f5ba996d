// Transfers between sites (docs/OPERATIONS.md "Transfers between sites") with real processes: a
// depot-central and nodes S1 (warehouse: all its selling rights go to central) and S2 (store).
//   - Central orders S1 -> S2 (central's rights at S1 are committed); S1 ships while S2 is down;
//     central shows the units in transit; S2 comes back, gets the transfer from its feed and
//     receives one unit short -> exception transfer_short at central; stock moved, mirrors,
//     rights identities and both ledgers verify clean.
//   - A transfer ordered at S1 uses S1's local rights (refused beyond them), ships and is
//     received as shipped through depotctl.
//   - Bad input at central and at the nodes is refused with clear errors and changes nothing.
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "depot/v1/rights.pb.h"
#include "depot/v1/transfers.pb.h"
#include "tests/integration/cluster_util.h"

namespace depot::testing {
namespace {

constexpr const char* kWidget = sample::kPlain;  // no tracking, no safety stock

void ImportWarehouseAndStore(const CentralProcess& central, const std::string& dir) {
  ImportTwoSites(central, dir,
                 "S1,East warehouse,warehouse,east\n"
                 "S2,West store,store,west\n",
                 "web,Web shop,S1|S2,true,0\n");
}

v1::CreateTransferRequest Order(const std::string& from, const std::string& to, int64_t qty) {
  v1::CreateTransferRequest r;
  r.set_source(from);
  r.set_destination(to);
  auto* l = r.add_lines();
  l->set_sku(kWidget);
  l->set_quantity(qty);
  return r;
}

v1::CentralRights CentralRow(Http& central, const std::string& site) {
  auto r = central.GetOk<v1::ListRightsResponse>(
      absl::StrCat("/v1/rights?site=", site, "&sku=", kWidget));
  for (const auto& row : r.rights()) {
    if (row.site() == site && row.sku() == kWidget) return row;
  }
  return {};
}

v1::RightsBook NodeBook(Http& node) {
  auto r = node.GetOk<v1::NodeRightsResponse>(absl::StrCat("/v1/rights?sku=", kWidget));
  for (const auto& b : r.books()) {
    if (b.sku() == kWidget) return b;
  }
  return {};
}

// The transfer at a server, or status unspecified when it does not know it (yet).
v1::Transfer TransferAt(Http& server, const std::string& id) {
  auto r = server.Send("GET", "/v1/transfers/" + id);
  if (r.status != 200) return {};
  return Parse<v1::Transfer>(r.body);
}

bool WaitStatus(Http& server, const std::string& id, v1::TransferStatus status) {
  return Eventually([&] { return TransferAt(server, id).status() == status; },
                    kConvergeTimeout);
}

int ExceptionCount(Http& central, const std::string& kind) {
  return central.GetOk<v1::ListExceptionsResponse>("/v1/exceptions?kind=" + kind)
      .exceptions_size();
}

void RequireVerified(Http& node) {
  auto v = node.GetOk<v1::VerifyResponse>("/v1/verify");
  for (const auto& d : v.differences()) UNSCOPED_INFO(d.what() << " " << d.key());
  CHECK(v.ok());
}

void RequireRightsClean(Http& central) {
  auto v = central.GetOk<google::protobuf::Struct>("/v1/rights/verify");
  INFO(MessageToJson(v));
  CHECK(v.fields().at("ok").bool_value());
}

}  // namespace

TEST_CASE("transfers between sites with real processes", "[transfers][integration]") {
  Cluster c("transfers", ImportWarehouseAndStore);
  Http central(c.central->url()), h1(c.s1->url());
  auto h2 = std::make_unique<Http>(c.s2->url());

  h1.WriteOk("/v1/receipts", Receipt(kWidget, sample::kBinA1, 10));
  REQUIRE(Eventually([&] { return CentralRow(central, "S1").central_rights() == 10; },
                     kConvergeTimeout));

  // ---- Bad input at central: clear errors, nothing changed.
  {
    auto r = central.Send("POST", "/v1/transfers", MessageToJson(Order("S1", "S2", 11)));
    CHECK(r.status == 409);
    CHECK(absl::StrContains(r.body, "only 10 of SKU"));
    CHECK(central.Send("POST", "/v1/transfers", MessageToJson(Order("S1", "S1", 1))).status ==
          400);
    CHECK(central.Send("POST", "/v1/transfers", MessageToJson(Order("S1", "S9", 1))).status ==
          404);
    CHECK(central.Send("POST", "/v1/transfers", MessageToJson(Order("S1", "S2", 0))).status ==
          400);
    CHECK(central.Send("POST", "/v1/transfers", "{not json").status == 400);
    CHECK(central.Send("GET", "/v1/transfers/T99").status == 404);
    CHECK(central.GetOk<v1::ListTransfersResponse>("/v1/transfers").transfers_size() == 0);
    CHECK(CentralRow(central, "S1").central_committed() == 0);
  }

  // ---- Ordered at central (depotctl), reserved at the source.
  const std::string created = CtlCentral(
      *c.central, {"central", "transfer", "create", "--from", "S1", "--to", "S2", "--line",
                   absl::StrCat(kWidget, ":4")});
  const v1::Transfer t1 = Parse<v1::Transfer>(created);
  REQUIRE(t1.transfer_id() == "T1");
  CHECK(CentralRow(central, "S1").central_committed() == 4);
  REQUIRE(WaitStatus(h1, "T1", v1::TRANSFER_REQUESTED));
  CHECK(h1.GetOk<v1::StockResponse>(absl::StrCat("/v1/stock?sku=", kWidget)).atp().available() ==
        6);

  // Wrong site and wrong step: refused, nothing written.
  const uint64_t seq1 = h1.GetOk<v1::NodeStatus>("/v1/status").last_seq();
  CHECK(h1.Send("POST", "/v1/transfers/T1/receive", R"({"bin":"A-01"})").status == 409);
  CHECK(h2->Send("POST", "/v1/transfers/T1/ship", "{}").status == 404);
  CHECK(h1.Send("POST", "/v1/transfers/T1/ship",
                absl::StrCat(R"({"lines":[{"sku":")", kWidget, R"(","quantity":5}]})"))
            .status == 400);
  CHECK(h1.Send("POST", "/v1/transfers/NOPE/ship", "{}").status == 404);
  CHECK(h1.GetOk<v1::NodeStatus>("/v1/status").last_seq() == seq1);

  // ---- S2 is down; S1 ships: in transit at central.
  c.s2->Kill(SIGTERM);
  auto shipped = Parse<v1::Transfer>(PostStatus(h1, "/v1/transfers/T1/ship",
                                                v1::ShipTransferRequest(), 201));
  CHECK(shipped.status() == v1::TRANSFER_SHIPPED);
  CHECK(shipped.lines(0).shipped() == 4);
  REQUIRE(WaitStatus(central, "T1", v1::TRANSFER_SHIPPED));
  auto transit = central.GetOk<v1::InTransitResponse>(absl::StrCat("/v1/in-transit?sku=", kWidget));
  REQUIRE(transit.items_size() == 1);
  CHECK(transit.items(0).destination() == "S2");
  CHECK(transit.items(0).quantity() == 4);
  CHECK(central.GetOk<v1::ListTransfersResponse>("/v1/transfers?status=in_transit")
            .transfers_size() == 1);
  CHECK(absl::StrContains(
      CtlCentral(*c.central, {"central", "transfer", "in-transit", "--sku", kWidget}), "S2"));
  CHECK(CentralOnHand(central, kWidget, "S1") == 6);
  REQUIRE(Eventually([&] { return CentralRow(central, "S1").central_rights() == 6; },
                     kConvergeTimeout));
  CHECK(CentralRow(central, "S1").central_committed() == 0);

  // ---- S2 comes back, learns of T1 from its feed and receives one short.
  REQUIRE(c.s2->Start().ok());
  h2 = std::make_unique<Http>(c.s2->url());
  REQUIRE(WaitStatus(*h2, "T1", v1::TRANSFER_SHIPPED));
  ProcessResult rr = CtlNode(*c.s2, {"transfer", "receive", "T1", "--bin", sample::kBinA1,
                                     "--line", absl::StrCat(kWidget, ":3")});
  INFO(rr.out << rr.err);
  REQUIRE(rr.exit_code == 0);
  CHECK(Parse<v1::Transfer>(rr.out).status() == v1::TRANSFER_RECEIVED_WITH_VARIANCE);
  CHECK(h2->Send("POST", "/v1/transfers/T1/receive", R"({"bin":"A-01"})").status == 409);
  CHECK(NodeOnHand(*h2, kWidget) == 3);
  REQUIRE(Eventually([&] { return ExceptionCount(central, "transfer_short") == 1; },
                     kConvergeTimeout));
  {
    auto x = central.GetOk<v1::ListExceptionsResponse>("/v1/exceptions?kind=transfer_short");
    CHECK(x.exceptions(0).node_id() == "S2");
    CHECK(absl::StrContains(x.exceptions(0).message(), "T1"));
    CHECK(absl::StrContains(x.exceptions(0).message(), "short by 1"));
  }
  REQUIRE(WaitStatus(central, "T1", v1::TRANSFER_RECEIVED_WITH_VARIANCE));
  CHECK(central.GetOk<v1::InTransitResponse>("/v1/in-transit").items_size() == 0);
  REQUIRE(WaitStatus(h1, "T1", v1::TRANSFER_RECEIVED_WITH_VARIANCE));  // the source learns it
  RequireConverged(central, h1, "S1");
  RequireConverged(central, *h2, "S2");
  CHECK(NodeOnHand(h1, kWidget) == 6);
  CHECK(CentralOnHand(central, kWidget, "S2") == 3);
  CHECK(NodeBook(h1).central_granted() == CentralRow(central, "S1").central_rights());
  RequireVerified(h1);
  RequireVerified(*h2);
  RequireRightsClean(central);

  // ---- Ordered at the source S1: its local rights (a warehouse has none until central
  // releases some).
  {
    auto r = h1.Send("POST", "/v1/transfers",
                     MessageToJson(Order("", "S2", 2)));
    CHECK(r.status == 409);
    CHECK(absl::StrContains(r.body, "local selling rights"));
    CHECK(h1.GetOk<v1::ListTransfersResponse>("/v1/transfers").transfers_size() == 1);
  }
  v1::ReleaseRightsRequest release;
  release.set_site("S1");
  release.set_sku(kWidget);
  release.set_units(2);
  PostOk(central, "/v1/rights/release", release);
  REQUIRE(Eventually([&] { return NodeBook(h1).local_rights() >= 2; }, kConvergeTimeout));
  ProcessResult cr = CtlNode(*c.s1, {"transfer", "create", "--to", "S2", "--line",
                                     absl::StrCat(kWidget, ":2"), "--note", "rebalance"});
  INFO(cr.out << cr.err);
  REQUIRE(cr.exit_code == 0);
  const std::string id = Parse<v1::Transfer>(cr.out).transfer_id();
  CHECK(id == "S1-T1");
  ProcessResult sr = CtlNode(*c.s1, {"transfer", "ship", id});
  INFO(sr.out << sr.err);
  REQUIRE(sr.exit_code == 0);
  REQUIRE(WaitStatus(*h2, id, v1::TRANSFER_SHIPPED));
  ProcessResult rr2 = CtlNode(*c.s2, {"transfer", "receive", id, "--bin", sample::kBinB1});
  INFO(rr2.out << rr2.err);
  REQUIRE(rr2.exit_code == 0);
  REQUIRE(WaitStatus(central, id, v1::TRANSFER_RECEIVED));
  CHECK(ExceptionCount(central, "transfer_short") == 1);
  CHECK(ExceptionCount(central, "transfer_over") == 0);
  CHECK(NodeOnHand(h1, kWidget) == 4);
  CHECK(NodeOnHand(*h2, kWidget) == 5);

  // Bad input at the nodes.
  CHECK(h2->Send("POST", "/v1/transfers/NOPE/receive", R"({"bin":"A-01"})").status == 404);
  CHECK(h2->Send("POST", "/v1/transfers", "{not json").status == 400);
  CHECK(h2->Send("POST", "/v1/transfers", MessageToJson(Order("", "S2", 1))).status == 400);
  CHECK(h2->Send("GET", "/v1/transfers?status=bogus").status == 400);
  CHECK(CtlNode(*c.s2, {"transfer", "receive", id, "--bin", sample::kBinA1}).exit_code == 1);

  RequireConverged(central, h1, "S1");
  RequireConverged(central, *h2, "S2");
  RequireVerified(h1);
  RequireVerified(*h2);
  RequireRightsClean(central);
}

}  // namespace depot::testing
