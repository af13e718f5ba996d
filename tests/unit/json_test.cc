#include <catch2/catch.hpp>

#include "common/json.h"
#include "depot/v1/node_api.pb.h"

using depot::JsonToMessage;
using depot::MessageToJson;

TEST_CASE("JSON maps to protobuf with proto field names", "[json]") {
  depot::v1::ReceiptRequest r;
  REQUIRE(JsonToMessage(R"({"sku":"A","bin":"B1","quantity":5,"serials":["s1","s2"]})", &r).ok());
  CHECK(r.sku() == "A");
  CHECK(r.quantity() == 5);
  CHECK(r.serials_size() == 2);
  // 64-bit integers are accepted as strings too.
  REQUIRE(JsonToMessage(R"({"quantity":"7"})", &r).ok());
  CHECK(r.quantity() == 7);
  std::string out = MessageToJson(r);
  CHECK(out.find("\"quantity\":\"7\"") != std::string::npos);
  CHECK(out.find("\"request_id\":\"\"") != std::string::npos);  // zero values printed
}

TEST_CASE("JSON errors: unknown fields, wrong types, malformed text", "[json]") {
  depot::v1::ReceiptRequest r;
  CHECK(JsonToMessage(R"({"sku":"A","colour":"red"})", &r).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(JsonToMessage(R"({"quantity":"many"})", &r).ok());
  CHECK_FALSE(JsonToMessage(R"({"sku":)", &r).ok());
  CHECK_FALSE(JsonToMessage("[1,2]", &r).ok());
  CHECK(JsonToMessage("  ", &r).ok());  // empty body = empty message
}
