// Helpers shared by the integration test files (one binary, integration_tests).
#pragma once

#include <catch2/catch.hpp>
#include <string>

#include "absl/status/status.h"
#include "common/json.h"

namespace depot::testing {

// A new temporary directory for the running test case. It is removed when the test case passes
// and kept (with the databases and logs of every process it ran) when it fails. Main thread only.
std::string TestDir(const std::string& prefix);

// Parses a JSON answer into M, failing the test (with the body) when it does not parse.
template <typename M>
M Parse(const std::string& body) {
  M m;
  absl::Status s = JsonToMessage(body, &m);
  INFO("JSON: " << body);
  INFO("parse error: " << s.ToString());
  REQUIRE(s.ok());
  return m;
}

}  // namespace depot::testing
