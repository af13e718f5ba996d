#include <catch2/catch.hpp>

#include "common/stock_rules.h"

using namespace depot;

TEST_CASE("GTIN check digits (EAN-13, UPC-A, EAN-8, GTIN-14)", "[rules]") {
  CHECK(ValidGtin("4006381333931"));   // EAN-13
  CHECK(ValidGtin("036000291452"));    // UPC-A
  CHECK(ValidGtin("96385074"));        // EAN-8
  CHECK(ValidGtin("10614141000415"));  // GTIN-14 (GS1 example)
  CHECK_FALSE(ValidGtin("4006381333932"));
  CHECK_FALSE(ValidGtin("400638133393"));
  CHECK_FALSE(ValidGtin("40063813339A1"));
  CHECK_FALSE(ValidGtin(""));
}

TEST_CASE("dates", "[rules]") {
  CHECK(ValidDate("2024-02-29"));
  CHECK_FALSE(ValidDate("2023-02-29"));
  CHECK_FALSE(ValidDate("2023-13-01"));
  CHECK_FALSE(ValidDate("2023-1-01"));
  CHECK_FALSE(ValidDate("20230101"));
  CHECK(ValidDate("2000-02-29"));
  CHECK_FALSE(ValidDate("1900-02-29"));
}

TEST_CASE("codes", "[rules]") {
  CHECK(CheckCode("sku", "ABC-1").ok());
  CHECK_FALSE(CheckCode("sku", "").ok());
  CHECK(CheckCode("lot", "", false).ok());
  CHECK_FALSE(CheckCode("sku", " A").ok());
  CHECK_FALSE(CheckCode("sku", std::string(65, 'x')).ok());
  CHECK_FALSE(CheckCode("sku", "a\nb").ok());
}

TEST_CASE("adjustment reasons and signs", "[rules]") {
  CHECK(CheckAdjustment("damaged", -1).ok());
  CHECK(CheckAdjustment("lost", -3).ok());
  CHECK(CheckAdjustment("found", 2).ok());
  CHECK(CheckAdjustment("count", -2).ok());
  CHECK(CheckAdjustment("count", 2).ok());
  CHECK_FALSE(CheckAdjustment("damaged", 1).ok());
  CHECK_FALSE(CheckAdjustment("found", -1).ok());
  CHECK_FALSE(CheckAdjustment("count", 0).ok());
  CHECK_FALSE(CheckAdjustment("theft", -1).ok());
}

TEST_CASE("movement effects", "[rules]") {
  v1::Movement m;
  m.set_type(v1::MOVE);
  m.set_bin("A");
  m.set_to_bin("B");
  m.set_quantity(4);
  auto e = EffectsOf(m);
  REQUIRE(e.stock_count == 2);
  CHECK(e.stock[0].bin == "A");
  CHECK(e.stock[0].delta == -4);
  CHECK(e.stock[1].bin == "B");
  CHECK(e.stock[1].delta == 4);
  CHECK(e.reserved_delta == 0);

  m.Clear();
  m.set_type(v1::CONSUME);
  m.set_bin("A");
  m.set_quantity(2);
  e = EffectsOf(m);
  REQUIRE(e.stock_count == 1);
  CHECK(e.stock[0].delta == -2);
  CHECK(e.reserved_delta == -2);

  m.set_type(v1::ADJUSTMENT);
  m.set_quantity(-3);
  e = EffectsOf(m);
  CHECK(e.stock[0].delta == -3);
  CHECK(Available(10, 3, 2) == 5);
}
