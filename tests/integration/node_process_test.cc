// Integration tests: a real depot-node process on an ephemeral port, driven over loopback HTTP
// (libcurl) and through the depotctl binary. Each test case uses a fresh temporary directory and
// database. Answers are parsed with the same protobuf JSON mapping the node uses.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

// For the listener that removes the temporary directories of passing test cases.
#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/http_client.h"
#include "common/json.h"
#include "depot/v1/node_api.pb.h"
#include "tests/integration/integration_util.h"
#include "tests/support/test_support.h"

namespace depot::testing {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

using sample::kBinA1;
using sample::kBinA2;
using sample::kBinB1;
using sample::kLot;
using sample::kNegative;
using sample::kPlain;
using sample::kSafety;
using sample::kSafetyStock;
using sample::kSerial;

// The operator every Api sends unless told otherwise.
constexpr const char* kDefaultOperator = "tester";
// The operator depotctl sends in these tests.
constexpr const char* kCtlOperator = "ctl-user";


std::string Json(const google::protobuf::Message& m) { return MessageToJson(m); }

// A curl client bound to one node. Must be used from the test's main thread (it REQUIREs that
// the transport works).
class Api {
 public:
  explicit Api(const NodeProcess& node, std::string op = kDefaultOperator)
      : base_(node.url()), op_(std::move(op)), client_(http::NewCurlClient(milliseconds(10000))) {}

  // Sends one request with the operator header (unless op is empty) and any extra headers.
  http::ClientResponse Send(std::string_view method, const std::string& path,
                            const std::string& body, const std::string& op,
                            const Headers& extra = {}) {
    Headers headers = extra;
    if (!op.empty()) headers.emplace_back("X-Depot-Operator", op);
    auto r = client_->Send(method, base_ + path, body, headers);
    INFO(method << " " << path << ": " << r.status().ToString());
    REQUIRE(r.ok());
    return *r;
  }
  http::ClientResponse Get(const std::string& path) { return Send("GET", path, "", op_); }
  http::ClientResponse Post(const std::string& path, const std::string& body) {
    return Send("POST", path, body, op_);
  }
  http::ClientResponse PostAs(const std::string& op, const std::string& path,
                              const std::string& body) {
    return Send("POST", path, body, op);
  }

  // GET that must answer 200, parsed into M.
  template <typename M>
  M GetOk(const std::string& path) {
    auto r = Get(path);
    INFO("GET " << path << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    return Parse<M>(r.body);
  }
  // A write that must be applied (201), parsed into its OperationResult.
  v1::OperationResult Write(const std::string& path, const google::protobuf::Message& request,
                            const std::string& op = "") {
    auto r = PostAs(op.empty() ? op_ : op, path, Json(request));
    INFO("POST " << path << " " << Json(request) << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == 201);
    auto result = Parse<v1::OperationResult>(r.body);
    REQUIRE_FALSE(result.replayed());
    REQUIRE(result.movements_size() >= 1);
    return result;
  }

  uint64_t LastSeq() { return GetOk<v1::NodeStatus>("/v1/status").last_seq(); }
  v1::Atp Atp(const std::string& sku) {
    auto r = GetOk<v1::AtpResponse>("/v1/atp/" + sku);
    REQUIRE(r.items_size() == 1);
    return r.items(0);
  }
  v1::StockResponse Stock(const std::string& sku, const std::string& bin = "") {
    return GetOk<v1::StockResponse>(absl::StrCat("/v1/stock?sku=", sku, "&bin=", bin));
  }
  // Every movement matching `filter` (a query string without after_seq/limit), paging with
  // limit `page` and checking the paging contract on the way.
  std::vector<v1::Movement> AllMovements(const std::string& filter = "", int page = 1000) {
    std::vector<v1::Movement> out;
    uint64_t after = 0;
    for (int guard = 0; guard < 100000; ++guard) {
      auto r = GetOk<v1::MovementsResponse>(absl::StrCat("/v1/movements?", filter, "&limit=", page,
                                                         "&after_seq=", after));
      REQUIRE(r.movements_size() <= page);
      for (const auto& m : r.movements()) {
        REQUIRE(m.seq() > after);
        out.push_back(m);
      }
      if (r.next_after_seq() == 0) break;
      REQUIRE(r.movements_size() == page);
      REQUIRE(r.next_after_seq() == r.movements(r.movements_size() - 1).seq());
      after = r.next_after_seq();
    }
    return out;
  }

 private:
  std::string base_, op_;
  std::unique_ptr<http::Client> client_;
};

// Starts a node (REQUIREs success). extra: additional depot-node flags.
std::unique_ptr<NodeProcess> StartNode(const std::string& dir, const std::string& node_id,
                                       std::vector<std::string> extra = {}) {
  auto node = std::make_unique<NodeProcess>(dir + "/node.db", node_id, std::move(extra));
  absl::Status s = node->Start();
  INFO(s.ToString());
  REQUIRE(s.ok());
  return node;
}

// Runs depotctl against node as kCtlOperator.
ProcessResult Ctl(const NodeProcess& node, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kCtlBin, "--node", node.url(), "--operator", kCtlOperator};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}

// Runs depotctl and REQUIREs exit 0; returns its stdout.
std::string CtlOk(const NodeProcess& node, const std::vector<std::string>& args) {
  ProcessResult r = Ctl(node, args);
  INFO("depotctl " << absl::StrJoin(args, " ") << " -> " << r.exit_code << "\nstdout: " << r.out
                   << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  return r.out;
}

// Imports the sample SKUs and bins through depotctl from CSV files in dir.
void ImportSample(const NodeProcess& node, const std::string& dir) {
  REQUIRE(WriteFile(dir + "/skus.csv", sample::SkusCsv()).ok());
  REQUIRE(WriteFile(dir + "/bins.csv", sample::BinsCsv()).ok());
  REQUIRE(Parse<v1::ImportResponse>(CtlOk(node, {"import", "skus", dir + "/skus.csv"})).rows() == 5);
  REQUIRE(Parse<v1::ImportResponse>(CtlOk(node, {"import", "bins", dir + "/bins.csv"})).rows() == 3);
}

v1::ReceiptRequest Receipt(const std::string& sku, const std::string& bin, int64_t qty) {
  v1::ReceiptRequest r;
  r.set_sku(sku);
  r.set_bin(bin);
  r.set_quantity(qty);
  return r;
}
v1::ReserveRequest Reserve(const std::string& sku, const std::string& ref, int64_t qty) {
  v1::ReserveRequest r;
  r.set_sku(sku);
  r.set_reference(ref);
  r.set_quantity(qty);
  return r;
}
v1::AdjustRequest Adjust(const std::string& sku, const std::string& bin, int64_t qty,
                         const std::string& reason) {
  v1::AdjustRequest r;
  r.set_sku(sku);
  r.set_bin(bin);
  r.set_quantity(qty);
  r.set_reason(reason);
  return r;
}

// on_hand by "bin/lot" (or "sku/bin/lot" with with_sku) from a stock answer.
std::map<std::string, int64_t> OnHand(const v1::StockResponse& s, bool with_sku = false) {
  std::map<std::string, int64_t> out;
  for (const auto& b : s.balances()) {
    out[absl::StrCat(with_sku ? b.sku() + "/" : "", b.bin(), "/", b.lot())] = b.on_hand();
  }
  return out;
}

// Everything a rejected request must leave untouched.
struct Snapshot {
  uint64_t last_seq = 0;
  std::string state;  // stock of every sample SKU, reservations, SKUs and bins, as JSON
  bool operator==(const Snapshot&) const = default;
};
Snapshot Take(Api& api) {
  Snapshot s;
  s.last_seq = api.LastSeq();
  for (const char* sku :
       {kPlain, kLot, kSerial, kNegative, kSafety}) {
    auto r = api.Get(absl::StrCat("/v1/stock?sku=", sku));
    REQUIRE(r.status == 200);
    s.state += r.body + "\n";
  }
  for (const char* path : {"/v1/reservations", "/v1/skus", "/v1/bins"}) {
    auto r = api.Get(path);
    REQUIRE(r.status == 200);
    s.state += r.body + "\n";
  }
  return s;
}

// Sends a request that must be refused with `status` and a JSON error body carrying `code`, and
// checks that it changed nothing. op empty: no operator header.
void ExpectRejected(Api& api, std::string_view method, const std::string& path,
                    const std::string& body, int status, const std::string& code,
                    const std::string& op = kDefaultOperator) {
  INFO(method << " " << path << " " << body.substr(0, 300));
  Snapshot before = Take(api);
  auto r = api.Send(method, path, body, op);
  INFO("answer: " << r.status << " " << r.body.substr(0, 500));
  CHECK(r.status == status);
  CHECK(r.content_type.find("application/json") == 0);
  auto err = Parse<v1::ErrorBody>(r.body);
  CHECK(err.error().code() == code);
  CHECK_FALSE(err.error().message().empty());
  Snapshot after = Take(api);
  CHECK(after.last_seq == before.last_seq);
  CHECK(after.state == before.state);
}

// ---------------------------------------------------------------------------------------------

TEST_CASE("happy path over HTTP and depotctl", "[integration]") {
  const std::string dir = TestDir("depot-it-happy-");
  auto node = StartNode(dir, "node-happy");
  Api api(*node);
  ImportSample(*node, dir);

  // Master data as imported.
  auto skus = api.GetOk<v1::SkusResponse>("/v1/skus");
  REQUIRE(skus.skus_size() == 5);
  std::map<std::string, v1::Sku> by_code;
  for (const auto& s : skus.skus()) by_code[s.code()] = s;
  CHECK(by_code[kLot].tracking() == v1::TRACKING_LOT);
  CHECK(by_code[kLot].expiry_tracked());
  CHECK(by_code[kLot].name() == "Milk, 1 l");
  CHECK(by_code[kLot].gtin() == "96385074");
  CHECK(by_code[kSerial].tracking() == v1::TRACKING_SERIAL);
  CHECK(by_code[kNegative].allow_negative());
  CHECK(by_code[kSafety].safety_stock() == kSafetyStock);
  CHECK(by_code[kPlain].unit() == "ea");
  auto bins = api.GetOk<v1::BinsResponse>("/v1/bins");
  REQUIRE(bins.bins_size() == 3);
  CHECK(bins.bins(0).code() == kBinA1);
  CHECK(bins.bins(2).code() == kBinB1);
  CHECK(bins.bins(2).walk_order() == 30);
  CHECK(Parse<v1::SkusResponse>(CtlOk(*node, {"skus"})).skus_size() == 5);
  CHECK(Parse<v1::BinsResponse>(CtlOk(*node, {"bins"})).bins_size() == 3);

  // Receipt with plain JSON numbers (not the strings protobuf prints); operator from the header.
  {
    auto r = api.PostAs("alice", "/v1/receipts",
                        absl::StrCat(R"({"sku":")", kPlain, R"(","bin":")", kBinA1,
                                     R"(","quantity":100,"reference":"PO-1"})"));
    INFO(r.body);
    REQUIRE(r.status == 201);
    auto res = Parse<v1::OperationResult>(r.body);
    REQUIRE(res.movements_size() == 1);
    const auto& m = res.movements(0);
    CHECK(m.seq() == 1);
    CHECK(m.op_seq() == 1);
    CHECK(m.type() == v1::RECEIPT);
    CHECK(m.quantity() == 100);
    CHECK(m.operator_id() == "alice");
    CHECK(m.reference() == "PO-1");
    CHECK(m.hlc() > 0);
    CHECK(res.atp().on_hand() == 100);
    CHECK(res.atp().available() == 100);
  }

  // Move through depotctl: recorded with depotctl's operator.
  {
    auto res = Parse<v1::OperationResult>(CtlOk(
        *node, {"move", "--sku", kPlain, "--from", kBinA1, "--to", kBinA2, "--qty", "30",
                "--reference", "MV-1"}));
    REQUIRE(res.movements_size() == 1);
    CHECK(res.movements(0).type() == v1::MOVE);
    CHECK(res.movements(0).bin() == kBinA1);
    CHECK(res.movements(0).to_bin() == kBinA2);
    CHECK(res.movements(0).operator_id() == kCtlOperator);
  }

  // Adjustments with every reason code (signed quantities), by "bob".
  struct AdjustCase {
    const char* bin;
    int64_t qty;
    const char* reason;
  };
  for (const AdjustCase& a : {AdjustCase{kBinA1, -2, "damaged"}, AdjustCase{kBinA1, -1, "lost"},
                              AdjustCase{kBinA2, 5, "found"}, AdjustCase{kBinA2, -3, "count"},
                              AdjustCase{kBinA2, 1, "count"}}) {
    INFO(a.reason << " " << a.qty);
    auto res = api.Write("/v1/adjustments", Adjust(kPlain, a.bin, a.qty, a.reason), "bob");
    REQUIRE(res.movements_size() == 1);
    CHECK(res.movements(0).type() == v1::ADJUSTMENT);
    CHECK(res.movements(0).quantity() == a.qty);
    CHECK(res.movements(0).reason() == a.reason);
    CHECK(res.movements(0).operator_id() == "bob");
  }

  // Scrap.
  {
    v1::ScrapRequest s;
    s.set_sku(kPlain);
    s.set_bin(kBinA1);
    s.set_quantity(4);
    s.set_reason("broken");
    auto res = api.Write("/v1/scraps", s);
    CHECK(res.movements(0).type() == v1::SCRAP);
    CHECK(res.movements(0).quantity() == 4);
    CHECK(res.atp().on_hand() == 96);
  }
  // A-01: 100 - 30 - 2 - 1 - 4 = 63; A-02: 30 + 5 - 3 + 1 = 33.
  {
    auto st = api.Stock(kPlain);
    CHECK(OnHand(st) == std::map<std::string, int64_t>{{"A-01/", 63}, {"A-02/", 33}});
    CHECK(st.balances(0).bin() == kBinA1);  // walk order
    CHECK(st.atp().on_hand() == 96);
    auto ctl = Parse<v1::StockResponse>(CtlOk(*node, {"stock", "--sku", kPlain}));
    CHECK(OnHand(ctl) == OnHand(st));
  }

  // Reserve / release / consume and ATP = on_hand - reserved - safety_stock.
  {
    api.Write("/v1/receipts", Receipt(kSafety, kBinB1, 20));
    v1::Atp atp = api.Atp(kSafety);
    CHECK(atp.on_hand() == 20);
    CHECK(atp.safety_stock() == kSafetyStock);
    CHECK(atp.available() == 15);

    auto res = api.Write("/v1/reservations", Reserve(kSafety, "SO-1", 10));
    CHECK(res.movements(0).type() == v1::RESERVE);
    CHECK(res.atp().reserved() == 10);
    CHECK(res.atp().available() == 5);

    auto over = api.Post("/v1/reservations", Json(Reserve(kSafety, "SO-2", 6)));
    CHECK(over.status == 409);
    CHECK(Parse<v1::ErrorBody>(over.body).error().code() == "FAILED_PRECONDITION");

    // depotctl reserve adds to the same reservation.
    auto ctl_res = Parse<v1::OperationResult>(
        CtlOk(*node, {"reserve", "--sku", kSafety, "--ref", "SO-1", "--qty", "2"}));
    CHECK(ctl_res.atp().reserved() == 12);
    CHECK(ctl_res.atp().available() == 3);

    v1::ReleaseRequest rel;
    rel.set_sku(kSafety);
    rel.set_reference("SO-1");
    rel.set_quantity(4);
    res = api.Write("/v1/reservations/release", rel);
    CHECK(res.movements(0).type() == v1::RELEASE);
    CHECK(res.atp().reserved() == 8);
    CHECK(res.atp().available() == 7);

    v1::ConsumeRequest con;
    con.set_sku(kSafety);
    con.set_reference("SO-1");
    con.set_quantity(5);
    res = api.Write("/v1/reservations/consume", con);
    REQUIRE(res.movements_size() == 1);
    CHECK(res.movements(0).type() == v1::CONSUME);
    CHECK(res.movements(0).bin() == kBinB1);
    CHECK(res.atp().on_hand() == 15);
    CHECK(res.atp().reserved() == 3);
    CHECK(res.atp().available() == 7);

    auto open = api.GetOk<v1::ReservationsResponse>(absl::StrCat("/v1/reservations?sku=", kSafety));
    REQUIRE(open.reservations_size() == 1);
    CHECK(open.reservations(0).reference() == "SO-1");
    CHECK(open.reservations(0).quantity() == 3);
    CHECK(Parse<v1::ReservationsResponse>(CtlOk(*node, {"reservations", "--sku", kSafety}))
              .reservations_size() == 1);

    // depotctl release without --qty releases everything still open.
    auto all = Parse<v1::OperationResult>(
        CtlOk(*node, {"release", "--sku", kSafety, "--ref", "SO-1"}));
    CHECK(all.movements(0).quantity() == 3);
    CHECK(all.atp().reserved() == 0);
    CHECK(all.atp().available() == 10);
    CHECK(api.GetOk<v1::ReservationsResponse>(absl::StrCat("/v1/reservations?sku=", kSafety))
              .reservations_size() == 0);

    auto two = api.GetOk<v1::AtpResponse>(absl::StrCat("/v1/atp?skus=", kSafety, ",", kPlain));
    REQUIRE(two.items_size() == 2);
    CHECK(two.items(0).sku() == kSafety);
    CHECK(two.items(0).available() == 10);
    CHECK(two.items(1).sku() == kPlain);
    CHECK(two.items(1).available() == 96);
    auto ctl_atp = Parse<v1::AtpResponse>(CtlOk(*node, {"atp", kSafety, kPlain}));
    CHECK(ctl_atp.items_size() == 2);
  }

  // FEFO: the earliest expiry is drawn first, regardless of bin walk order.
  {
    CtlOk(*node, {"receive", "--sku", kLot, "--bin", kBinA1, "--qty", "10", "--lot", "L-LATE",
                  "--expiry", "2091-06-30", "--reference", "PO-MILK"});
    v1::ReceiptRequest early = Receipt(kLot, kBinB1, 4);
    early.set_lot("L-EARLY");
    early.set_expiry("2090-01-31");
    api.Write("/v1/receipts", early);
    v1::ReceiptRequest mid = Receipt(kLot, kBinA2, 3);
    mid.set_lot("L-MID");
    mid.set_expiry("2090-06-15");
    api.Write("/v1/receipts", mid);

    api.Write("/v1/reservations", Reserve(kLot, "SO-3", 6));
    auto res = Parse<v1::OperationResult>(
        CtlOk(*node, {"consume", "--sku", kLot, "--ref", "SO-3", "--qty", "6"}));
    REQUIRE(res.movements_size() == 2);
    const auto& first = res.movements(0);
    const auto& second = res.movements(1);
    CHECK(first.type() == v1::CONSUME);
    CHECK(first.lot() == "L-EARLY");
    CHECK(first.bin() == kBinB1);
    // Like RECEIPT, MOVE, ADJUSTMENT and SCRAP rows, CONSUME rows carry their lot's expiry.
    CHECK(first.expiry() == "2090-01-31");
    CHECK(second.expiry() == "2090-06-15");
    CHECK(first.quantity() == 4);
    CHECK(second.lot() == "L-MID");
    CHECK(second.bin() == kBinA2);
    CHECK(second.quantity() == 2);
    CHECK(second.seq() == first.seq() + 1);
    CHECK(second.op_seq() == first.seq());
    CHECK(first.op_seq() == first.seq());
    CHECK(res.atp().on_hand() == 11);
    CHECK(res.atp().reserved() == 0);
    auto st = api.Stock(kLot);
    CHECK(OnHand(st) == std::map<std::string, int64_t>{{"A-01/L-LATE", 10}, {"A-02/L-MID", 1}});
    for (const auto& b : st.balances()) {
      if (b.lot() == "L-LATE") CHECK(b.expiry() == "2091-06-30");
    }
  }

  // Serials: received, moved and consumed by serial number.
  {
    auto rec = Parse<v1::OperationResult>(
        CtlOk(*node, {"receive", "--sku", kSerial, "--bin", kBinA1, "--qty", "2", "--serial",
                      "SN-1", "--serial", "SN-2"}));
    REQUIRE(rec.movements(0).serials_size() == 2);
    CHECK(rec.movements(0).serials(0) == "SN-1");
    v1::MoveRequest mv;
    mv.set_sku(kSerial);
    mv.set_from_bin(kBinA1);
    mv.set_to_bin(kBinA2);
    mv.set_quantity(1);
    mv.add_serials("SN-1");
    api.Write("/v1/moves", mv);
    api.Write("/v1/reservations", Reserve(kSerial, "SO-4", 1));
    auto con = Parse<v1::OperationResult>(CtlOk(
        *node, {"consume", "--sku", kSerial, "--ref", "SO-4", "--qty", "1", "--serial", "SN-2"}));
    REQUIRE(con.movements_size() == 1);
    CHECK(con.movements(0).bin() == kBinA1);
    CHECK(con.movements(0).serials(0) == "SN-2");
    CHECK(OnHand(api.Stock(kSerial)) == std::map<std::string, int64_t>{{"A-02/", 1}});
  }

  // allow_negative: scrapping stock that is not there is allowed.
  {
    v1::ScrapRequest s;
    s.set_sku(kNegative);
    s.set_bin(kBinA1);
    s.set_quantity(3);
    api.Write("/v1/scraps", s);
    CHECK(OnHand(api.Stock(kNegative)) == std::map<std::string, int64_t>{{"A-01/", -3}});
    CHECK(api.Atp(kNegative).on_hand() == -3);
  }

  // Stock by bin.
  {
    auto st = api.GetOk<v1::StockResponse>(absl::StrCat("/v1/stock?bin=", kBinA1));
    CHECK(OnHand(st, /*with_sku=*/true) ==
          std::map<std::string, int64_t>{{"BOLT-M8/A-01/", -3},
                                         {"MILK-1L/A-01/L-LATE", 10},
                                         {"WIDGET-1/A-01/", 63}});
    auto ctl = Parse<v1::StockResponse>(CtlOk(*node, {"stock", "--bin", kBinA1}));
    CHECK(OnHand(ctl, true) == OnHand(st, true));
  }

  // Movement history: filters.
  const uint64_t last_seq = api.LastSeq();
  {
    auto plain = api.AllMovements(absl::StrCat("sku=", kPlain));
    REQUIRE(plain.size() == 8);  // receipt, move, 5 adjustments, scrap
    for (size_t i = 1; i < plain.size(); ++i) CHECK(plain[i].seq() > plain[i - 1].seq());
    CHECK(api.AllMovements(absl::StrCat("sku=", kPlain, "&bin=", kBinA2)).size() == 4);
    auto adj = api.AllMovements("type=adjustment");
    CHECK(adj.size() == 5);
    for (const auto& m : adj) CHECK(m.type() == v1::ADJUSTMENT);
    CHECK(api.AllMovements("type=CONSUME").size() == 4);  // 1 soap, 2 milk rows, 1 phone
    CHECK(api.AllMovements(absl::StrCat("type=consume&sku=", kLot)).size() == 2);
    auto alice = api.AllMovements("operator=alice");
    REQUIRE(alice.size() == 1);
    CHECK(alice[0].reference() == "PO-1");
    auto bob = api.AllMovements("operator=bob");
    CHECK(bob.size() == 5);
    auto ctl_rows = api.AllMovements(absl::StrCat("operator=", kCtlOperator));
    // move, reserve, release, receive (lot), 2 consume rows, receive (serial), consume.
    CHECK(ctl_rows.size() == 8);
    auto po1 = api.AllMovements("reference=PO-1");
    REQUIRE(po1.size() == 1);
    CHECK(po1[0].seq() == 1);
    CHECK(api.AllMovements(absl::StrCat("lot=L-EARLY")).size() == 2);  // receipt + consume

    auto bad = api.Get("/v1/movements?type=teleport");
    CHECK(bad.status == 400);
    CHECK(Parse<v1::ErrorBody>(bad.body).error().code() == "INVALID_ARGUMENT");
    CHECK(api.Get("/v1/movements?limit=0").status == 400);
    CHECK(api.Get("/v1/movements?limit=1001").status == 400);
  }
  // Paging: small pages until exhausted yield every seq exactly once, in order.
  {
    auto all = api.AllMovements("", 4);
    REQUIRE(all.size() == last_seq);
    for (size_t i = 0; i < all.size(); ++i) CHECK(all[i].seq() == i + 1);
    auto first = api.GetOk<v1::MovementsResponse>("/v1/movements?limit=3");
    REQUIRE(first.movements_size() == 3);
    CHECK(first.next_after_seq() == 3);
    auto plain_pages = api.AllMovements(absl::StrCat("sku=", kPlain), 3);
    CHECK(plain_pages.size() == 8);
    auto tail = api.GetOk<v1::MovementsResponse>(
        absl::StrCat("/v1/movements?after_seq=", last_seq - 1, "&limit=5"));
    CHECK(tail.movements_size() == 1);
    CHECK(tail.next_after_seq() == 0);
    auto ctl_page = Parse<v1::MovementsResponse>(
        CtlOk(*node, {"history", "--sku", kPlain, "--type", "adjustment", "--limit", "2"}));
    REQUIRE(ctl_page.movements_size() == 2);
    CHECK(ctl_page.next_after_seq() == ctl_page.movements(1).seq());
    auto ctl_by = Parse<v1::MovementsResponse>(CtlOk(*node, {"history", "--by", "alice"}));
    CHECK(ctl_by.movements_size() == 1);
  }

  // Status, health, metrics.
  {
    auto st = api.GetOk<v1::NodeStatus>("/v1/status");
    CHECK(st.node_id() == "node-happy");
    CHECK(st.epoch() > 0);
    CHECK(st.last_seq() == last_seq);
    CHECK(st.outbox_depth() == last_seq);  // no central acknowledged anything
    CHECK(st.hlc() > 0);
    CHECK_FALSE(st.version().empty());
    auto last = api.GetOk<v1::MovementsResponse>(
        absl::StrCat("/v1/movements?after_seq=", last_seq - 1));
    REQUIRE(last.movements_size() == 1);
    CHECK(st.hlc() >= last.movements(0).hlc());
    CHECK(Parse<v1::NodeStatus>(CtlOk(*node, {"status"})).last_seq() == last_seq);

    auto health = api.Get("/healthz");
    CHECK(health.status == 200);
    CHECK(health.body.find("ok") != std::string::npos);

    auto metrics = api.Get("/metrics");
    REQUIRE(metrics.status == 200);
    const std::string& text = metrics.body;
    for (const char* name : {"depot_http_requests_total", "depot_http_request_duration_seconds",
                             "depot_ledger_movements", "depot_outbox_depth"}) {
      INFO(name);
      CHECK(text.find(name) != std::string::npos);
    }
    CHECK(MetricValue(text, "depot_ledger_movements") == static_cast<double>(last_seq));
    CHECK(MetricValue(text, "depot_outbox_depth") == static_cast<double>(last_seq));
    auto receipts_201 = MetricValue(text, "depot_http_requests_total",
                                    {{"route", "/v1/receipts"}, {"code", "201"}});
    REQUIRE(receipts_201.has_value());
    CHECK(*receipts_201 >= 4);  // PO-1, soap, 2 milk lots (depotctl receipts add more)
    CHECK(MetricValue(text, "depot_http_request_duration_seconds_count",
                      {{"route", "/v1/receipts"}})
              .value_or(0) >= *receipts_201);
  }

  // Verify: stored balances equal the ones recomputed from the movements.
  {
    auto v = api.GetOk<v1::VerifyResponse>("/v1/verify");
    CHECK(v.ok());
    CHECK(v.movements() == last_seq);
    CHECK(v.differences_size() == 0);
    ProcessResult r = Ctl(*node, {"verify"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.err.find("verify: ok") != std::string::npos);
  }
  CHECK(node->Stop() == 0);
}

// ---------------------------------------------------------------------------------------------

struct RaceResult {
  int64_t quantity = 0;
  int status = 0;       // 0: transport failure
  std::string body;
};

// threads x per_thread reservations of sku, released at once from a barrier; quantity(t, i) says
// how much each asks for. Every thread has its own curl client.
std::vector<RaceResult> RaceReservations(const NodeProcess& node, const std::string& sku,
                                         int threads, int per_thread,
                                         int64_t (*quantity)(int, int)) {
  std::vector<std::vector<RaceResult>> results(threads);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> workers;
  const std::string url = node.url() + "/v1/reservations";
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      auto client = http::NewCurlClient(milliseconds(20000));
      // Warm up the keep-alive connection so the race is between requests, not connects.
      (void)client->Send("GET", node.url() + "/healthz");
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < per_thread; ++i) {
        RaceResult rr;
        rr.quantity = quantity(t, i);
        auto r = client->Send(
            "POST", url,
            Json(Reserve(sku, absl::StrCat("RACE-", t, "-", i), rr.quantity)),
            {{"X-Depot-Operator", absl::StrCat("racer-", t)}});
        if (r.ok()) {
          rr.status = r->status;
          rr.body = std::move(r->body);
        } else {
          rr.body = r.status().ToString();
        }
        results[t].push_back(std::move(rr));
      }
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  go.store(true);
  for (auto& w : workers) w.join();
  std::vector<RaceResult> all;
  for (auto& v : results) all.insert(all.end(), v.begin(), v.end());
  return all;
}

TEST_CASE("concurrent reservations never over-reserve", "[integration]") {
  const std::string dir = TestDir("depot-it-race-");
  auto node = StartNode(dir, "node-race");
  Api api(*node);
  ImportSample(*node, dir);

  SECTION("unit reservations: exactly the available ones succeed") {
    constexpr int kAvailable = 25;
    api.Write("/v1/receipts", Receipt(kPlain, kBinA1, kAvailable));
    auto results = RaceReservations(*node, kPlain, 8, 10, [](int, int) -> int64_t {
      return 1;
    });
    REQUIRE(results.size() == 80);
    int ok = 0, refused = 0;
    for (const auto& r : results) {
      INFO(r.status << " " << r.body);
      if (r.status == 201) {
        ++ok;
        continue;
      }
      REQUIRE(r.status == 409);
      ++refused;
      auto err = Parse<v1::ErrorBody>(r.body);
      CHECK(err.error().code() == "FAILED_PRECONDITION");
      CHECK_FALSE(err.error().message().empty());
    }
    CHECK(ok == kAvailable);
    CHECK(refused == 80 - kAvailable);
    v1::Atp atp = api.Atp(kPlain);
    CHECK(atp.available() == 0);
    CHECK(atp.reserved() == kAvailable);
    CHECK(api.GetOk<v1::ReservationsResponse>(absl::StrCat("/v1/reservations?sku=",
                                                           kPlain))
              .reservations_size() == kAvailable);
    CHECK(api.LastSeq() == 1 + kAvailable);
  }

  SECTION("mixed quantities: no over-reservation and nothing wrongly refused") {
    constexpr int64_t kAvailable = 40;
    // Safety stock is held back: receive kAvailable + safety stock.
    api.Write("/v1/receipts",
              Receipt(kSafety, kBinA1, kAvailable + kSafetyStock));
    REQUIRE(api.Atp(kSafety).available() == kAvailable);
    // Demand 8 x 12 requests of 1..3 units (192 units) far exceeds supply.
    auto results = RaceReservations(*node, kSafety, 8, 12, [](int t, int i) -> int64_t {
      return 1 + (t + i) % 3;
    });
    REQUIRE(results.size() == 96);
    int64_t reserved = 0, min_refused = INT64_MAX;
    int ok = 0;
    for (const auto& r : results) {
      INFO(r.status << " " << r.body);
      if (r.status == 201) {
        reserved += r.quantity;
        ++ok;
        auto res = Parse<v1::OperationResult>(r.body);
        CHECK(res.atp().available() >= 0);
        continue;
      }
      REQUIRE(r.status == 409);
      CHECK(Parse<v1::ErrorBody>(r.body).error().code() == "FAILED_PRECONDITION");
      min_refused = std::min(min_refused, r.quantity);
    }
    v1::Atp atp = api.Atp(kSafety);
    INFO("reserved " << reserved << " in " << ok << " requests, ATP left " << atp.available()
                     << ", smallest refused " << min_refused);
    CHECK(reserved <= kAvailable);
    CHECK(atp.reserved() == reserved);
    CHECK(atp.available() == kAvailable - reserved);
    CHECK(atp.available() >= 0);
    // Each refusal saw ATP < its quantity and ATP only fell since.
    CHECK(atp.available() < min_refused);
    // With this much demand, unit requests are refused after supply ran out: all of it is taken.
    CHECK(min_refused == 1);
    CHECK(reserved == kAvailable);
  }

  auto v = api.GetOk<v1::VerifyResponse>("/v1/verify");
  CHECK(v.ok());
  CHECK(Ctl(*node, {"verify"}).exit_code == 0);
}

// ---------------------------------------------------------------------------------------------

// A TCP connection to 127.0.0.1:port that sends raw bytes (closed on destruction).
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawConnection() {
    if (fd_ >= 0) close(fd_);
  }
  bool Send(std::string_view bytes) {
    return connected_ && send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
                             static_cast<ssize_t>(bytes.size());
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

TEST_CASE("bad input is refused with a JSON error and changes nothing", "[integration]") {
  const std::string dir = TestDir("depot-it-bad-");
  auto node = StartNode(dir, "node-bad", {"--max-body", "4096"});
  Api api(*node);
  ImportSample(*node, dir);

  api.Write("/v1/receipts", Receipt(kPlain, kBinA1, 10));
  v1::ReceiptRequest lot = Receipt(kLot, kBinA1, 5);
  lot.set_lot("L-1");
  lot.set_expiry("2090-01-01");
  api.Write("/v1/receipts", lot);
  v1::ReceiptRequest serial = Receipt(kSerial, kBinA1, 1);
  serial.add_serials("SN-1");
  api.Write("/v1/receipts", serial);
  api.Write("/v1/reservations", Reserve(kPlain, "R-1", 2));

  // Unknown master data.
  ExpectRejected(api, "POST", "/v1/receipts", Json(Receipt("NO-SUCH-SKU", kBinA1, 1)), 404,
                 "NOT_FOUND");
  ExpectRejected(api, "POST", "/v1/receipts", Json(Receipt(kPlain, "Z-99", 1)), 404, "NOT_FOUND");
  ExpectRejected(api, "POST", "/v1/reservations", Json(Reserve("NO-SUCH-SKU", "R-9", 1)), 404,
                 "NOT_FOUND");
  {
    v1::MoveRequest mv;
    mv.set_sku(kPlain);
    mv.set_from_bin(kBinA1);
    mv.set_to_bin("Z-99");
    mv.set_quantity(1);
    ExpectRejected(api, "POST", "/v1/moves", Json(mv), 404, "NOT_FOUND");
  }

  // Quantities.
  ExpectRejected(api, "POST", "/v1/receipts", Json(Receipt(kPlain, kBinA1, 0)), 400,
                 "INVALID_ARGUMENT");
  ExpectRejected(api, "POST", "/v1/receipts", Json(Receipt(kPlain, kBinA1, -5)), 400,
                 "INVALID_ARGUMENT");
  ExpectRejected(api, "POST", "/v1/reservations", Json(Reserve(kPlain, "R-2", 0)), 400,
                 "INVALID_ARGUMENT");
  ExpectRejected(api, "POST", "/v1/reservations", Json(Reserve(kPlain, "R-2", -1)), 400,
                 "INVALID_ARGUMENT");
  {
    v1::ScrapRequest s;
    s.set_sku(kPlain);
    s.set_bin(kBinA1);
    s.set_quantity(0);
    ExpectRejected(api, "POST", "/v1/scraps", Json(s), 400, "INVALID_ARGUMENT");
  }
  ExpectRejected(api, "POST", "/v1/adjustments", Json(Adjust(kPlain, kBinA1, 0, "count")), 400,
                 "INVALID_ARGUMENT");
  // Stock that is not there.
  {
    v1::ScrapRequest s;
    s.set_sku(kPlain);
    s.set_bin(kBinA1);
    s.set_quantity(11);
    ExpectRejected(api, "POST", "/v1/scraps", Json(s), 409, "FAILED_PRECONDITION");
  }

  // Lots and serials.
  ExpectRejected(api, "POST", "/v1/receipts", Json(Receipt(kLot, kBinA1, 1)), 400,
                 "INVALID_ARGUMENT");  // lot missing
  {
    v1::ReceiptRequest no_expiry = Receipt(kLot, kBinA1, 1);
    no_expiry.set_lot("L-NEW");
    ExpectRejected(api, "POST", "/v1/receipts", Json(no_expiry), 400, "INVALID_ARGUMENT");
    v1::ReceiptRequest lot_on_plain = Receipt(kPlain, kBinA1, 1);
    lot_on_plain.set_lot("L-1");
    ExpectRejected(api, "POST", "/v1/receipts", Json(lot_on_plain), 400, "INVALID_ARGUMENT");
  }
  ExpectRejected(api, "POST", "/v1/receipts", Json(Receipt(kSerial, kBinA1, 2)), 400,
                 "INVALID_ARGUMENT");  // serials missing
  {
    v1::ReceiptRequest extra = Receipt(kSerial, kBinA1, 1);
    extra.add_serials("SN-7");
    extra.add_serials("SN-8");
    ExpectRejected(api, "POST", "/v1/receipts", Json(extra), 400, "INVALID_ARGUMENT");
    v1::ReceiptRequest twice = Receipt(kSerial, kBinA1, 2);
    twice.add_serials("SN-7");
    twice.add_serials("SN-7");
    ExpectRejected(api, "POST", "/v1/receipts", Json(twice), 400, "INVALID_ARGUMENT");
    v1::ReceiptRequest serial_on_plain = Receipt(kPlain, kBinA1, 1);
    serial_on_plain.add_serials("SN-9");
    ExpectRejected(api, "POST", "/v1/receipts", Json(serial_on_plain), 400, "INVALID_ARGUMENT");
    v1::ReceiptRequest dup = Receipt(kSerial, kBinA2, 1);
    dup.add_serials("SN-1");  // already in stock in A-01
    ExpectRejected(api, "POST", "/v1/receipts", Json(dup), 409, "FAILED_PRECONDITION");
  }

  // Malformed requests.
  ExpectRejected(api, "POST", "/v1/receipts", R"({"sku":"WIDGET-1","bin":"A-01","quantity":)",
                 400, "INVALID_ARGUMENT");
  ExpectRejected(api, "POST", "/v1/receipts", "not json at all", 400, "INVALID_ARGUMENT");
  ExpectRejected(api, "POST", "/v1/receipts",
                 R"({"sku":"WIDGET-1","bin":"A-01","quantity":1,"colour":"red"})", 400,
                 "INVALID_ARGUMENT");
  ExpectRejected(api, "POST", "/v1/receipts",
                 R"({"sku":"WIDGET-1","bin":"A-01","quantity":"lots"})", 400,
                 "INVALID_ARGUMENT");
  ExpectRejected(api, "POST", "/v1/receipts", Json(Receipt(kPlain, kBinA1, 1)), 401,
                 "UNAUTHENTICATED", /*op=*/"");
  ExpectRejected(api, "POST", "/v1/receipts", Json(Receipt(kPlain, kBinA1, 1)), 401,
                 "UNAUTHENTICATED", std::string(65, 'o'));
  {
    v1::ReceiptRequest big = Receipt(kPlain, kBinA1, 1);
    big.set_reference(std::string(10 * 1024, 'x'));
    ExpectRejected(api, "POST", "/v1/receipts", Json(big), 413, "RESOURCE_EXHAUSTED");
  }
  ExpectRejected(api, "GET", "/v1/teleport", "", 404, "NOT_FOUND");
  ExpectRejected(api, "POST", "/v1/teleport", Json(Receipt(kPlain, kBinA1, 1)), 404, "NOT_FOUND");
  ExpectRejected(api, "GET", "/v1/receipts", "", 405, "METHOD_NOT_ALLOWED");
  ExpectRejected(api, "PUT", "/v1/receipts", Json(Receipt(kPlain, kBinA1, 1)), 405,
                 "METHOD_NOT_ALLOWED");
  ExpectRejected(api, "DELETE", "/v1/stock", "", 405, "METHOD_NOT_ALLOWED");
  ExpectRejected(api, "POST", "/v1/status", "", 405, "METHOD_NOT_ALLOWED");

  // Reservations.
  {
    v1::ReleaseRequest rel;
    rel.set_sku(kPlain);
    rel.set_reference("R-1");
    rel.set_quantity(3);  // only 2 reserved
    ExpectRejected(api, "POST", "/v1/reservations/release", Json(rel), 409,
                   "FAILED_PRECONDITION");
    v1::ConsumeRequest con;
    con.set_sku(kPlain);
    con.set_reference("R-1");
    con.set_quantity(3);
    ExpectRejected(api, "POST", "/v1/reservations/consume", Json(con), 409,
                   "FAILED_PRECONDITION");
    rel.set_reference("R-UNKNOWN");
    rel.set_quantity(1);
    ExpectRejected(api, "POST", "/v1/reservations/release", Json(rel), 404, "NOT_FOUND");
    ExpectRejected(api, "POST", "/v1/reservations", Json(Reserve(kPlain, "R-3", 9)), 409,
                   "FAILED_PRECONDITION");  // 10 on hand, 2 reserved
  }

  // Adjustment reason codes and signs.
  ExpectRejected(api, "POST", "/v1/adjustments", Json(Adjust(kPlain, kBinA1, -1, "found")), 400,
                 "INVALID_ARGUMENT");
  ExpectRejected(api, "POST", "/v1/adjustments", Json(Adjust(kPlain, kBinA1, 1, "damaged")), 400,
                 "INVALID_ARGUMENT");
  ExpectRejected(api, "POST", "/v1/adjustments", Json(Adjust(kPlain, kBinA1, 1, "gift")), 400,
                 "INVALID_ARGUMENT");

  // Idempotency: the same content replays, different content under the same key is refused.
  {
    v1::ReceiptRequest first = Receipt(kPlain, kBinA2, 7);
    first.set_request_id("req-42");
    first.set_reference("PO-42");
    auto applied = api.Write("/v1/receipts", first);
    const uint64_t seq = applied.movements(0).seq();
    const uint64_t last = api.LastSeq();
    CHECK(applied.movements(0).request_id() == "req-42");

    auto again = api.Post("/v1/receipts", Json(first));
    REQUIRE(again.status == 200);
    auto replay = Parse<v1::OperationResult>(again.body);
    CHECK(replay.replayed());
    REQUIRE(replay.movements_size() == 1);
    CHECK(replay.movements(0).seq() == seq);
    CHECK(replay.movements(0).quantity() == 7);
    CHECK(api.LastSeq() == last);

    v1::ReceiptRequest other = first;
    other.set_quantity(8);
    ExpectRejected(api, "POST", "/v1/receipts", Json(other), 409, "ALREADY_EXISTS");
    // The key is global: another operation type under it is different content too.
    v1::ReserveRequest res = Reserve(kPlain, "R-42", 1);
    res.set_request_id("req-42");
    ExpectRejected(api, "POST", "/v1/reservations", Json(res), 409, "ALREADY_EXISTS");
    CHECK(api.AllMovements("reference=PO-42").size() == 1);
  }

  // A half-sent request does not stop other clients from being served.
  {
    const uint64_t before = api.LastSeq();
    std::vector<std::unique_ptr<RawConnection>> stalled;
    for (int i = 0; i < 4; ++i) {  // more than the node's I/O threads
      stalled.push_back(std::make_unique<RawConnection>(node->port()));
      REQUIRE(stalled.back()->Send(
          "POST /v1/receipts HTTP/1.1\r\nHost: x\r\nX-Depot-Operator: staller\r\n"
          "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"));
    }
    const auto start = SteadyClock::now();
    for (int i = 0; i < 4; ++i) {
      auto fresh = http::NewCurlClient(milliseconds(3000));  // new connection each time
      auto h = fresh->Send("GET", node->url() + "/healthz");
      REQUIRE(h.ok());
      CHECK(h->status == 200);
      auto w = fresh->Send("POST", node->url() + "/v1/receipts",
                           Json(Receipt(kPlain, kBinA2, 1)), {{"X-Depot-Operator", "other"}});
      REQUIRE(w.ok());
      CHECK(w->status == 201);
    }
    CHECK(SteadyClock::now() - start < std::chrono::seconds(2));
    CHECK(api.LastSeq() == before + 4);
    CHECK(api.AllMovements("operator=staller").empty());
  }

  // depotctl import of a CSV with bad rows: non-zero exit, line numbers named, nothing imported.
  {
    const std::string skus_before = api.Get("/v1/skus").body;
    const std::string bad_skus =
        "code,gtin,name,unit,tracking,expiry_tracked,allow_negative,safety_stock\n"
        "NEW-1,,New one,ea,none,false,false,0\n"            // line 2: fine
        "NEW-2,,Bad tracking,ea,bogus,false,false,0\n"      // line 3: tracking
        "NEW-3,,Fine too,ea,none,false,false,0\n"           // line 4: fine
        "NEW-4,1234567890123,Bad GTIN,ea,none,no,no,0\n"    // line 5: check digit
        "WIDGET-1,,Widget renamed,ea,none,false,false,-2\n";  // line 6: safety stock < 0
    REQUIRE(WriteFile(dir + "/bad-skus.csv", bad_skus).ok());
    ProcessResult r = Ctl(*node, {"import", "skus", dir + "/bad-skus.csv"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("line 3") != std::string::npos);
    CHECK(r.err.find("line 5") != std::string::npos);
    CHECK(r.err.find("line 6") != std::string::npos);
    CHECK(r.err.find("line 2:") == std::string::npos);
    CHECK(r.err.find("line 4:") == std::string::npos);
    CHECK(api.Get("/v1/skus").body == skus_before);

    const std::string bins_before = api.Get("/v1/bins").body;
    REQUIRE(WriteFile(dir + "/bad-bins.csv", "code,zone,walk_order\nC-01,C,40\nC-02,C,far\n").ok());
    r = Ctl(*node, {"import", "bins", dir + "/bad-bins.csv"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("line 3") != std::string::npos);
    CHECK(api.Get("/v1/bins").body == bins_before);

    REQUIRE(WriteFile(dir + "/bad-header.csv", "code,colour\nX-1,red\n").ok());
    CHECK(Ctl(*node, {"import", "skus", dir + "/bad-header.csv"}).exit_code == 1);
    CHECK(api.Get("/v1/skus").body == skus_before);
  }

  CHECK(Ctl(*node, {"verify"}).exit_code == 0);
}

// ---------------------------------------------------------------------------------------------

struct CrashOp {
  enum State { kUnsent, kAcked, kRefused, kUnknown };
  std::string path, body, reference, request_id;
  State state = kUnsent;
  int status = 0;
  std::string answer;
  uint64_t seq = 0;  // of the first movement, when acked
};

TEST_CASE("acknowledged writes survive SIGKILL exactly once", "[integration]") {
  const std::string dir = TestDir("depot-it-crash-");
  auto node = StartNode(dir, "node-crash");
  {
    Api api(*node);
    ImportSample(*node, dir);
    api.Write("/v1/receipts", Receipt(kPlain, kBinB1, 1000000));
  }

  constexpr int kThreads = 4;
  std::vector<std::vector<CrashOp>> ops(kThreads);
  std::atomic<int> acked{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  const std::string url = node->url();
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      auto client = http::NewCurlClient(milliseconds(5000));
      for (int i = 0; !stop.load(); ++i) {
        CrashOp op;
        op.reference = absl::StrCat("CR-", t, "-", i);
        op.request_id = absl::StrCat("rq-", t, "-", i);
        if (i % 4 == 3) {
          v1::ReserveRequest r = Reserve(kPlain, op.reference, 1);
          r.set_request_id(op.request_id);
          op.path = "/v1/reservations";
          op.body = Json(r);
        } else {
          v1::ReceiptRequest r =
              Receipt(kPlain, i % 2 ? kBinA1 : kBinA2, 1 + i % 5);
          r.set_reference(op.reference);
          r.set_request_id(op.request_id);
          op.path = "/v1/receipts";
          op.body = Json(r);
        }
        auto r = client->Send("POST", url + op.path, op.body,
                              {{"X-Depot-Operator", absl::StrCat("crash-", t)}});
        if (!r.ok()) {
          op.state = CrashOp::kUnknown;  // the node died with it in flight (or before)
          op.answer = r.status().ToString();
          ops[t].push_back(std::move(op));
          break;
        }
        op.status = r->status;
        op.answer = r->body;
        if (r->status >= 200 && r->status < 300) {
          v1::OperationResult res;
          if (JsonToMessage(r->body, &res).ok() && res.movements_size() > 0) {
            op.seq = res.movements(0).seq();
          }
          op.state = CrashOp::kAcked;
          acked.fetch_add(1);
        } else {
          op.state = CrashOp::kRefused;
        }
        ops[t].push_back(std::move(op));
      }
    });
  }
  // Let the clients stream for ~1.2 s (and at least until a few dozen writes were acknowledged),
  // then pull the plug.
  const auto start = SteadyClock::now();
  while ((SteadyClock::now() - start < milliseconds(1200) || acked.load() < 40) &&
         SteadyClock::now() - start < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  node->Kill(SIGKILL);
  stop.store(true);
  for (auto& c : clients) c.join();

  int n_acked = 0, n_unknown = 0;
  for (const auto& v : ops) {
    for (const auto& op : v) {
      INFO(op.path << " " << op.body << " -> " << op.status << " " << op.answer);
      REQUIRE(op.state != CrashOp::kRefused);  // nothing here may be refused
      if (op.state == CrashOp::kAcked) {
        ++n_acked;
        REQUIRE(op.seq > 0);
      }
      if (op.state == CrashOp::kUnknown) ++n_unknown;
    }
  }
  INFO(n_acked << " acknowledged, " << n_unknown << " in flight at the kill");
  REQUIRE(n_acked >= 40);
  CHECK(n_unknown <= kThreads);

  // Restart on the same database.
  REQUIRE(node->Start().ok());
  Api api(*node);
  auto before = api.AllMovements();
  const uint64_t last_seq = api.LastSeq();
  REQUIRE(before.size() == last_seq);
  uint64_t max_hlc = 0;
  std::map<std::string, std::vector<v1::Movement>> by_ref;
  for (size_t i = 0; i < before.size(); ++i) {
    CHECK(before[i].seq() == i + 1);
    if (i > 0) CHECK(before[i].hlc() > before[i - 1].hlc());
    max_hlc = std::max<uint64_t>(max_hlc, before[i].hlc());
    by_ref[before[i].reference()].push_back(before[i]);
  }
  for (const auto& v : ops) {
    for (const auto& op : v) {
      INFO(op.reference);
      const auto& found = by_ref[op.reference];
      if (op.state == CrashOp::kAcked) {
        REQUIRE(found.size() == 1);
        CHECK(found[0].seq() == op.seq);
        CHECK(found[0].request_id() == op.request_id);
      } else {
        CHECK(found.size() <= 1);
      }
    }
  }
  CHECK(Ctl(*node, {"verify"}).exit_code == 0);

  // Re-sending every operation with its request_id writes nothing twice.
  size_t sent = 0;
  for (const auto& v : ops) {
    for (const auto& op : v) {
      ++sent;
      auto r = api.Send("POST", op.path, op.body, "crash-retry");
      INFO(op.reference << " -> " << r.status << " " << r.body);
      auto res = Parse<v1::OperationResult>(r.body);
      REQUIRE(res.movements_size() >= 1);
      if (op.state == CrashOp::kAcked || !by_ref[op.reference].empty()) {
        CHECK(r.status == 200);
        CHECK(res.replayed());
        CHECK(res.movements(0).seq() == by_ref[op.reference][0].seq());
      } else {
        CHECK(r.status == 201);  // never applied before the kill
        CHECK_FALSE(res.replayed());
      }
    }
  }
  auto after = api.AllMovements();
  CHECK(after.size() == 1 + sent);  // the initial receipt plus each operation once
  std::map<std::string, int> count;
  for (const auto& m : after) ++count[m.reference()];
  for (const auto& v : ops) {
    for (const auto& op : v) {
      INFO(op.reference);
      CHECK(count[op.reference] == 1);
    }
  }
  ProcessResult verify = Ctl(*node, {"verify"});
  INFO(verify.out << verify.err);
  CHECK(verify.exit_code == 0);

  // The hybrid logical clock never goes back across the restart.
  auto fresh = api.Write("/v1/receipts", Receipt(kPlain, kBinA1, 1));
  CHECK(fresh.movements(0).hlc() > max_hlc);
  CHECK(fresh.movements(0).seq() == after.size() + 1);
  CHECK(api.GetOk<v1::NodeStatus>("/v1/status").hlc() >= fresh.movements(0).hlc());

  // A clean shutdown, then a start under another node id on the same database is refused.
  CHECK(node->Stop() == 0);
  NodeProcess impostor(node->db_path(), "node-impostor");
  absl::Status s = impostor.Start(std::chrono::seconds(10));
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("belongs to node 'node-crash'") != std::string_view::npos);
  ProcessResult direct = RunProcess({kNodeBin, "--db", node->db_path(), "--node-id",
                                     "node-impostor", "--port", "0", "--log-level", "warn"},
                                    {}, std::chrono::seconds(10));
  INFO(direct.out << direct.err);
  CHECK(direct.exit_code != 0);
  CHECK(direct.exit_code != 124);  // it refused, it did not hang
  CHECK(direct.err.find("node-crash") != std::string::npos);
  CHECK(direct.err.find("node-impostor") != std::string::npos);

  // The database is intact for its own node.
  REQUIRE(node->Start().ok());
  Api again(*node);
  CHECK(again.LastSeq() == after.size() + 1);
}

// ---------------------------------------------------------------------------------------------

TEST_CASE("depotctl exit codes", "[integration]") {
  // A bound but not listening socket: connections to it are refused, and no one else can take
  // the port while we hold it.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const std::string dead = absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port));

  for (std::vector<std::string> args :
       {std::vector<std::string>{"status"}, {"verify"}, {"stock", "--sku", "X"},
        {"receive", "--sku", "X", "--bin", "A", "--qty", "1"}}) {
    std::vector<std::string> argv = {kCtlBin, "--node", dead};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult r = RunProcess(argv);
    INFO(absl::StrJoin(args, " ") << " -> " << r.exit_code << " " << r.err);
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("cannot reach") != std::string::npos);
    CHECK(r.out.empty());
  }
  // The node URL from the environment.
  ProcessResult env = RunProcess({kCtlBin, "status"}, {{"DEPOT_NODE", dead}});
  CHECK(env.exit_code == 3);
  CHECK(env.err.find(dead) != std::string::npos);
  close(fd);

  ProcessResult unknown = RunProcess({kCtlBin, "--node", dead, "teleport"});
  INFO(unknown.err);
  CHECK(unknown.exit_code == 2);
  CHECK_FALSE(unknown.err.empty());
  CHECK(RunProcess({kCtlBin}).exit_code == 2);  // no subcommand
  CHECK(RunProcess({kCtlBin, "receive", "--sku", "X"}).exit_code == 2);  // missing options
  CHECK(RunProcess({kCtlBin, "--help"}).exit_code == 0);
}

TEST_CASE("depot-node reads its options from a config file", "[integration]") {
  const std::string dir = TestDir("depot-config-");
  // The same names as the flags; a small body limit makes the option observable.
  REQUIRE(WriteFile(dir + "/node.toml", "max-body = 2048\nsync = \"normal\"\n").ok());
  NodeProcess node(dir + "/node.db", "cfg-node", {"--config", dir + "/node.toml"});
  REQUIRE(node.Start().ok());
  auto client = http::NewCurlClient();
  auto small = client->Send("POST", node.url() + "/v1/receipts", std::string(1000, ' '),
                            {{"X-Depot-Operator", "t"}});
  REQUIRE(small.ok());
  CHECK(small->status == 400);  // parsed (an empty message), refused for its content
  auto big = client->Send("POST", node.url() + "/v1/receipts", std::string(4096, ' '),
                          {{"X-Depot-Operator", "t"}});
  REQUIRE(big.ok());
  CHECK(big->status == 413);
  // A config file with an unknown option is refused at start-up.
  REQUIRE(WriteFile(dir + "/bad.toml", "colour = \"red\"\n").ok());
  ProcessResult bad = RunProcess({kNodeBin, "--db", dir + "/bad.db", "--node-id", "x", "--port",
                                  "0", "--config", dir + "/bad.toml"},
                                 {}, std::chrono::seconds(10));
  CHECK(bad.exit_code != 0);
  CHECK(bad.exit_code != 124);  // refused at once, not killed by the timeout
  CHECK(bad.err.find("colour") != std::string::npos);
}

TEST_CASE("scan: GS1 and EAN barcodes over HTTP and depotctl", "[integration]") {
  const std::string dir = TestDir("depot-scan-");
  auto node = StartNode(dir, "scan-node");
  ImportSample(*node, dir);
  Api api(*node);
  auto enc = [](std::string_view s) {
    static const char* kHex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
      if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) {
        out.push_back(static_cast<char>(c));
      } else {
        out += {'%', kHex[c >> 4], kHex[c & 15]};
      }
    }
    return out;
  };
  auto has = [](const std::string& body, const std::string& part) {
    INFO(body << " should contain " << part);
    CHECK(body.find(part) != std::string::npos);
  };
  // GS1-128 scan data: GTIN of WIDGET-1 (EAN-13 4006381333931 as GTIN-14), expiry, lot.
  auto r = api.Get("/v1/scan?code=" + enc("]C1010400638133393117271200" "10L0T-7\x1d" "2112"));
  REQUIRE(r.status == 200);
  has(r.body, R"("kind":"gs1")");
  has(r.body, R"("gtin":"04006381333931")");
  has(r.body, R"("lot":"L0T-7")");
  has(r.body, R"("serial":"12")");
  has(r.body, R"("expiry":"2027-12-31")");
  has(r.body, R"("sku":"WIDGET-1","skus":["WIDGET-1"])");
  has(r.body, R"({"ai":"17","value":"271200"})");
  // A bare EAN-8 finds the SKU stored with its 8 digits.
  auto e8 = api.Get("/v1/scan?code=96385074");
  REQUIRE(e8.status == 200);
  has(e8.body, R"("format":"EAN-8")");
  has(e8.body, R"("sku":"MILK-1L")");
  // A valid GTIN no SKU has: parsed, no SKU.
  auto none = api.Get("/v1/scan?code=" + enc("(01)09506000134352"));
  REQUIRE(none.status == 200);
  has(none.body, R"("sku":"","skus":[])");
  // Malformed barcodes: 400 INVALID_ARGUMENT naming the fault, nothing changed.
  ExpectRejected(api, "GET", "/v1/scan?code=" + enc("(01)09506000134355"), "", 400,
                 "INVALID_ARGUMENT");
  ExpectRejected(api, "GET", "/v1/scan?code=" + enc("]C110A\x1d\x1d" "21B"), "", 400,
                 "INVALID_ARGUMENT");
  ExpectRejected(api, "GET", "/v1/scan", "", 400, "INVALID_ARGUMENT");
  auto bad = api.Get("/v1/scan?code=" + enc("(17)261332"));
  CHECK(bad.status == 400);
  has(bad.body, "AI 17 at character 1: month 13 is not 01-12");
  CHECK(api.Send("POST", "/v1/scan?code=96385074", "", kDefaultOperator).status == 405);

  // depotctl scan: the same answer; bad input exits 1 with the message.
  has(CtlOk(*node, {"scan", "(01)04006381333931(10)ABC"}), R"("sku":"WIDGET-1")");
  ProcessResult ctl_bad = Ctl(*node, {"scan", "4006381333932"});
  CHECK(ctl_bad.exit_code == 1);
  has(ctl_bad.err, "EAN-13 4006381333932: check digit should be 1, got 2");
  CHECK(ctl_bad.out.empty());
}

TEST_CASE("lots: history, expiry write-off and refused expired receipts over HTTP",
          "[integration][lots]") {
  const std::string dir = TestDir("depot-lots-");
  auto node = StartNode(dir, "lots-node");
  ImportSample(*node, dir);
  Api api(*node);
  // The node judges expiry by its own (real) clock: a lot that expired in 2000 is refused.
  auto old = Receipt(kLot, kBinA1, 2);
  old.set_lot("OLD-1");
  old.set_expiry("2000-01-01");
  const uint64_t seq0 = api.LastSeq();
  ExpectRejected(api, "POST", "/v1/receipts", Json(old), 409, "FAILED_PRECONDITION");
  CHECK(api.LastSeq() == seq0);
  CHECK(api.Get(absl::StrCat("/v1/lots/", kLot, "/OLD-1")).status == 404);

  auto good = Receipt(kLot, kBinA1, 4);
  good.set_lot("GOOD-1");
  good.set_expiry("2099-12-31");
  api.Write("/v1/receipts", good);
  auto lot = api.GetOk<v1::LotResponse>(absl::StrCat("/v1/lots/", kLot, "/GOOD-1"));
  CHECK(lot.expiry() == "2099-12-31");
  CHECK_FALSE(lot.expired());
  CHECK(lot.on_hand() == 4);
  REQUIRE(lot.balances_size() == 1);
  CHECK(lot.balances(0).bin() == kBinA1);
  REQUIRE(lot.movements_size() == 1);
  CHECK(lot.movements(0).type() == v1::RECEIPT);

  // Nothing expired: the write-off answers 201 with nothing written.
  const uint64_t seq1 = api.LastSeq();
  auto r = api.Post("/v1/lots/expire", "{}");
  INFO(r.body);
  REQUIRE(r.status == 201);
  auto result = Parse<v1::OperationResult>(r.body);
  CHECK(result.movements_size() == 0);
  CHECK(result.expired().units() == 0);
  CHECK(api.LastSeq() == seq1);
  CHECK(api.Get("/v1/lots/expire").status == 405);

  ExpectRejected(api, "GET", absl::StrCat("/v1/lots/", kLot, "/NO-SUCH-LOT"), "", 404,
                 "NOT_FOUND");
  ExpectRejected(api, "GET", "/v1/lots/NO-SUCH-SKU/GOOD-1", "", 404, "NOT_FOUND");
  ExpectRejected(api, "GET", absl::StrCat("/v1/lots/", kLot), "", 404, "NOT_FOUND");
  ExpectRejected(api, "GET", absl::StrCat("/v1/lots/", kLot, "/GOOD-1?limit=0"), "", 400,
                 "INVALID_ARGUMENT");

  // depotctl: the same answers.
  std::string out = CtlOk(*node, {"lot", kLot, "GOOD-1"});
  CHECK(out.find(R"("expiry":"2099-12-31")") != std::string::npos);
  CtlOk(*node, {"lots", "expire"});
  CHECK(Ctl(*node, {"lot", kLot, "NO-SUCH-LOT"}).exit_code == 1);
}

}  // namespace
}  // namespace depot::testing
