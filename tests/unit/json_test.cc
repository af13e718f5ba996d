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

TEST_CASE("the fast printer produces the same JSON value as protobuf's printer", "[json]") {
  depot::v1::OperationResult r;
  auto* m = r.add_movements();
  m->set_seq(18446744073709551615ULL);  // largest uint64
  m->set_type(depot::v1::CONSUME);
  m->set_sku("quote \" backslash \\ newline \n tab \t <tag> \x01 caf\xc3\xa9");
  m->set_quantity(-42);
  m->add_serials("S1");
  m->add_serials("S2");
  r.mutable_atp()->set_available(-3);
  depot::v1::VerifyResponse v;  // empty repeated message field, bools
  v.set_ok(true);
  depot::v1::NodeStatus empty;
  for (const google::protobuf::Message* msg :
       std::initializer_list<const google::protobuf::Message*>{&r, &v, &empty}) {
    std::string fast = MessageToJson(*msg);
    std::string reference = depot::ProtobufMessageToJson(*msg);
    std::unique_ptr<google::protobuf::Message> a(msg->New()), b(msg->New());
    REQUIRE(JsonToMessage(fast, a.get()).ok());
    REQUIRE(JsonToMessage(reference, b.get()).ok());
    CHECK(a->SerializeAsString() == msg->SerializeAsString());
    CHECK(b->SerializeAsString() == msg->SerializeAsString());
    // Same keys in the same order: compare after removing string escaping differences.
    auto keys = [](const std::string& s) {
      std::string out;
      for (size_t i = 0; (i = s.find("\":", i)) != std::string::npos; ++i) {
        size_t start = s.rfind('"', i - 1);
        out += s.substr(start, i - start) + ",";
      }
      return out;
    };
    CHECK(keys(fast) == keys(reference));
  }
  // Unset message fields are omitted, zero scalars printed, enums by name.
  depot::v1::OperationResult bare;
  bare.add_movements();
  CHECK(MessageToJson(bare) ==
        R"({"movements":[{"seq":"0","op_seq":"0","hlc":"0","type":"MOVEMENT_TYPE_UNSPECIFIED",)"
        R"("sku":"","bin":"","to_bin":"","lot":"","expiry":"","quantity":"0","serials":[],)"
        R"("reason":"","reference":"","operator_id":"","request_id":""}],"replayed":false})");
}
