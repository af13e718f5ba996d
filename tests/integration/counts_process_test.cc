// Cycle counts against a real depot-node process over loopback HTTP and through depotctl: create
// (blind view), start, movements while counting, submit, supervisor approval and rejection, KPI,
// the ABC rule, and bad input answered with JSON errors that change nothing (SYNC.md invariant 6
// checked on the answers).
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/http_client.h"
#include "common/json.h"
#include "depot/v1/node_api.pb.h"
#include "tests/integration/cluster_util.h"
#include "tests/integration/integration_util.h"
#include "tests/support/test_support.h"

namespace depot::testing {
namespace {

using sample::kBinA1;
using sample::kBinA2;
using sample::kBinB1;
using sample::kPlain;
using sample::kSafety;

class CountApi {
 public:
  explicit CountApi(const NodeProcess& node)
      : base_(node.url()), client_(http::NewCurlClient(std::chrono::milliseconds(10000))) {}

  http::ClientResponse Send(std::string_view method, const std::string& path,
                            const std::string& body, const std::string& op) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!op.empty()) headers.emplace_back("X-Depot-Operator", op);
    auto r = client_->Send(method, base_ + path, body, headers);
    INFO(method << " " << path << ": " << r.status().ToString());
    REQUIRE(r.ok());
    return *r;
  }
  template <typename M>
  M GetOk(const std::string& path) {
    auto r = Send("GET", path, "", "counter");
    INFO("GET " << path << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    return Parse<M>(r.body);
  }
  // A write that must be applied (201), parsed into M.
  template <typename M>
  M PostOk(const std::string& path, const std::string& body, const std::string& op) {
    auto r = Send("POST", path, body, op);
    INFO("POST " << path << " " << body << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == 201);
    return Parse<M>(r.body);
  }
  void Receive(const std::string& sku, const std::string& bin, int64_t q) {
    PostOk<v1::OperationResult>(
        "/v1/receipts", absl::StrCat(R"({"sku":")", sku, R"(","bin":")", bin, R"(","quantity":)", q, "}"),
        "receiver");
  }
  void Move(const std::string& sku, const std::string& from, const std::string& to, int64_t q) {
    PostOk<v1::OperationResult>("/v1/moves",
                                absl::StrCat(R"({"sku":")", sku, R"(","from_bin":")", from,
                                             R"(","to_bin":")", to, R"(","quantity":)", q, "}"),
                                "mover");
  }
  int64_t OnHand(const std::string& sku, const std::string& bin) {
    auto s = GetOk<v1::StockResponse>(absl::StrCat("/v1/stock?sku=", sku));
    for (const auto& b : s.balances()) {
      if (b.bin() == bin) return b.on_hand();
    }
    return 0;
  }
  // Everything a refused request must leave untouched: movements, stock, counts.
  std::string State() {
    std::string out = absl::StrCat(GetOk<v1::NodeStatus>("/v1/status").last_seq(), "\n");
    for (const char* path : {"/v1/stock?sku=WIDGET-1", "/v1/stock?sku=SOAP-250",
                             "/v1/counts?view=supervisor&limit=10000", "/v1/counts/kpi"}) {
      auto r = Send("GET", path, "", "counter");
      REQUIRE(r.status == 200);
      out += r.body + "\n";
    }
    return out;
  }
  // A request that must be refused with status/code and change nothing.
  void Refused(std::string_view method, const std::string& path, const std::string& body,
               int status, const std::string& code, const std::string& op = "counter") {
    INFO(method << " " << path << " " << body);
    const std::string before = State();
    auto r = Send(method, path, body, op);
    INFO("answer: " << r.status << " " << r.body);
    CHECK(r.status == status);
    auto err = Parse<v1::ErrorBody>(r.body);
    CHECK(err.error().code() == code);
    CHECK_FALSE(err.error().message().empty());
    CHECK(State() == before);
  }

 private:
  std::string base_;
  std::unique_ptr<http::Client> client_;
};

std::unique_ptr<NodeProcess> StartCountNode(const std::string& dir,
                                            std::vector<std::string> extra = {}) {
  auto node = std::make_unique<NodeProcess>(dir + "/node.db", "node-counts", std::move(extra));
  absl::Status s = node->Start();
  INFO(s.ToString());
  REQUIRE(s.ok());
  REQUIRE(WriteFile(dir + "/skus.csv", sample::SkusCsv()).ok());
  REQUIRE(WriteFile(dir + "/bins.csv", sample::BinsCsv()).ok());
  for (const char* kind : {"skus", "bins"}) {
    auto r = RunProcess({kCtlBin, "--node", node->url(), "--operator", "admin", "import", kind,
                         absl::StrCat(dir, "/", kind, ".csv")});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
  }
  return node;
}

ProcessResult Ctl(const NodeProcess& node, const std::string& op,
                  const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kCtlBin, "--node", node.url(), "--operator", op};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}
std::string CtlOk(const NodeProcess& node, const std::string& op,
                  const std::vector<std::string>& args) {
  ProcessResult r = Ctl(node, op, args);
  INFO("depotctl " << absl::StrJoin(args, " ") << " -> " << r.exit_code << "\nstdout: " << r.out
                   << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  return r.out;
}

}  // namespace

TEST_CASE("cycle count over HTTP: blind count, floor keeps moving, approval, KPI",
          "[integration][counts]") {
  const std::string dir = TestDir("depot-it-counts-");
  auto node = StartCountNode(dir, {"--count-tolerance-units", "1", "--count-tolerance-percent", "0"});
  CountApi api(*node);
  api.Receive(kPlain, kBinA1, 20);
  api.Receive(kSafety, kBinA1, 8);
  api.Receive(kPlain, kBinB1, 5);

  // Create and start a count of bin A-01: the counter's answer is blind.
  auto created = api.PostOk<v1::CountTask>("/v1/counts",
                                           absl::StrCat(R"({"bin":")", kBinA1, R"(","start":true})"),
                                           "counter");
  const std::string id = created.count_id();
  CHECK(created.blind());
  CHECK(created.tolerance_units() == 1);  // the node's flag
  REQUIRE(created.lines_size() == 2);
  const uint64_t start = created.lines(0).start_seq();
  CHECK(created.lines(0).started());
  // Lines are ordered by SKU within the bin: SOAP-250 then WIDGET-1.
  CHECK(created.lines(0).sku() == kSafety);
  CHECK(created.lines(1).sku() == kPlain);
  for (const auto& l : created.lines()) CHECK_FALSE(l.has_expected());
  auto sup = api.GetOk<v1::CountTask>("/v1/counts/" + id + "?view=supervisor");
  CHECK_FALSE(sup.blind());

  // The floor keeps working while the counter counts.
  api.Receive(kPlain, kBinA1, 4);
  api.Move(kPlain, kBinA1, kBinB1, 2);

  // Counted: 8 SOAP (exact), 15 WIDGET (5 missing at the start): SOAP posts, WIDGET waits.
  auto submitted = api.PostOk<v1::CountTask>(
      "/v1/counts/" + id + "/submit", R"({"lines":[{"line_no":1,"counted":8},{"line_no":2,"counted":15}]})",
      "counter");
  CHECK(submitted.blind());
  CHECK(submitted.lines(0).status() == v1::COUNT_LINE_POSTED);
  CHECK(submitted.lines(1).status() == v1::COUNT_LINE_PENDING_APPROVAL);
  CHECK_FALSE(submitted.lines(1).has_variance());  // blind: absent, not zero
  auto raw = api.Send("GET", "/v1/counts/" + id, "", "counter");
  CHECK(raw.body.find("\"expected\"") == std::string::npos);
  CHECK(raw.body.find("\"variance\"") == std::string::npos);
  CHECK(submitted.status() == v1::COUNT_PENDING_APPROVAL);
  CHECK(api.OnHand(kPlain, kBinA1) == 22);  // nothing posted yet

  // The counter may not approve their own count; the supervisor view shows the variance.
  api.Refused("POST", "/v1/counts/" + id + "/approve", "", 403, "PERMISSION_DENIED");
  auto pending = api.GetOk<v1::CountTask>("/v1/counts/" + id + "?view=supervisor");
  CHECK(pending.lines(1).expected() == 20);
  CHECK(pending.lines(1).variance() == -5);
  auto list = api.GetOk<v1::CountsResponse>("/v1/counts?status=pending_approval");
  REQUIRE(list.counts_size() == 1);
  CHECK(list.counts(0).blind());

  // More movement before approval, then the supervisor approves through depotctl.
  api.Receive(kPlain, kBinA1, 1);
  auto approved = Parse<v1::CountTask>(CtlOk(*node, "sam", {"count", "approve", id}));
  CHECK(approved.status() == v1::COUNT_DONE);
  CHECK(approved.lines(1).reviewed_by() == "sam");
  CHECK(approved.lines(1).adjustment_seq() > 0);
  // Invariant 6: on hand = counted + net movements after the start (+4 -2 +1).
  CHECK(api.OnHand(kPlain, kBinA1) == 15 + 4 - 2 + 1);
  auto adj = api.GetOk<v1::MovementsResponse>(
      absl::StrCat("/v1/movements?sku=", kPlain, "&type=adjustment"));
  REQUIRE(adj.movements_size() == 1);
  CHECK(adj.movements(0).reason() == "count");
  CHECK(adj.movements(0).quantity() == -5);
  CHECK(adj.movements(0).reference() == id);
  CHECK(adj.movements(0).operator_id() == "sam");
  CHECK(adj.movements(0).seq() > start);

  auto kpi = api.GetOk<v1::CountKpi>("/v1/counts/kpi");
  CHECK(kpi.site() == "node-counts");
  CHECK(kpi.lines() == 2);
  CHECK(kpi.within_tolerance() == 1);
  CHECK(kpi.accuracy() == Approx(0.5));
  auto ctl_kpi = Parse<v1::CountKpi>(CtlOk(*node, "sam", {"count", "kpi", "--days", "30"}));
  CHECK(ctl_kpi.lines() == 2);
  auto verify = api.GetOk<v1::VerifyResponse>("/v1/verify");
  CHECK(verify.ok());

  // depotctl: create (by SKU), start, submit, reject, recount.
  auto t2 = Parse<v1::CountTask>(CtlOk(*node, "counter", {"count", "create", "--sku", kSafety}));
  CHECK(t2.blind());
  CHECK_FALSE(t2.lines(0).started());
  CtlOk(*node, "counter", {"count", "start", t2.count_id()});
  auto s2 = Parse<v1::CountTask>(
      CtlOk(*node, "counter", {"count", "submit", t2.count_id(), "--line", "1=3"}));
  CHECK(s2.lines(0).status() == v1::COUNT_LINE_PENDING_APPROVAL);
  auto r2 = Parse<v1::CountTask>(CtlOk(*node, "sam", {"count", "reject", t2.count_id()}));
  CHECK(r2.lines(0).status() == v1::COUNT_LINE_OPEN);
  CHECK(r2.lines(0).recounts() == 1);
  CtlOk(*node, "counter", {"count", "start", t2.count_id()});
  auto s3 = Parse<v1::CountTask>(
      CtlOk(*node, "counter", {"count", "submit", t2.count_id(), "--line", "1=8"}));
  CHECK(s3.status() == v1::COUNT_DONE);
  auto shown = Parse<v1::CountTask>(
      CtlOk(*node, "counter", {"count", "show", t2.count_id(), "--supervisor"}));
  CHECK(shown.lines(0).expected() == 8);

  // The ABC rule over HTTP: every stocked SKU never counted as a whole is due.
  auto gen = api.PostOk<v1::GenerateCountsResult>("/v1/counts/generate", R"({"a_days":7})", "sam");
  CHECK(gen.counts_size() == 1);  // WIDGET-1 (SOAP-250 was just counted as a whole SKU)
  REQUIRE(gen.classes_size() >= 2);
  for (const auto& c : gen.classes()) {
    if (c.sku() == kPlain) CHECK(c.due());
    if (c.sku() == kSafety) CHECK_FALSE(c.due());
  }
}

TEST_CASE("bad cycle-count input is refused with a JSON error and changes nothing",
          "[integration][counts]") {
  const std::string dir = TestDir("depot-it-counts-bad-");
  auto node = StartCountNode(dir);
  CountApi api(*node);
  api.Receive(kPlain, kBinA1, 10);
  api.Receive(kPlain, kBinA2, 10);
  auto t = api.PostOk<v1::CountTask>("/v1/counts",
                                     absl::StrCat(R"({"bin":")", kBinA1, R"(","start":true})"),
                                     "counter");
  const std::string id = t.count_id();

  // A count already open on the bin / on the SKU in it.
  api.Refused("POST", "/v1/counts", absl::StrCat(R"({"bin":")", kBinA1, R"("})"), 409,
              "FAILED_PRECONDITION");
  api.Refused("POST", "/v1/counts", absl::StrCat(R"({"sku":")", kPlain, R"("})"), 409,
              "FAILED_PRECONDITION");
  // Bad scopes and bodies.
  api.Refused("POST", "/v1/counts", "{}", 400, "INVALID_ARGUMENT");
  api.Refused("POST", "/v1/counts", R"({"bin":"NOPE"})", 404, "NOT_FOUND");
  api.Refused("POST", "/v1/counts", R"({"bin":"B-01"})", 409, "FAILED_PRECONDITION");
  api.Refused("POST", "/v1/counts", R"({"bogus":1})", 400, "INVALID_ARGUMENT");
  api.Refused("POST", "/v1/counts", R"({"bin":"A-02"})", 401, "UNAUTHENTICATED", "");
  // Unknown task.
  api.Refused("GET", "/v1/counts/nope", "", 404, "NOT_FOUND");
  api.Refused("POST", "/v1/counts/nope/submit", R"({"lines":[{"line_no":1,"counted":1}]})", 404,
              "NOT_FOUND");
  api.Refused("POST", "/v1/counts/nope/start", "", 404, "NOT_FOUND");
  api.Refused("POST", "/v1/counts/nope/approve", "", 404, "NOT_FOUND", "sam");
  api.Refused("POST", "/v1/counts/" + id + "/frobnicate", "", 404, "NOT_FOUND");
  // Lines not in the task, negative counts, nothing to approve.
  api.Refused("POST", "/v1/counts/" + id + "/submit", R"({"lines":[{"line_no":5,"counted":1}]})",
              400, "INVALID_ARGUMENT");
  api.Refused("POST", "/v1/counts/" + id + "/submit",
              R"({"lines":[{"sku":"WIDGET-1","bin":"A-02","counted":1}]})", 400,
              "INVALID_ARGUMENT");
  api.Refused("POST", "/v1/counts/" + id + "/submit", R"({"lines":[{"line_no":1,"counted":-1}]})",
              400, "INVALID_ARGUMENT");
  api.Refused("POST", "/v1/counts/" + id + "/approve", "", 409, "FAILED_PRECONDITION", "sam");
  api.Refused("GET", "/v1/counts?view=boss", "", 400, "INVALID_ARGUMENT");
  api.Refused("GET", "/v1/counts?status=lost", "", 400, "INVALID_ARGUMENT");
  api.Refused("DELETE", "/v1/counts/" + id, "", 405, "METHOD_NOT_ALLOWED");
  ProcessResult bad = Ctl(*node, "counter", {"count", "submit", id, "--line", "x"});
  CHECK(bad.exit_code == 2);

  // Posted: a second submission is refused; request_id replays answer 200.
  const std::string body = R"({"lines":[{"line_no":1,"counted":10}],"request_id":"sub-1"})";
  auto first = api.Send("POST", "/v1/counts/" + id + "/submit", body, "counter");
  REQUIRE(first.status == 201);
  auto replay = api.Send("POST", "/v1/counts/" + id + "/submit", body, "counter");
  CHECK(replay.status == 200);
  api.Refused("POST", "/v1/counts/" + id + "/submit", R"({"lines":[{"line_no":1,"counted":9}]})",
              409, "FAILED_PRECONDITION");
  api.Refused("POST", "/v1/counts/" + id + "/start", "", 409, "FAILED_PRECONDITION");
  ProcessResult refused = Ctl(*node, "counter", {"count", "start", id});
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("409") != std::string::npos);
}

TEST_CASE("count results reach central exactly once: inventory accuracy per site",
          "[integration][counts]") {
  const std::string dir = TestDir("depot-it-counts-central-");
  auto central = StartCentral(dir);
  ImportMasterData(*central, dir, {"count-a", "count-b"});
  auto a = StartNode(dir, "count-a", *central);
  auto b = StartNode(dir, "count-b", *central);
  Http ha(a->url()), hb(b->url()), hc(central->url());
  WaitForMasterData(ha);
  WaitForMasterData(hb);
  CountApi ca(*a), cb(*b);
  ca.Receive(kPlain, kBinA1, 10);
  cb.Receive(kPlain, kBinA1, 10);
  cb.Receive(kSafety, kBinA1, 10);
  // Site a: one line, exact. Site b: two lines, one 3 off (approved).
  auto ta = ca.PostOk<v1::CountTask>(
      "/v1/counts", absl::StrCat(R"({"bin":")", kBinA1, R"(","start":true})"), "counter");
  ca.PostOk<v1::CountTask>("/v1/counts/" + ta.count_id() + "/submit",
                           R"({"lines":[{"line_no":1,"counted":10}]})", "counter");
  auto tb = cb.PostOk<v1::CountTask>(
      "/v1/counts", absl::StrCat(R"({"bin":")", kBinA1, R"(","start":true})"), "counter");
  cb.PostOk<v1::CountTask>("/v1/counts/" + tb.count_id() + "/submit",
                           R"({"lines":[{"line_no":1,"counted":10},{"line_no":2,"counted":7}]})",
                           "counter");
  cb.PostOk<v1::CountTask>("/v1/counts/" + tb.count_id() + "/approve", "", "sam");

  v1::InventoryAccuracyResponse acc;
  const bool arrived = Eventually(
      [&] {
        acc = hc.GetOk<v1::InventoryAccuracyResponse>("/v1/kpi/inventory-accuracy");
        return acc.total().lines() == 3;
      },
      kConvergeTimeout);
  INFO(MessageToJson(acc));
  REQUIRE(arrived);
  REQUIRE(acc.sites_size() == 2);
  CHECK(acc.sites(0).site() == "count-a");
  CHECK(acc.sites(0).accuracy() == Approx(1.0));
  CHECK(acc.sites(1).site() == "count-b");
  CHECK(acc.sites(1).lines() == 2);
  CHECK(acc.sites(1).within_tolerance() == 1);
  CHECK(acc.sites(1).net_variance() == -3);
  CHECK(acc.total().accuracy() == Approx(2.0 / 3.0));
  // The adjustment reached central's mirror like any movement.
  CHECK(Eventually([&] { return Difference(hc, hb, "count-b").empty(); }, kConvergeTimeout));
  CHECK(CentralOnHand(hc, kPlain, "count-b") == 7);
  // Filters; depotctl.
  auto only = Parse<v1::InventoryAccuracyResponse>(
      CtlCentral(*central, {"central", "accuracy", "--site", "count-a"}));
  REQUIRE(only.sites_size() == 1);
  CHECK(only.sites(0).lines() == 1);
  auto bad = hc.Send("GET", "/v1/kpi/inventory-accuracy?from_ms=x");
  CHECK(bad.status == 400);
}

}  // namespace depot::testing
