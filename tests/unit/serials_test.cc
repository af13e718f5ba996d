// Serials across the network (central/serials.h): central's registry of every serial of the
// nodes' movements, fed through ApplyEvents as the sync engine does, its exceptions
// (serial_duplicate, serial_shipped_twice) and the read API (OrderStore::GetSerial and
// GET /v1/serials/{sku}/{serial}).
#include <catch2/catch.hpp>
#include <future>

#include "absl/strings/match.h"
#include "central/http_api.h"
#include "central/serials.h"
#include "common/json.h"
#include "common/metrics.h"
#include "tests/unit/central_fixture.h"

using namespace depot;

namespace {

struct SerialWorld : testing::CentralWorld {
  static v1::Event Mv(v1::MovementType type, const std::string& serial,
                      const std::string& reason = "", const std::string& ref = "",
                      int64_t qty = 1) {
    v1::Event e = Movement(type, "A", qty, ref);
    e.mutable_movement()->set_reason(reason);
    e.mutable_movement()->add_serials(serial);
    return e;
  }
  v1::SerialRecord Serial(const std::string& serial) {
    auto r = store->orders()->GetSerial("A", serial);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    return *r;
  }
  std::vector<v1::ExceptionEntry> Ex(const std::string& kind) { return Exceptions(kind, ""); }
};

// One in-process HTTP call to central's API; waits for the answer.
http::Response Call(central::CentralHttpApi& api, const std::string& method,
                    const std::string& target) {
  http::Request req;
  req.method = method;
  req.target = target;
  req.path = target;
  req.remote = "127.0.0.1:1";
  std::promise<http::Response> p;
  auto f = p.get_future();
  api.Handle(std::move(req), [&p](http::Response r) { p.set_value(std::move(r)); });
  return f.get();
}

}  // namespace

TEST_CASE_METHOD(SerialWorld, "serials: the same serial received at two sites is a duplicate",
                 "[serials]") {
  Apply("S1", Mv(v1::RECEIPT, "SN-1", "po", "PO-1"));
  auto r = Serial("SN-1");
  CHECK(r.state() == "in_stock");
  CHECK(r.site() == "S1");
  CHECK(r.reference() == "PO-1");
  CHECK(Ex("serial_duplicate").empty());

  Apply("S2", Mv(v1::RECEIPT, "SN-1", "po", "PO-2"));
  auto ex = Ex("serial_duplicate");
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].node_id() == "S2");
  CHECK(ex[0].sku() == "A");
  CHECK_THAT(ex[0].message(), Catch::Matchers::Contains("serial 'SN-1' of SKU 'A'") &&
                                  Catch::Matchers::Contains("S1") &&
                                  Catch::Matchers::Contains("S2"));
  r = Serial("SN-1");  // the new site is recorded
  CHECK(r.state() == "in_stock");
  CHECK(r.site() == "S2");

  // A found adjustment at S3 is stock in too.
  Apply("S3", Mv(v1::ADJUSTMENT, "SN-1", "found", "", 1));
  CHECK(Ex("serial_duplicate").size() == 2);
  CHECK(Serial("SN-1").site() == "S3");
}

TEST_CASE_METHOD(SerialWorld, "serials: a serial shipped twice raises serial_shipped_twice",
                 "[serials]") {
  Apply("S1", Mv(v1::RECEIPT, "SN-2", "po"));
  Apply("S1", Mv(v1::CONSUME, "SN-2", "", "F-1"));
  auto r = Serial("SN-2");
  CHECK(r.state() == "shipped");
  CHECK(r.site() == "S1");
  CHECK(r.reference() == "F-1");
  CHECK(Ex("serial_shipped_twice").empty());

  // Received again elsewhere (not as a return), then shipped again.
  Apply("S2", Mv(v1::RECEIPT, "SN-2", "po"));
  CHECK(Ex("serial_duplicate").empty());  // it was not in stock anywhere
  CHECK(Serial("SN-2").state() == "in_stock");
  Apply("S2", Mv(v1::CONSUME, "SN-2", "", "F-2"));
  auto ex = Ex("serial_shipped_twice");
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].node_id() == "S2");
  CHECK(ex[0].sku() == "A");
  CHECK_THAT(ex[0].message(), Catch::Matchers::Contains("serial 'SN-2'") &&
                                  Catch::Matchers::Contains("S1") &&
                                  Catch::Matchers::Contains("F-1") &&
                                  Catch::Matchers::Contains("S2") &&
                                  Catch::Matchers::Contains("F-2"));
  r = Serial("SN-2");
  CHECK(r.state() == "shipped");
  CHECK(r.site() == "S2");
  CHECK(r.reference() == "F-2");
}

TEST_CASE_METHOD(SerialWorld, "serials: a returned serial comes back and may ship again",
                 "[serials]") {
  Apply("S1", Mv(v1::RECEIPT, "SN-3", "po"));
  Apply("S1", Mv(v1::CONSUME, "SN-3", "", "F-1"));
  // Returned at another site and restocked there.
  Apply("S2", Mv(v1::RECEIPT, "SN-3", "return", "R00000001"));
  auto r = Serial("SN-3");
  CHECK(r.state() == "in_stock");
  CHECK(r.site() == "S2");
  CHECK(r.reference() == "R00000001");
  CHECK(r.shipped_site().empty());
  Apply("S2", Mv(v1::CONSUME, "SN-3", "", "F-9"));
  CHECK(Serial("SN-3").state() == "shipped");
  CHECK(Ex("serial_shipped_twice").empty());
  CHECK(Ex("serial_duplicate").empty());
}

TEST_CASE_METHOD(SerialWorld, "serials: a transfer puts a serial in transit, then in stock",
                 "[serials]") {
  Apply("S1", Mv(v1::RECEIPT, "SN-4", "po"));
  Apply("S1", Mv(v1::MOVE, "SN-4"));  // bins only: ignored
  CHECK(Serial("SN-4").state() == "in_stock");
  Apply("S1", Mv(v1::CONSUME, "SN-4", "transfer_out", "T-1"));
  auto r = Serial("SN-4");
  CHECK(r.state() == "in_transit");
  CHECK(r.site() == "S1");
  CHECK(r.reference() == "T-1");
  Apply("S2", Mv(v1::RECEIPT, "SN-4", "transfer_in", "T-1"));
  r = Serial("SN-4");
  CHECK(r.state() == "in_stock");
  CHECK(r.site() == "S2");
  CHECK(Ex("serial_duplicate").empty());
  CHECK(Ex("serial_shipped_twice").empty());
  // A transfer is no shipment: shipping it now is the first.
  Apply("S2", Mv(v1::CONSUME, "SN-4", "", "F-1"));
  CHECK(Ex("serial_shipped_twice").empty());
}

TEST_CASE_METHOD(SerialWorld, "serials: scrap and negative adjustments make a serial gone",
                 "[serials]") {
  Apply("S1", {Mv(v1::RECEIPT, "SN-5", "po"), Mv(v1::RECEIPT, "SN-6", "po")});
  Apply("S1", Mv(v1::SCRAP, "SN-5", "damaged"));
  Apply("S1", Mv(v1::ADJUSTMENT, "SN-6", "lost", "", -1));
  CHECK(Serial("SN-5").state() == "gone");
  CHECK(Serial("SN-6").state() == "gone");
  CHECK(Serial("SN-6").site() == "S1");
  // Found again somewhere else: in stock, no duplicate.
  Apply("S2", Mv(v1::ADJUSTMENT, "SN-6", "found", "", 1));
  CHECK(Serial("SN-6").state() == "in_stock");
  CHECK(Ex("serial_duplicate").empty());
}

TEST_CASE_METHOD(SerialWorld, "serials: the read API answers NotFound for an unknown serial",
                 "[serials]") {
  auto r = store->orders()->GetSerial("A", "NOPE");
  CHECK(r.status().code() == absl::StatusCode::kNotFound);
  Apply("S1", Movement(v1::RECEIPT, "A", 3));  // no serials: nothing recorded
  CHECK(store->orders()->GetSerial("A", "").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE_METHOD(SerialWorld, "serials: a late movement does not undo a newer state",
                 "[serials]") {
  Apply("S1", Mv(v1::RECEIPT, "SN-7", "po"));
  clock.Advance(10 * testing::kSecond);
  Apply("S1", Mv(v1::CONSUME, "SN-7", "transfer_out", "T-2"));
  Apply("S2", Mv(v1::RECEIPT, "SN-7", "transfer_in", "T-2"));
  // An older receipt of S3 arrives after them (S3 synced late): no duplicate, no change.
  v1::Event old = Mv(v1::RECEIPT, "SN-7", "po");
  old.set_hlc(HybridLogicalClock::Pack(NowMs() - 5000, 0));
  Apply("S3", old);
  CHECK(Ex("serial_duplicate").empty());
  CHECK(Serial("SN-7").site() == "S2");
}

TEST_CASE_METHOD(SerialWorld, "serials: GET /v1/serials/{sku}/{serial}", "[serials]") {
  metrics::Registry registry;
  central::CentralHttpApi api(central.get(), &registry);
  Apply("S1", Mv(v1::RECEIPT, "SN 8", "po", "PO-8"));
  auto r = Call(api, "GET", "/v1/serials/A/SN%208");
  INFO(r.body);
  REQUIRE(r.status == 200);
  v1::SerialRecord got;
  REQUIRE(JsonToMessage(r.body, &got).ok());
  CHECK(got.sku() == "A");
  CHECK(got.serial() == "SN 8");
  CHECK(got.state() == "in_stock");
  CHECK(got.site() == "S1");
  CHECK(got.reference() == "PO-8");
  CHECK(Call(api, "GET", "/v1/serials/A/SN-404").status == 404);
  CHECK(Call(api, "GET", "/v1/serials/A").status == 404);
  CHECK(Call(api, "GET", "/v1/serials/A/SN%208/x").status == 404);
  CHECK(Call(api, "POST", "/v1/serials/A/SN%208").status == 405);
}
