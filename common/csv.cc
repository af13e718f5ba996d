#include "common/csv.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace depot::csv {

absl::StatusOr<std::vector<Row>> Parse(std::string_view text) {
  std::vector<Row> rows;
  Row row;
  std::string field;
  bool in_quotes = false, field_started = false;
  int line = 1, quote_line = 0;
  row.line = 1;
  auto end_field = [&] {
    row.fields.push_back(std::move(field));
    field.clear();
    field_started = false;
  };
  auto end_row = [&] {
    end_field();
    bool blank = row.fields.size() == 1 && row.fields[0].empty();
    if (!blank) rows.push_back(std::move(row));
    row = Row{};
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        if (c == '\n') ++line;
        field.push_back(c);
      }
      continue;
    }
    if (c == '"' && !field_started) {
      in_quotes = true;
      field_started = true;
      quote_line = line;
    } else if (c == ',') {
      end_field();
    } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      // CRLF: handled at the '\n'.
    } else if (c == '\n') {
      end_row();
      ++line;
      row.line = line;
    } else {
      field.push_back(c);
      field_started = true;
    }
  }
  if (in_quotes) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", quote_line, ": unterminated quoted field"));
  }
  end_row();
  return rows;
}

absl::StatusOr<Table> Table::FromText(std::string_view text,
                                      const std::vector<std::string>& required,
                                      const std::vector<std::string>& allowed) {
  auto rows = Parse(text);
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return absl::InvalidArgumentError("empty CSV: a header row is required");
  Table table;
  const Row& header = rows->front();
  for (size_t i = 0; i < header.fields.size(); ++i) {
    std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(header.fields[i]));
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      return absl::InvalidArgumentError(absl::StrCat("line ", header.line, ": unknown column '",
                                                     name, "' (allowed: ",
                                                     absl::StrJoin(allowed, ", "), ")"));
    }
    if (!table.columns_.emplace(name, i).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", header.line, ": duplicate column '", name, "'"));
    }
  }
  for (const auto& r : required) {
    if (!table.columns_.count(r)) {
      return absl::InvalidArgumentError(absl::StrCat("missing required column '", r, "'"));
    }
  }
  for (size_t i = 1; i < rows->size(); ++i) {
    Row& r = (*rows)[i];
    if (r.fields.size() != header.fields.size()) {
      return absl::InvalidArgumentError(absl::StrCat("line ", r.line, ": ", r.fields.size(),
                                                     " fields, header has ",
                                                     header.fields.size()));
    }
    table.rows_.push_back(std::move(r));
  }
  return table;
}

std::string Table::Get(const Row& row, const std::string& column) const {
  auto it = columns_.find(column);
  if (it == columns_.end() || it->second >= row.fields.size()) return "";
  return std::string(absl::StripAsciiWhitespace(row.fields[it->second]));
}

void ImportErrors::Add(int line, absl::string_view message) {
  if (list_.size() < 20) list_.push_back(absl::StrCat("line ", line, ": ", message));
  ++count_;
}

absl::Status ImportErrors::Status() const {
  if (count_ == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "nothing imported: ", absl::StrJoin(list_, "; "), count_ > 20 ? " (and more)" : ""));
}

}  // namespace depot::csv
