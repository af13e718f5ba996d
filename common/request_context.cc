#include "common/request_context.h"

#include "absl/strings/str_cat.h"

namespace depot {

absl::StatusOr<RequestContext> ContextFromOperatorHeader(std::string_view value,
                                                         std::string_view remote) {
  if (value.empty()) {
    return absl::UnauthenticatedError(
        absl::StrCat("missing operator: set the ", std::string(kOperatorHeader), " header"));
  }
  if (value.size() > 64) return absl::UnauthenticatedError("operator longer than 64 characters");
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7E) {
      return absl::UnauthenticatedError("operator must be printable ASCII without spaces");
    }
  }
  return RequestContext{std::string(value), std::string(remote)};
}

}  // namespace depot
