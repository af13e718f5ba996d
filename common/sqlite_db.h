// SQLite access: opening with the project's pragmas, versioned schema migrations, and mapping
// SQLite errors to absl::Status. We use SQLiteCpp (Debian's libsqlitecpp-dev) for RAII statements
// and transactions; its headers forward-declare sqlite3, so <sqlite3.h> stays out of ours.
#pragma once

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace depot::db {

struct OpenOptions {
  std::string path;
  // synchronous=FULL: a commit survives power loss. NORMAL is faster in WAL mode but may lose the
  // last transactions on power loss (never on a process crash).
  bool durable = true;
  bool read_only = false;
  int busy_timeout_ms = 5000;
};

// Opens (creating unless read_only) a database in WAL mode with foreign keys on.
absl::StatusOr<std::unique_ptr<SQLite::Database>> Open(const OpenOptions& options);

struct Migration {
  int version;        // 1, 2, 3... applied in order; PRAGMA user_version records the last one
  const char* sql;    // one or more statements
};

// Applies every migration whose version is above the database's user_version, each in its own
// transaction together with the new user_version. A database newer than the code is refused.
absl::Status Migrate(SQLite::Database& db, std::span<const Migration> migrations);

// Maps an exception thrown by SQLiteCpp (or anything else) to a Status.
absl::Status FromException(const std::exception& e);

// A write transaction that takes the write lock at BEGIN (BEGIN IMMEDIATE) and rolls back unless
// Commit() is called.
class WriteTransaction {
 public:
  explicit WriteTransaction(SQLite::Database& db)
      : tx_(db, SQLite::TransactionBehavior::IMMEDIATE) {}
  void Commit() { tx_.commit(); }

 private:
  SQLite::Transaction tx_;
};

}  // namespace depot::db
