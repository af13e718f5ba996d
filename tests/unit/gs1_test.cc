// GS1 barcode parsing (common/gs1.h) against GS1's published examples and every error class.
//
// Sources of the examples (each test names the one it uses):
// [DL]   GS1 Digital Link Standard 1.1 (GS1 AISBL, Feb 2020): the example GTIN 09506000134352
//        with lot ABC123 and expiry 201225, "(01)09506000134352(17)201225(10)ABC123".
// [TDS]  GS1 EPC Tag Data Standard / Tag Data Translation (ref.gs1.org/standards/tdt): SSCC
//        example "(00)106141412345678908" (company prefix 0614141).
// [GS]   GS1 General Specifications, "Standard check digit calculations for GS1 data
//        structures" and the SSCC example 106141411234567897.
// [BE]   GS1 Barcode Engine (github.com/gs1/gs1-barcode-engine, src/c-lib/scandata.c unit
//        tests, GS1 AISBL): scan data "]C1011231231231233310ABC123<GS>99TESTING", "]E02112345678900",
//        "]E402345673", DataBar "...1199122598TESTING<GS>97XYZ", UPC-E 0 012345 7 as UPC-A
//        001234000057, and the short / long / non-numeric / bad check digit EAN cases.
// [SD]   GS1 Barcode Syntax Dictionary (github.com/gs1/gs1-syntax-dictionary, GS1 AISBL):
//        lint_csum.c (02345673, 416000336108, 1234567890128, 12345678901231,
//        123456789012345675 and their wrong-check twins), lint_cset82.c (space, '#', '@' refused),
//        lint_yymmd0.c (200600 allowed, 200132 / 210229 / 201310 refused, 240229 allowed).
// [SS]   Solidsoft GS1 AI Validating Parser wiki, "GS1 Data Example":
//        "010506091751001110628S93R<GS>17241000218898847482518646".
#include <catch2/catch.hpp>

#include "common/gs1.h"

namespace {

using depot::gs1::Element;
using depot::gs1::ParseOptions;
using depot::gs1::ParseScan;
using depot::gs1::Scan;
using depot::gs1::ScanKind;

const ParseOptions kOpts{2026};  // the century rule counts from 2026 in these tests

Scan Ok(std::string_view raw, const ParseOptions& opts = kOpts) {
  auto s = ParseScan(raw, opts);
  INFO(raw << " -> " << s.status().ToString());
  REQUIRE(s.ok());
  return *s;
}

// The error message of a scan that must fail.
std::string Err(std::string_view raw, const ParseOptions& opts = kOpts) {
  auto s = ParseScan(raw, opts);
  INFO(std::string(raw));
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(s.status().message());
}

}  // namespace

TEST_CASE("gs1: check digits of GS1's published keys", "[gs1]") {
  using depot::gs1::CheckDigit;
  using depot::gs1::HasValidCheckDigit;
  // [SD] lint_csum.c
  for (const char* ok : {"02345673", "416000336108", "1234567890128", "12345678901231",
                         "123456789012345675"}) {
    CHECK(HasValidCheckDigit(ok));
  }
  for (const char* bad : {"12345673", "416000336109", "1234567890129", "12345678901232",
                          "123456789012345670", "", "7", "12a4"}) {
    CHECK_FALSE(HasValidCheckDigit(bad));
  }
  // [GS] the worked GTIN-13 example 629104150021 -> 3; [DL] GTIN; [GS]/[TDS] SSCCs.
  CHECK(CheckDigit("629104150021") == '3');
  CHECK(CheckDigit("0950600013435") == '2');
  CHECK(CheckDigit("10614141123456789") == '7');
  CHECK(CheckDigit("10614141234567890") == '8');
  CHECK(CheckDigit("12x") == '?');
}

TEST_CASE("gs1: the GS1 Digital Link example in every carrier form", "[gs1]") {
  // [DL] (01)09506000134352(17)201225(10)ABC123
  const char* forms[] = {
      "(01)09506000134352(17)201225(10)ABC123",
      "]C1010950600013435217201225" "10ABC123",
      "]d2010950600013435217201225" "10ABC123\x1d",         // trailing GS ignored
      "]Q3\x1d" "010950600013435217201225" "10ABC123",      // FNC1 in first sent as GS
      "]e0010950600013435210ABC123\x1d" "17201225",          // other order: GS after the lot
      "010950600013435217201225" "10ABC123",               // no symbology identifier
      "]C1(01)09506000134352(17)201225(10)ABC123",
  };
  for (const char* raw : forms) {
    INFO(raw);
    Scan s = Ok(raw);
    CHECK(s.kind == ScanKind::kElementString);
    CHECK(s.gtin == "09506000134352");
    CHECK(s.lot == "ABC123");
    CHECK(s.expiry == "2020-12-25");
    CHECK(s.elements.size() == 3);
  }
  Scan s = Ok("(01)09506000134352(17)201225(10)ABC123");
  CHECK(s.symbology.empty());
  CHECK(s.elements == std::vector<Element>{{"01", "09506000134352"}, {"17", "201225"},
                                           {"10", "ABC123"}});
  CHECK(depot::gs1::ToBracketed(s.elements) == "(01)09506000134352(17)201225(10)ABC123");
  // 01 and 17 are of predefined length: no separator; 10 is last: none either.
  CHECK(depot::gs1::ToElementString(s.elements) == "010950600013435217201225" "10ABC123");
  CHECK(Ok("]C1" + depot::gs1::ToElementString(s.elements)).elements == s.elements);
}

TEST_CASE("gs1: GS1 Barcode Engine scan data", "[gs1]") {
  // [BE] GS1-128 and DataMatrix with a GS between a lot and AI 99.
  for (const char* raw : {"]C1011231231231233310ABC123\x1d" "99TESTING",
                          "]d2011231231231233310ABC123\x1d" "99TESTING"}) {
    Scan s = Ok(raw);
    CHECK(s.gtin == "12312312312333");
    CHECK(s.lot == "ABC123");
    CHECK(s.elements == std::vector<Element>{{"01", "12312312312333"}, {"10", "ABC123"},
                                             {"99", "TESTING"}});
  }
  // [BE] DataBar Expanded: AI 11 is of predefined length, so 98 follows without a separator.
  Scan d = Ok("]e0011231231231233310ABC123\x1d" "1199122598TESTING\x1d" "97XYZ");
  CHECK(d.elements == std::vector<Element>{{"01", "12312312312333"}, {"10", "ABC123"},
                                           {"11", "991225"}, {"98", "TESTING"},
                                           {"97", "XYZ"}});
  CHECK(d.symbology == "]e0");
  // [BE] EAN-13 / EAN-8 with their symbology identifiers.
  Scan e13 = Ok("]E02112345678900");
  CHECK(e13.kind == ScanKind::kGtin);
  CHECK(e13.format == "EAN-13");
  CHECK(e13.gtin == "02112345678900");
  Scan e8 = Ok("]E402345673");
  CHECK(e8.format == "EAN-8");
  CHECK(e8.gtin == "00000002345673");
  // [BE] UPC-A 416000336108 travels as ]E0 0416000336108.
  Scan upca = Ok("]E00416000336108");
  CHECK(upca.format == "UPC-A");
  CHECK(upca.gtin == "00416000336108");
  // [BE] refused: short, long, non-numeric, bad check digit.
  CHECK_THAT(Err("]E0123456789012"), Catch::Contains("must be 13 digits"));
  CHECK_THAT(Err("]E012345678901234"), Catch::Contains("must be 13 digits"));
  CHECK_THAT(Err("]E01234ABC890123"), Catch::Contains("must be 13 digits"));
  CHECK(Err("]E02112345678901") == "EAN-13 2112345678901: check digit should be 0, got 1");
  CHECK_THAT(Err("]E41234567"), Catch::Contains("must be 8 digits"));
  CHECK(Err("]E402345674") == "EAN-8 02345674: check digit should be 3, got 4");
  CHECK_THAT(Err("]C1"), Catch::Contains("no GS1 data after symbology identifier ]C1"));
  CHECK_THAT(Err("]e0"), Catch::Contains("no GS1 data"));
}

TEST_CASE("gs1: SSCC, count and the pallet label", "[gs1]") {
  // [GS] and [TDS] SSCCs.
  CHECK(Ok("(00)106141411234567897").sscc == "106141411234567897");
  Scan p = Ok("]C1" "00106141412345678908" "0209506000134352" "37" "24");
  CHECK(p.sscc == "106141412345678908");
  CHECK(p.content_gtin == "09506000134352");
  CHECK(p.gtin.empty());
  REQUIRE(p.count.has_value());
  CHECK(*p.count == 24);
  CHECK(Err("(00)106141412345678907") ==
        "AI 00 at character 1: check digit should be 8, got 7");
  CHECK(Err("]C100106141412345678907") ==
        "AI 00 at character 4: check digit should be 8, got 7");
  CHECK_THAT(Err("(37)123456789"), Catch::Contains("at most 8 digits, got 9"));
  CHECK_THAT(Err("(37)12a"), Catch::Contains("character 3 of the value, 'a', is not a digit"));
}

TEST_CASE("gs1: lot, expiry with day 00 and a long serial", "[gs1]") {
  // [SS] GTIN, lot, expiry Oct 2024 with day 00 (= last day), serial.
  Scan s = Ok("010506091751001110628S93R\x1d" "17241000218898847482518646");
  CHECK(s.gtin == "05060917510011");
  CHECK(s.lot == "628S93R");
  CHECK(s.expiry == "2024-10-31");
  CHECK(s.serial == "8898847482518646");
  // Same in bracketed form from ToBracketed.
  CHECK(Ok(depot::gs1::ToBracketed(s.elements)).elements == s.elements);
}

TEST_CASE("gs1: dates follow GS1 rules", "[gs1]") {
  // [SD] lint_yymmd0.c: day 00 allowed, leap years, impossible days and months refused.
  CHECK(Ok("(17)200600").expiry == "2020-06-30");
  CHECK(Ok("(17)240229").expiry == "2024-02-29");
  CHECK(Ok("(17)240200").expiry == "2024-02-29");
  CHECK(Ok("(17)230200").expiry == "2023-02-28");
  CHECK(Err("(17)200132") == "AI 17 at character 1: day 32 does not exist in 2020-01");
  CHECK(Err("(17)210229") == "AI 17 at character 1: day 29 does not exist in 2021-02");
  CHECK(Err("(17)201310") == "AI 17 at character 1: month 13 is not 01-12");
  CHECK(Err("(17)200010") == "AI 17 at character 1: month 00 is not 01-12");
  // Day 00 is for 13, 15, 16, 17 only; 11 (production date) needs a real day.
  CHECK(Err("(11)200600") == "AI 11 at character 1: day 00 is not allowed for this AI");
  CHECK_THAT(Err("(17)2006"), Catch::Contains("value must be 6 digits, got 4"));
  CHECK_THAT(Err("(17)20060x"), Catch::Contains("'x', is not a digit"));
}

TEST_CASE("gs1: century by the GS1 sliding window", "[gs1]") {
  // GS1 General Specifications 7.12: from 2026, YY up to 2076 is 20YY, 77..99 is 19YY.
  CHECK(Ok("(17)760101").expiry == "2076-01-01");
  CHECK(Ok("(17)770101").expiry == "1977-01-01");
  CHECK(Ok("(17)990101").expiry == "1999-01-01");
  CHECK(Ok("(17)000101").expiry == "2000-01-01");
  // From 2080: 30 is 50 years back, so it is the next century (2130); 31 is 2031.
  ParseOptions y2080{2080};
  CHECK(Ok("(17)300101", y2080).expiry == "2130-01-01");
  CHECK(Ok("(17)310101", y2080).expiry == "2031-01-01");
  // The leap-year check uses the full year: 2000 was leap, 2100 is not.
  CHECK(Ok("(17)000229").expiry == "2000-02-29");
  CHECK_THAT(Err("(17)000229", y2080), Catch::Contains("day 29 does not exist in 2100-02"));
}

TEST_CASE("gs1: character set 82 for lots and serials", "[gs1]") {
  // [SD] lint_cset82.c
  CHECK(Ok("(10)!\"%&'\\()*+,-./:;<=").lot == "!\"%&'()*+,-./:;<=");
  CHECK(Ok("(21)>?_AZaz09").serial == ">?_AZaz09");
  CHECK(Err("(10)ABC ") ==
        "AI 10 at character 1: character 4 of the value, ' ', is not in GS1 character set 82");
  CHECK_THAT(Err("(21)A#"), Catch::Contains("'#', is not in GS1 character set 82"));
  CHECK_THAT(Err("(21)A@"), Catch::Contains("'@', is not in GS1 character set 82"));
  CHECK_THAT(Err("]C110AB\x1e" "C"),
             Catch::Contains("character 3 of the value, 0x1E, is not in GS1 character set 82"));
  CHECK_THAT(Err("(10)ABCDEFGHIJKLMNOPQRSTU"), Catch::Contains("at most 20 characters, got 21"));
  CHECK_THAT(Err("(10)"), Catch::Contains("AI 10 at character 1: value is empty"));
  // '(' inside a value: escaped in the bracketed form, plain in element strings.
  Scan s = Ok("]C110A(B\x1d" "21X");
  CHECK(s.lot == "A(B");
  CHECK(depot::gs1::ToBracketed(s.elements) == "(10)A\\(B(21)X");
  CHECK(Ok("(10)A\\(B(21)X").elements == s.elements);
}

TEST_CASE("gs1: GTIN errors name the AI, the position and the digits", "[gs1]") {
  CHECK(Err("(01)09506000134355") == "AI 01 at character 1: check digit should be 2, got 5");
  CHECK(Err("]C1010950600013435517201225") ==
        "AI 01 at character 4: check digit should be 2, got 5");
  CHECK(Err("]C10109506000134") ==
        "AI 01 at character 4: value must be 14 digits, got 11 before the end");
  CHECK(Err("]C1010950600013\x1d" "10A") ==
        "AI 01 at character 4: value must be 14 digits, got 10 before a GS separator");
  CHECK_THAT(Err("(01)0950600013435"), Catch::Contains("value must be 14 digits, got 13"));
  CHECK(Err("(01)09506000134352(10)A(10)B") ==
        "AI 10 at character 24: AI 10 appears twice with different values ('A' and 'B')");
  CHECK(Ok("(01)09506000134352(01)09506000134352").elements.size() == 2);
}

TEST_CASE("gs1: structure errors", "[gs1]") {
  CHECK(Err("") == "empty barcode");
  CHECK(Err("(23)1") == "unknown or unsupported AI (23) at character 1");
  CHECK(Err("(3106)000100") == "unknown or unsupported AI (3106) at character 1");
  CHECK(Ok("(3103)000189").elements[0].ai == "3103");  // [GS] net weight, 3 decimals
  CHECK(Err("]C1230000") == "unknown or unsupported AI at character 4 (data starts '2300')");
  CHECK(Err("]C110A\x1d\x1d" "21B") ==
        "unexpected GS separator at character 8: an AI was expected");
  CHECK(Err("]C110A\x1dX1") == "expected an AI (digits) at character 8, got 'X'");
  CHECK(Err("(01") == "'(' at character 1 is not followed by an AI of 2-4 digits and ')'");
  CHECK(Err("(0a)1") == "'(0a)' at character 1 is not an AI (2-4 digits)");
  CHECK(Err("x(01)09506000134352") ==
        "unrecognised barcode: not a GTIN (8, 12, 13 or 14 digits), not a GS1 element string "
        "(expected an AI (digits) at character 1, got 'x')");
  CHECK(Err("]") ==
        "malformed symbology identifier: ']' must be followed by a letter and a letter or digit");
  CHECK_THAT(Err("]1A"), Catch::Contains("malformed symbology identifier"));
  CHECK(Err(std::string(5000, '1')) == "barcode is 5000 characters, more than 4096");
  // A textual "<GS>" is data, not a separator: here it makes the lot contain it.
  CHECK(Ok("]C110AB<GS>21X").lot == "AB<GS>21X");
}

TEST_CASE("gs1: plain GTIN, EAN, UPC without a symbology identifier", "[gs1]") {
  Scan e13 = Ok("2112345678900");  // [BE]
  CHECK(e13.kind == ScanKind::kGtin);
  CHECK(e13.format == "EAN-13");
  CHECK(e13.gtin == "02112345678900");
  Scan upca = Ok("416000336108");  // [SD]
  CHECK(upca.format == "UPC-A");
  CHECK(upca.gtin == "00416000336108");
  Scan g14 = Ok("09506000134352");  // [DL]
  CHECK(g14.format == "GTIN-14");
  CHECK(g14.gtin == "09506000134352");
  Scan e8 = Ok("02345673");  // [SD]
  CHECK(e8.format == "EAN-8");
  CHECK(e8.gtin == "00000002345673");
  // [BE] UPC-E 0 012345 7 expands to UPC-A 0 01234 00005 7. Sent bare, those 8 digits are also
  // a valid EAN-8 (for a last data digit 5-9 both check digits always agree), and bare 8 digits
  // are read as EAN-8 first (gs1.h).
  CHECK(*depot::gs1::ExpandUpcE("00123457") == "001234000057");
  CHECK(Ok("00123457").format == "EAN-8");
  Scan upce = Ok("01234505");  // not a valid EAN-8 (its check digit would be 3)
  CHECK(upce.format == "UPC-E");
  CHECK(upce.gtin == "00012000003455");
  // The other UPC-E patterns (last digit 0-2, 3, 4), checked against their UPC-A.
  CHECK(*depot::gs1::ExpandUpcE("01234505") == "012000003455");
  CHECK(*depot::gs1::ExpandUpcE("01234531") == "012300000451");
  CHECK(*depot::gs1::ExpandUpcE("01234543") == "012340000053");
  CHECK_THAT(std::string(depot::gs1::ExpandUpcE("21234543").status().message()),
             Catch::Contains("number system must be 0 or 1"));

  CHECK(Err("2112345678901") == "EAN-13 2112345678901: check digit should be 0, got 1");
  CHECK(Err("416000336109") == "UPC-A 416000336109: check digit should be 8, got 9");
  CHECK(Err("09506000134355") == "GTIN-14 09506000134355: check digit should be 2, got 5");
  CHECK(Err("92345674") == "EAN-8 92345674: check digit should be 6, got 4");
  CHECK(Err("01234500") ==
        "8-digit code 01234500 is neither an EAN-8 (check digit should be 3) nor a UPC-E "
        "(UPC-E check digit should be 5, got 0)");
}

TEST_CASE("gs1: other symbologies give text, ITF-14 gives a GTIN", "[gs1]") {
  Scan t = Ok("]A0BIN-A-01");
  CHECK(t.kind == ScanKind::kText);
  CHECK(t.text == "BIN-A-01");
  CHECK(t.symbology == "]A0");
  CHECK(Ok("]d1HELLO").text == "HELLO");
  Scan itf = Ok("]I009506000134352");
  CHECK(itf.kind == ScanKind::kGtin);
  CHECK(itf.format == "ITF-14");
  CHECK(itf.gtin == "09506000134352");
  CHECK(Err("]I009506000134355") == "ITF-14 09506000134355: check digit should be 2, got 5");
  CHECK(Err("]C0") == "no data after ]C0");
  CHECK(Err("]C0AB\x1d") == "character 6, 0x1D, is not printable ASCII");
}

TEST_CASE("gs1: GTIN forms for lookups", "[gs1]") {
  using V = std::vector<std::string>;
  CHECK(depot::gs1::GtinForms("09506000134352") == V{"09506000134352", "9506000134352"});
  CHECK(depot::gs1::GtinForms("00416000336108") ==
        V{"00416000336108", "0416000336108", "416000336108"});
  CHECK(depot::gs1::GtinForms("00000002345673") ==
        V{"00000002345673", "0000002345673", "000002345673", "02345673"});
  CHECK(depot::gs1::GtinForms("123").empty());
  CHECK(depot::gs1::KindName(ScanKind::kElementString) == "gs1");
}
