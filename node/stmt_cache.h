// Prepared statements kept per SQLite connection (the ledger's write connection and each read
// connection own one). Shared by the ledger and the fulfilment module, which use the same
// connections. Not thread-safe: a cache belongs to the thread holding its connection.
#pragma once

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <memory>
#include <unordered_map>

namespace depot::node {

// Get() hands out a statement reset and unbound; the returned guard resets it again so no read
// snapshot outlives its use. Keys are the SQL text's address: pass string literals only.
class StmtCache {
 public:
  explicit StmtCache(SQLite::Database& db) : db_(db) {}
  class Use {
   public:
    explicit Use(SQLite::Statement& s) : s_(s) {}
    ~Use() { s_.tryReset(); }
    SQLite::Statement* operator->() { return &s_; }
    SQLite::Statement& operator*() { return s_; }

   private:
    SQLite::Statement& s_;
  };
  Use Get(const char* sql) {
    auto& slot = map_[sql];
    if (!slot) slot = std::make_unique<SQLite::Statement>(db_, sql);
    slot->tryReset();
    slot->clearBindings();
    return Use(*slot);
  }
  SQLite::Database& db() { return db_; }

 private:
  SQLite::Database& db_;
  std::unordered_map<const char*, std::unique_ptr<SQLite::Statement>> map_;
};

}  // namespace depot::node
