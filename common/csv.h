// A small RFC 4180 CSV reader (quoted fields, "" escapes, CRLF or LF, embedded newlines).
// Written here rather than taken from Debian: libfccp-dev (fast-cpp-csv-parser) fixes the column
// count at compile time and rejects newlines inside quoted fields; libcsv-dev is a C callback API
// whose wrapper would be as long as this reader. ~100 lines, covered by tests/unit/csv_test.cc.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace depot::csv {

struct Row {
  int line = 0;                      // 1-based line where the row starts
  std::vector<std::string> fields;
};

// Splits text into rows. Blank lines are skipped. An unterminated quote is InvalidArgument.
absl::StatusOr<std::vector<Row>> Parse(std::string_view text);

// A CSV file with a header row: column lookup by name.
class Table {
 public:
  // The first row names the columns (trimmed, lower-cased). Errors: empty input, duplicate or
  // unknown column names (when allowed is non-empty), a missing required column, a row with a
  // different number of fields than the header.
  static absl::StatusOr<Table> FromText(std::string_view text,
                                        const std::vector<std::string>& required,
                                        const std::vector<std::string>& allowed);
  const std::vector<Row>& rows() const { return rows_; }
  // The field of row in the named column, trimmed; "" when the column is absent.
  std::string Get(const Row& row, const std::string& column) const;
  bool Has(const std::string& column) const { return columns_.count(column) > 0; }

 private:
  std::map<std::string, size_t> columns_;
  std::vector<Row> rows_;
};

// The row errors of an all-or-nothing import: Add(line, message) for each bad row; Status() is
// OK when there was none, else one InvalidArgument "nothing imported: line 3: ...; line 7: ..."
// naming the first 20 (and saying when there were more).
class ImportErrors {
 public:
  void Add(int line, absl::string_view message);
  bool empty() const { return count_ == 0; }
  absl::Status Status() const;

 private:
  std::vector<std::string> list_;
  size_t count_ = 0;
};

}  // namespace depot::csv
