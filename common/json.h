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

// Prints message as compact JSON, zero values included.
std::string MessageToJson(const google::protobuf::Message& message);

}  // namespace depot
