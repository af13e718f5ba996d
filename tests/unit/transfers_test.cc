// Transfers between sites (node/transfers.h, central/transfers.h): central in-process over a real
// SQLite store (central_fixture.h) and two node ledgers S1 (warehouse: everything granted to
// central) and S2 (store: 30 % local) on real SQLite files, synced by hand through the same entry
// points the sync engines use (Ledger::ReadOutbox -> CentralStore::ApplyEvents, ReadFeed ->
// Ledger::ApplyFeed), so "offline" is simply not syncing.
#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "central/transfers.h"
#include "node/ledger.h"
#include "tests/unit/central_fixture.h"

namespace depot::testing {
namespace {

struct TransferWorld {
  CentralWorld c;
  struct Node {
    std::string site;
    std::unique_ptr<node::Ledger> ledger;
    uint64_t sent = 0;  // last outbox seq handed to central
  };
  Node s1{"S1"}, s2{"S2"};
  central::TransferService transfers{c.store.get(), &c.clock, [] {}};
  RequestContext ctx{"alice", "test"};

  TransferWorld() {
    for (Node* n : {&s1, &s2}) {
      auto l = node::Ledger::Open(
          {.path = c.dir + "/" + n->site + ".db", .node_id = n->site, .clock = &c.clock});
      REQUIRE(l.ok());
      n->ledger = std::move(*l);
      REQUIRE(n->ledger->ImportBins("code,zone,walk_order\nB1,A,10\nB2,A,20\n").ok());
    }
    Sync();
  }

  void Up(Node& n) {
    auto events = n.ledger->ReadOutbox(n.sent, 100000);
    REQUIRE(events.ok());
    if (events->empty()) return;
    n.sent = events->back().seq();
    c.Apply(n.site, std::move(*events));
  }
  void Down(Node& n) {
    auto feed = c.store->ReadFeed(n.site, n.ledger->FeedMark(), 100000);
    REQUIRE(feed.ok());
    if (feed->empty()) return;
    auto mark = n.ledger->ApplyFeed(*feed);
    INFO(mark.status().ToString());
    REQUIRE(mark.ok());
  }
  void Sync() {
    for (int i = 0; i < 3; ++i) {
      for (Node* n : {&s1, &s2}) {
        Down(*n);
        Up(*n);
      }
    }
  }

  absl::StatusOr<v1::OperationResult> Op(Node& n, const v1::Operation& op) {
    return n.ledger->Apply(ctx, op);
  }
  void Receive(Node& n, const std::string& sku, int64_t q) {
    v1::Operation op;
    auto* r = op.mutable_receipt();
    r->set_sku(sku);
    r->set_bin("B1");
    r->set_quantity(q);
    auto res = Op(n, op);
    INFO(res.status().ToString());
    REQUIRE(res.ok());
  }
  int64_t OnHand(Node& n, const std::string& sku) {
    auto atp = n.ledger->GetAtp(sku);
    REQUIRE(atp.ok());
    return atp->on_hand();
  }
  int64_t Available(Node& n, const std::string& sku) {
    auto atp = n.ledger->GetAtp(sku);
    REQUIRE(atp.ok());
    return atp->available();
  }
  v1::RightsBook Book(Node& n, const std::string& sku) {
    auto r = n.ledger->ListRights(sku);
    REQUIRE(r.ok());
    REQUIRE(r->books_size() == 1);
    return r->books(0);
  }
  v1::CentralRights Central(const std::string& site, const std::string& sku) {
    v1::ListRightsRequest q;
    q.set_site(site);
    q.set_sku(sku);
    auto r = c.rights->List(q);
    REQUIRE(r.ok());
    REQUIRE(r->rights_size() == 1);
    return r->rights(0);
  }
  void RequireClean() {
    for (Node* n : {&s1, &s2}) {
      auto v = n->ledger->Verify();
      REQUIRE(v.ok());
      for (const auto& d : v->differences()) UNSCOPED_INFO(n->site << ": " << d.what() << " " << d.key());
      CHECK(v->ok());
    }
    auto v = c.rights->Verify();
    REQUIRE(v.ok());
    for (const auto& s : *v) UNSCOPED_INFO("central: " << s);
    CHECK(v->empty());
  }
  std::vector<v1::ExceptionEntry> Exceptions(const std::string& kind) {
    v1::ListExceptionsRequest r;
    r.set_kind(kind);
    auto l = c.central->ListExceptions(r);
    REQUIRE(l.ok());
    return {l->exceptions().begin(), l->exceptions().end()};
  }
};

v1::CreateTransferRequest Order(const std::string& from, const std::string& to,
                                std::vector<std::pair<std::string, int64_t>> lines) {
  v1::CreateTransferRequest r;
  r.set_source(from);
  r.set_destination(to);
  for (auto& [sku, q] : lines) {
    auto* l = r.add_lines();
    l->set_sku(sku);
    l->set_quantity(q);
  }
  return r;
}

v1::Operation CreateOp(const v1::CreateTransferRequest& r) {
  v1::Operation op;
  *op.mutable_transfer_create() = r;
  return op;
}
v1::Operation ShipOp(const std::string& id, std::vector<std::pair<std::string, int64_t>> lines = {}) {
  v1::Operation op;
  op.mutable_transfer_ship()->set_transfer_id(id);
  for (auto& [sku, q] : lines) {
    auto* l = op.mutable_transfer_ship()->add_lines();
    l->set_sku(sku);
    l->set_quantity(q);
  }
  return op;
}
v1::Operation CancelOp(const std::string& id) {
  v1::Operation op = ShipOp(id);
  op.mutable_transfer_ship()->set_cancel(true);
  return op;
}
v1::Operation ReceiveOp(const std::string& id,
                        std::vector<std::pair<std::string, int64_t>> lines = {}) {
  v1::Operation op;
  op.mutable_transfer_receive()->set_transfer_id(id);
  op.mutable_transfer_receive()->set_bin("B2");
  for (auto& [sku, q] : lines) {
    auto* l = op.mutable_transfer_receive()->add_lines();
    l->set_sku(sku);
    l->set_quantity(q);
  }
  return op;
}

}  // namespace

TEST_CASE("a transfer ordered at central: ship, in transit, short receipt raises an exception",
          "[transfers]") {
  TransferWorld w;
  w.Receive(w.s1, "A", 10);
  w.Sync();
  REQUIRE(w.Central("S1", "A").central_rights() == 10);  // a warehouse grants everything

  SECTION("beyond central's rights at the source: refused, nothing changed") {
    auto r = w.transfers.Create(Order("S1", "S2", {{"A", 11}}), "planner");
    REQUIRE(r.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(r.status().message()), Catch::Contains("only 10 of SKU A"));
    auto list = w.transfers.List({});
    REQUIRE(list.ok());
    CHECK(list->transfers_size() == 0);
    CHECK(w.Central("S1", "A").central_committed() == 0);
  }

  auto created = w.transfers.Create(Order("S1", "S2", {{"A", 4}}), "planner");
  INFO(created.status().ToString());
  REQUIRE(created.ok());
  const v1::Transfer t = created->first;
  CHECK(t.transfer_id() == "T1");
  CHECK(t.status() == v1::TRANSFER_REQUESTED);
  CHECK(t.origin() == "central");
  CHECK(w.Central("S1", "A").central_committed() == 4);
  w.RequireClean();

  w.Down(w.s1);  // the source learns of it and reserves the units
  CHECK(w.Available(w.s1, "A") == 6);
  auto at_s1 = w.s1.ledger->GetTransfer("T1");
  REQUIRE(at_s1.ok());
  CHECK(at_s1->status() == v1::TRANSFER_REQUESTED);

  // Bad input at the wrong places: clear errors, nothing written.
  const uint64_t seq1 = w.s1.ledger->LastSeq(), seq2 = w.s2.ledger->LastSeq();
  CHECK(w.Op(w.s1, ReceiveOp("T1")).status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(w.Op(w.s2, ShipOp("T1")).status().code() == absl::StatusCode::kNotFound);
  CHECK(w.Op(w.s1, ShipOp("T1", {{"A", 5}})).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(w.Op(w.s1, ShipOp("T1", {{"B", 1}})).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(w.Op(w.s1, ShipOp("NOPE")).status().code() == absl::StatusCode::kNotFound);
  {
    v1::Operation release;  // the transfer's reservation is not a plain reservation
    release.mutable_release()->set_sku("A");
    release.mutable_release()->set_reference("T1");
    CHECK(w.Op(w.s1, release).status().code() == absl::StatusCode::kFailedPrecondition);
  }
  CHECK(w.s1.ledger->LastSeq() == seq1);
  CHECK(w.s2.ledger->LastSeq() == seq2);

  // Transfer-out.
  auto shipped = w.Op(w.s1, ShipOp("T1"));
  INFO(shipped.status().ToString());
  REQUIRE(shipped.ok());
  CHECK(shipped->transfer().status() == v1::TRANSFER_SHIPPED);
  CHECK(shipped->transfer().lines(0).shipped() == 4);
  bool out_row = false;
  for (const auto& m : shipped->movements()) {
    if (m.type() == v1::CONSUME) {
      out_row = true;
      CHECK(m.reason() == "transfer_out");
      CHECK(m.reference() == "T1");
    }
  }
  CHECK(out_row);
  CHECK(w.OnHand(w.s1, "A") == 6);
  CHECK(w.Available(w.s1, "A") == 6);
  CHECK(w.Op(w.s1, ShipOp("T1")).status().code() == absl::StatusCode::kFailedPrecondition);

  // Central: in transit, rights consumed.
  w.Up(w.s1);
  auto at_central = w.transfers.Get("T1");
  REQUIRE(at_central.ok());
  CHECK(at_central->status() == v1::TRANSFER_SHIPPED);
  auto transit = w.transfers.InTransit("A", "");
  REQUIRE(transit.ok());
  REQUIRE(transit->items_size() == 1);
  CHECK(transit->items(0).destination() == "S2");
  CHECK(transit->items(0).quantity() == 4);
  REQUIRE(transit->totals_size() == 1);
  CHECK(transit->totals(0).quantity() == 4);
  v1::ListTransfersRequest in_transit;
  in_transit.set_status(v1::TRANSFER_SHIPPED);
  CHECK(w.transfers.List(in_transit)->transfers_size() == 1);
  const v1::CentralRights cr = w.Central("S1", "A");
  CHECK(cr.central_rights() == 6);
  CHECK(cr.central_committed() == 0);
  CHECK(cr.consumed_total() == 4);
  CHECK(w.Book(w.s1, "A").central_granted() == 6);
  w.RequireClean();

  // The destination: unknown until central's feed brings it.
  CHECK(w.Op(w.s2, ReceiveOp("T1")).status().code() == absl::StatusCode::kNotFound);
  w.Down(w.s2);
  {
    v1::Operation no_bin = ReceiveOp("T1");
    no_bin.mutable_transfer_receive()->clear_bin();
    CHECK(w.Op(w.s2, no_bin).status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(w.Op(w.s2, ReceiveOp("T1", {{"A", -1}})).status().code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(w.s2.ledger->LastSeq() == seq2);
  }
  auto received = w.Op(w.s2, ReceiveOp("T1", {{"A", 3}}));
  INFO(received.status().ToString());
  REQUIRE(received.ok());
  CHECK(received->transfer().status() == v1::TRANSFER_RECEIVED_WITH_VARIANCE);
  CHECK(received->transfer().lines(0).received() == 3);
  for (const auto& m : received->movements()) {
    if (m.type() == v1::RECEIPT) {
      CHECK(m.reason() == "transfer_in");
      CHECK(m.reference() == "T1");
      CHECK(m.bin() == "B2");
    }
  }
  CHECK(w.OnHand(w.s2, "A") == 3);
  CHECK(w.Op(w.s2, ReceiveOp("T1")).status().code() == absl::StatusCode::kFailedPrecondition);

  w.Sync();
  auto shorts = w.Exceptions("transfer_short");
  REQUIRE(shorts.size() == 1);
  CHECK(shorts[0].node_id() == "S2");
  CHECK(shorts[0].sku() == "A");
  CHECK_THAT(shorts[0].message(), Catch::Contains("T1") && Catch::Contains("line 1") &&
                                      Catch::Contains("short by 1"));
  CHECK(w.Exceptions("transfer_over").empty());
  CHECK(w.transfers.Get("T1")->status() == v1::TRANSFER_RECEIVED_WITH_VARIANCE);
  CHECK(w.transfers.InTransit("", "")->items_size() == 0);
  CHECK(w.s1.ledger->GetTransfer("T1")->status() == v1::TRANSFER_RECEIVED_WITH_VARIANCE);
  // The source's book and central's row agree after the sync.
  CHECK(w.Book(w.s1, "A").central_granted() == w.Central("S1", "A").central_rights());
  CHECK(w.Central("S1", "A").central_rights() == 6);
  w.RequireClean();
}

TEST_CASE("a transfer ordered at the source uses local rights, with an overage and a cancel", "[transfers]") {
  TransferWorld w;
  w.Receive(w.s2, "A", 10);  // a store: 3 local rights, 7 granted to central
  w.Sync();
  REQUIRE(w.Book(w.s2, "A").local_rights() == 3);
  const uint64_t seq = w.s2.ledger->LastSeq();

  SECTION("bad requests are refused and change nothing") {
    auto beyond = w.Op(w.s2, CreateOp(Order("", "S1", {{"A", 5}})));
    REQUIRE(beyond.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(beyond.status().message()), Catch::Contains("local selling rights"));
    CHECK(w.Op(w.s2, CreateOp(Order("", "S2", {{"A", 1}}))).status().code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(w.Op(w.s2, CreateOp(Order("", "S1", {{"A", 1}, {"A", 1}}))).status().code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(w.Op(w.s2, CreateOp(Order("", "S1", {{"A", 0}}))).status().code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(w.Op(w.s2, CreateOp(Order("", "S1", {}))).status().code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(w.Op(w.s2, CreateOp(Order("", "S1", {{"NOPE", 1}}))).status().code() ==
          absl::StatusCode::kNotFound);
    CHECK(w.Op(w.s2, CreateOp(Order("S1", "S3", {{"A", 1}}))).status().code() ==
          absl::StatusCode::kFailedPrecondition);
    CHECK(w.transfers.Create(Order("S1", "S1", {{"A", 1}}), "p").status().code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(w.transfers.Create(Order("S1", "S9", {{"A", 1}}), "p").status().code() ==
          absl::StatusCode::kNotFound);
    CHECK(w.transfers.Create(Order("S1", "S2", {{"ZZ", 1}}), "p").status().code() ==
          absl::StatusCode::kNotFound);
    CHECK(w.s2.ledger->LastSeq() == seq);
    CHECK(w.s2.ledger->ListTransfers({})->transfers_size() == 0);
    CHECK(w.Book(w.s2, "A").local_rights() == 3);
    CHECK(w.transfers.List({})->transfers_size() == 0);
  }

  SECTION("ordered, partly shipped, received with an overage") {
    v1::CreateTransferRequest order = Order("", "S1", {{"A", 3}});
    order.set_request_id("req-1");
    auto created = w.Op(w.s2, CreateOp(order));
    INFO(created.status().ToString());
    REQUIRE(created.ok());
    const std::string id = created->transfer().transfer_id();
    CHECK(id == "S2-T1");
    auto again = w.Op(w.s2, CreateOp(order));  // a retried request: the first answer
    REQUIRE(again.ok());
    CHECK(again->replayed());
    CHECK(again->transfer().transfer_id() == id);
    CHECK(w.Book(w.s2, "A").local_rights() == 0);
    CHECK(w.Book(w.s2, "A").local_open() == 3);
    CHECK(w.Available(w.s2, "A") == 7);

    auto shipped = w.Op(w.s2, ShipOp(id, {{"A", 2}}));  // one unit stays
    INFO(shipped.status().ToString());
    REQUIRE(shipped.ok());
    CHECK(shipped->transfer().lines(0).shipped() == 2);
    CHECK(w.OnHand(w.s2, "A") == 8);
    CHECK(w.Book(w.s2, "A").local_open() == 0);
    CHECK(w.Book(w.s2, "A").local_sold_total() == 2);
    w.RequireClean();

    w.Sync();  // central learns of it and forwards it to S1
    CHECK(w.transfers.Get(id)->origin() == "S2");
    CHECK(w.s1.ledger->GetTransfer(id)->status() == v1::TRANSFER_SHIPPED);
    auto received = w.Op(w.s1, ReceiveOp(id, {{"A", 3}}));
    INFO(received.status().ToString());
    REQUIRE(received.ok());
    CHECK(received->transfer().status() == v1::TRANSFER_RECEIVED_WITH_VARIANCE);
    CHECK(w.OnHand(w.s1, "A") == 3);
    w.Sync();
    auto over = w.Exceptions("transfer_over");
    REQUIRE(over.size() == 1);
    CHECK_THAT(over[0].message(), Catch::Contains(id) && Catch::Contains("over by 1"));
    CHECK(w.Exceptions("transfer_short").empty());
    // The warehouse granted the received units to central like any receipt.
    CHECK(w.Central("S1", "A").central_rights() == 3);
    w.RequireClean();
  }

  SECTION("received as shipped: no exception") {
    auto created = w.Op(w.s2, CreateOp(Order("", "S1", {{"A", 2}})));
    REQUIRE(created.ok());
    const std::string id = created->transfer().transfer_id();
    REQUIRE(w.Op(w.s2, ShipOp(id)).ok());
    w.Sync();
    auto received = w.Op(w.s1, ReceiveOp(id));
    REQUIRE(received.ok());
    CHECK(received->transfer().status() == v1::TRANSFER_RECEIVED);
    w.Sync();
    CHECK(w.Exceptions("transfer_short").empty());
    CHECK(w.Exceptions("transfer_over").empty());
    CHECK(w.transfers.Get(id)->status() == v1::TRANSFER_RECEIVED);
    w.RequireClean();
  }

  SECTION("cancelled before shipping: reservation and rights back") {
    auto created = w.Op(w.s2, CreateOp(Order("", "S1", {{"A", 3}})));
    REQUIRE(created.ok());
    const std::string id = created->transfer().transfer_id();
    auto cancelled = w.Op(w.s2, CancelOp(id));
    REQUIRE(cancelled.ok());
    CHECK(cancelled->transfer().status() == v1::TRANSFER_CANCELLED);
    CHECK(w.Available(w.s2, "A") == 10);
    CHECK(w.Book(w.s2, "A").local_rights() == 3);
    CHECK(w.Op(w.s2, ShipOp(id)).status().code() == absl::StatusCode::kFailedPrecondition);
    w.Sync();
    CHECK(w.transfers.Get(id)->status() == v1::TRANSFER_CANCELLED);
    w.RequireClean();
  }
}

TEST_CASE("a transfer central ordered and the source cancelled gives central its rights back",
          "[transfers]") {
  TransferWorld w;
  w.Receive(w.s1, "B", 5);
  w.Sync();
  auto created = w.transfers.Create(Order("S1", "S2", {{"B", 5}}), "planner");
  REQUIRE(created.ok());
  CHECK(w.Central("S1", "B").available() == 0);
  // Both sides offline from here: the source cancels, central learns it on the next sync.
  w.Down(w.s1);
  REQUIRE(w.Op(w.s1, CancelOp("T1")).ok());
  CHECK(w.Available(w.s1, "B") == 5);
  w.Sync();
  CHECK(w.transfers.Get("T1")->status() == v1::TRANSFER_CANCELLED);
  CHECK(w.Central("S1", "B").central_committed() == 0);
  CHECK(w.Central("S1", "B").available() == 5);
  w.RequireClean();
  // Survives a restart of the node (the transfer and the HLC).
  const uint64_t hlc_before = w.s1.ledger->Status().hlc();
  w.s1.ledger.reset();
  auto l = node::Ledger::Open({.path = w.c.dir + "/S1.db", .node_id = "S1", .clock = &w.c.clock});
  REQUIRE(l.ok());
  w.s1.ledger = std::move(*l);
  CHECK(w.s1.ledger->GetTransfer("T1")->status() == v1::TRANSFER_CANCELLED);
  CHECK(w.s1.ledger->Status().hlc() >= hlc_before);
}

}  // namespace depot::testing
