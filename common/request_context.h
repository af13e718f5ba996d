// Who is asking. Every request is turned into a RequestContext at the door (HTTP header today;
// real authentication later) and the ledger records its operator. This is the one seam that
// authentication will replace.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace depot {

struct RequestContext {
  std::string operator_id;  // recorded on every ledger row the request writes
  std::string remote;       // peer address, for logs
};

// Header that names the operator on the local HTTP API.
inline constexpr std::string_view kOperatorHeader = "x-depot-operator";

// Builds a context from the operator header value. Writes need an operator: empty, longer than
// 64 characters or non-printable is Unauthenticated.
absl::StatusOr<RequestContext> ContextFromOperatorHeader(std::string_view value,
                                                         std::string_view remote);

}  // namespace depot
