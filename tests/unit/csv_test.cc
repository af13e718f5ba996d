#include <catch2/catch.hpp>

#include "common/csv.h"

using depot::csv::Parse;
using depot::csv::Table;

TEST_CASE("CSV: quotes, escaped quotes, CRLF, embedded newlines, blank lines", "[csv]") {
  auto rows = Parse("a,b,c\r\n\"x,1\",\"say \"\"hi\"\"\",\"two\nlines\"\n\n3,,\n");
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 3);
  CHECK((*rows)[0].fields == std::vector<std::string>{"a", "b", "c"});
  CHECK((*rows)[1].fields == std::vector<std::string>{"x,1", "say \"hi\"", "two\nlines"});
  CHECK((*rows)[1].line == 2);
  CHECK((*rows)[2].fields == std::vector<std::string>{"3", "", ""});
  CHECK((*rows)[2].line == 5);  // after the embedded newline and a blank line
}

TEST_CASE("CSV: unterminated quote names its line", "[csv]") {
  auto rows = Parse("a,b\n1,\"open\n2,3\n");
  REQUIRE_FALSE(rows.ok());
  CHECK(std::string(rows.status().message()).find("line 2") != std::string::npos);
}

TEST_CASE("CSV table: header lookup, required and allowed columns, ragged rows", "[csv]") {
  auto t = Table::FromText(" Code ,Name\nA1, Apple \n", {"code"}, {"code", "name"});
  REQUIRE(t.ok());
  REQUIRE(t->rows().size() == 1);
  CHECK(t->Get(t->rows()[0], "name") == "Apple");
  CHECK(t->Get(t->rows()[0], "missing").empty());

  CHECK_FALSE(Table::FromText("name\nx\n", {"code"}, {}).ok());
  CHECK_FALSE(Table::FromText("code,colour\nx,red\n", {"code"}, {"code"}).ok());
  CHECK_FALSE(Table::FromText("code,code\nx,y\n", {"code"}, {}).ok());
  auto ragged = Table::FromText("code,name\nx\n", {"code"}, {});
  REQUIRE_FALSE(ragged.ok());
  CHECK(std::string(ragged.status().message()).find("line 2") != std::string::npos);
  CHECK_FALSE(Table::FromText("", {}, {}).ok());
}
