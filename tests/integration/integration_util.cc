#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include "tests/integration/integration_util.h"

#include <filesystem>
#include <iostream>
#include <vector>

#include "tests/support/test_support.h"

namespace depot::testing {
namespace {

std::vector<std::string>& TestDirs() {
  static std::vector<std::string> dirs;
  return dirs;
}

class TempDirCleaner : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    for (const auto& dir : TestDirs()) {
      if (stats.totals.assertions.failed == 0) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
      } else {
        std::cerr << "kept " << dir << " for inspection (databases and logs)\n";
      }
    }
    TestDirs().clear();
  }
};
CATCH_REGISTER_LISTENER(TempDirCleaner)

}  // namespace

std::string TestDir(const std::string& prefix) {
  TestDirs().push_back(MakeTempDir(prefix));
  return TestDirs().back();
}

}  // namespace depot::testing
