// The embedded SQLite implementation of CentralStore (the default backend).
#pragma once

#include <memory>
#include <string>

#include "central/store.h"

namespace depot::central {

struct SqliteStoreOptions {
  std::string path;
  bool durable = true;   // synchronous=FULL
};

// Opens (creating and migrating) the store. See CentralStore for the contract.
absl::StatusOr<std::unique_ptr<CentralStore>> OpenSqliteStore(const SqliteStoreOptions& options);

}  // namespace depot::central
