// JSON <-> protobuf through protobuf's own JSON mapping, so HTTP JSON and gRPC share one schema.
// Field names are the proto names (snake_case); 64-bit integers print as strings (protobuf's
// mapping); numbers and strings are both accepted on input.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace google::protobuf {
class Message;
}

namespace depot {

// Parses JSON into message. Unknown fields, malformed JSON and wrong types are InvalidArgument.
// An empty body parses as an empty message.
absl::Status JsonToMessage(std::string_view json, google::protobuf::Message* message);

// Prints message as compact JSON, zero values included. Uses a reflection-based printer that is
// about ten times faster than protobuf's for the field kinds our API uses, and protobuf's own
// printer for anything else (maps, bytes, floating point, well-known types). Both produce the
// same JSON value (tests/unit/json_test.cc checks them against each other).
std::string MessageToJson(const google::protobuf::Message& message);

// protobuf's own printer with the same options (the reference for MessageToJson).
std::string ProtobufMessageToJson(const google::protobuf::Message& message);

}  // namespace depot
