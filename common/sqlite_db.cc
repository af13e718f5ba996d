#include "common/sqlite_db.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"

namespace depot::db {

absl::StatusOr<std::unique_ptr<SQLite::Database>> Open(const OpenOptions& options) {
  try {
    int flags = options.read_only ? SQLite::OPEN_READONLY
                                  : (SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    flags |= SQLITE_OPEN_NOMUTEX;  // each connection is used by one thread at a time
    auto db = std::make_unique<SQLite::Database>(options.path, flags, options.busy_timeout_ms);
    if (!options.read_only) db->exec("PRAGMA journal_mode=WAL");
    db->exec(options.durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    db->exec("PRAGMA foreign_keys=ON");
    db->exec("PRAGMA temp_store=MEMORY");
    db->exec("PRAGMA cache_size=-65536");  // 64 MiB page cache
    return db;
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot open database ", options.path, ": ", e.what()));
  }
}

absl::Status Migrate(SQLite::Database& db, std::span<const Migration> migrations) {
  try {
    int current = db.execAndGet("PRAGMA user_version").getInt();
    int latest = migrations.empty() ? 0 : migrations.back().version;
    if (current > latest) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database schema version ", current, " is newer than this program (", latest, ")"));
    }
    for (const Migration& m : migrations) {
      if (m.version <= current) continue;
      WriteTransaction tx(db);
      db.exec(m.sql);
      db.exec(absl::StrCat("PRAGMA user_version=", m.version));
      tx.Commit();
      current = m.version;
    }
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return FromException(e);
  }
}

absl::Status FromException(const std::exception& e) {
  if (auto* se = dynamic_cast<const SQLite::Exception*>(&e)) {
    switch (se->getErrorCode()) {
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
        return absl::UnavailableError(absl::StrCat("database busy: ", se->what()));
      case SQLITE_CONSTRAINT:
        return absl::FailedPreconditionError(se->what());
      case SQLITE_FULL:
        return absl::ResourceExhaustedError(absl::StrCat("disk full: ", se->what()));
      default:
        return absl::InternalError(absl::StrCat("database error: ", se->what()));
    }
  }
  return absl::InternalError(e.what());
}

}  // namespace depot::db
