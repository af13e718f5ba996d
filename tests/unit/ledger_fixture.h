// A node::Ledger on a real SQLite file in a fresh temporary directory, with master data from CSV
// and a manual clock; removed when the test case ends. Shared by the node's unit tests.
#pragma once

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/request_context.h"
#include "node/ledger.h"

namespace depot::testing {

struct LedgerFixture {
  std::string dir;
  std::unique_ptr<node::Ledger> ledger;
  RequestContext ctx;
  ManualClock clock;

  LedgerFixture(const std::string& prefix, const char* skus_csv, const char* bins_csv,
                const std::string& operator_id)
      : ctx{operator_id, "test"} {
    std::string tmpl = "/tmp/" + prefix + "XXXXXX";
    dir = mkdtemp(tmpl.data());
    Reopen();
    REQUIRE(ledger->ImportSkus(skus_csv).ok());
    REQUIRE(ledger->ImportBins(bins_csv).ok());
  }
  ~LedgerFixture() {
    ledger.reset();
    std::filesystem::remove_all(dir);
  }
  // A receipt into bin (lot, expiry and serials as the SKU's tracking needs).
  absl::StatusOr<v1::OperationResult> Receive(const std::string& sku, const std::string& bin,
                                              int64_t qty, const std::string& lot = "",
                                              const std::string& expiry = "",
                                              std::vector<std::string> serials = {}) {
    v1::Operation op;
    auto* r = op.mutable_receipt();
    r->set_sku(sku);
    r->set_bin(bin);
    r->set_quantity(qty);
    r->set_lot(lot);
    r->set_expiry(expiry);
    for (auto& s : serials) r->add_serials(s);
    return ledger->Apply(ctx, op);
  }
  // The ledger's Verify finds no difference (each one is printed when it does).
  void RequireVerified() {
    auto v = ledger->Verify();
    REQUIRE(v.ok());
    for (const auto& d : v->differences()) {
      UNSCOPED_INFO(d.what() << " " << d.key() << " stored " << d.stored() << " recomputed "
                             << d.recomputed());
    }
    REQUIRE(v->ok());
  }
  // Closes and reopens the same database (a restart).
  void Reopen() {
    ledger.reset();
    auto l = node::Ledger::Open({.path = dir + "/node.db", .node_id = "n1", .clock = &clock});
    REQUIRE(l.ok());
    ledger = std::move(*l);
  }
};

}  // namespace depot::testing
