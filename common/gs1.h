// Barcode scan parsing: GS1 element strings (GS1-128, GS1 DataMatrix, GS1 QR, GS1 DataBar) and
// plain GTINs (EAN-13, EAN-8, UPC-A, UPC-E, GTIN-14). A pure function over the scanned text: no
// I/O, no clock unless ParseOptions::current_year is left 0, no state; thread-safe.
//
// What a scanner sends (decided here, tested in tests/unit/gs1_test.cc):
// - An optional AIM symbology identifier "]" + letter + digit. GS1 data: ]C1 (GS1-128),
//   ]d2 (GS1 DataMatrix), ]Q3 (GS1 QR), ]e0 (GS1 DataBar / composite), ]J1 (GS1 DotCode).
//   Plain GTINs: ]E0 (EAN-13 / UPC-A as 13 digits), ]E4 (EAN-8), ]I0/]I1 (ITF-14, 14 digits).
//   Any other well-formed identifier (]A0 Code 39, ]C0 Code 128, ]d1 DataMatrix, ]Q1 QR, ...)
//   gives a kText scan with the payload as sent (printable ASCII only; ITF with exactly 14 digits
//   is an ITF-14 GTIN). A ']' not followed by a letter and a letter or digit is refused.
// - FNC1 used as a separator arrives as the GS character, ASCII 29 (0x1D): the only separator
//   accepted in unbracketed element strings. (Textual stand-ins such as "<GS>" are NOT
//   separators: '<', 'G', 'S' and '>' are all legal in lot and serial numbers, so such text would
//   be ambiguous. Over HTTP send GS as %1D; by hand use the bracketed form.) A leading GS (FNC1
//   in first position sent as GS by some scanners) and a trailing GS are ignored.
// - The human-readable bracketed form "(01)09506000134352(17)201225(10)ABC123", with or
//   without a symbology identifier. In it a '(' that belongs to a value is written "\(" ('(' is
//   in GS1 character set 82, '\' is not, so this is unambiguous); ToBracketed does the same.
// - Without a symbology identifier: 8, 12, 13 or 14 digits are a plain GTIN (8 digits: EAN-8 if
//   its check digit is right, else UPC-E if it starts with 0 or 1 and its check digit is right;
//   a UPC-E whose sixth digit is 5-9 always has a valid EAN-8 check digit too and so reads as
//   EAN-8: configure scanners to send UPC-E expanded to UPC-A, as ]E0 does);
//   text starting with '(' is bracketed; anything else is parsed as an unbracketed element
//   string (and refused with the reason if it is not one).
//
// Application Identifiers: only the AIs in the table in gs1.cc are accepted; any other is
// refused with "unknown or unsupported AI" naming the digits seen. The table holds 00 (SSCC),
// 01 (GTIN), 02 (contained GTIN), 10 (lot), 11 12 13 15 16 17 (dates), 20 (variant), 21 (serial),
// 22, 240, 241, 250, 30, 310n-316n / 320n-337n / 340n-357n / 360n-369n (measures, n = 0..5),
// 37 (count), 400 401 402 403, 410-417 (GLNs), 420, 90, 91-99. For each: length (fixed or
// maximum), digits-only or GS1 character set 82, GS1 mod-10 check digit (00, 01, 02, 402,
// 410-417) and dates. Fixed-length AIs of GS1's "predefined length" table (00-04, 11-20, 31-36,
// 41) take exactly their length and need no separator; every other AI ends at GS or at the end.
// Dates (YYMMDD): month 01-12, a real day of that month; day 00 means the last day of the
// month and is allowed for 13, 15, 16 and 17 (not 11, 12). The century follows the GS1 General
// Specifications (section 7.12): YY up to 50 years ahead of the current year is this century,
// 51..99 years ahead is the previous one, and 50 or more years behind is the next one.
// Not checked: AI pairing rules (e.g. 10 requires 01), which belong to the business using them.
//
// Errors are InvalidArgument and say what is wrong and where, e.g.
//   "AI 01 (character 5): check digit should be 2, got 5".
// Character positions are 1-based in the text that was scanned.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace depot::gs1 {

enum class ScanKind {
  kElementString,  // GS1 element string: elements holds its AIs
  kGtin,           // a plain EAN/UPC/GTIN-14 number
  kText,           // plain data from a non-GS1 symbology (text holds it)
};
// "gs1", "gtin", "text".
std::string_view KindName(ScanKind kind);

struct Element {
  std::string ai;     // "01", "3103", ...
  std::string value;  // as encoded (a date stays YYMMDD here)
  bool operator==(const Element&) const = default;
};

struct Scan {
  ScanKind kind = ScanKind::kText;
  std::string symbology;    // the symbology identifier sent ("]C1"), "" when none
  std::string format;       // kGtin: "EAN-13", "EAN-8", "UPC-A", "UPC-E", "GTIN-14", "ITF-14"
  std::string gtin;         // AI 01 or the plain number, normalised to 14 digits; "" when none
  std::string content_gtin; // AI 02 (GTIN of contained items), 14 digits; "" when none
  std::string sscc;         // AI 00, 18 digits
  std::string lot;          // AI 10
  std::string serial;       // AI 21
  std::string expiry;       // AI 17 as YYYY-MM-DD (day 00 resolved to the month's last day)
  std::optional<int64_t> count;  // AI 37
  std::vector<Element> elements;  // every AI in the order scanned (kElementString)
  std::string text;         // kText: the payload
  bool operator==(const Scan&) const = default;
};

struct ParseOptions {
  // The year the GS1 century rule counts from; 0 = the current UTC year.
  int current_year = 0;
  // Longer input is refused before any parsing.
  size_t max_length = 4096;
};

// Parses one scan. InvalidArgument (with what and where) for anything malformed.
absl::StatusOr<Scan> ParseScan(std::string_view raw, const ParseOptions& options = {});

// The GS1 mod-10 check digit ('0'..'9') for digits that lack it (any length, e.g. 13 for a
// GTIN-14, 17 for an SSCC). Precondition: digits holds only '0'..'9'; anything else gives '?'.
char CheckDigit(std::string_view digits_without_check);
// digits ends in its correct GS1 check digit (at least 2 digits, all digits).
bool HasValidCheckDigit(std::string_view digits);
// UPC-E (8 digits: number system 0 or 1, six digits, check digit) expanded to its UPC-A
// (12 digits). InvalidArgument if it is not 8 digits, the number system is not 0/1 or the check
// digit (computed on the UPC-A) is wrong.
absl::StatusOr<std::string> ExpandUpcE(std::string_view upce);
// The forms a 14-digit GTIN may be stored in: itself, and the GTIN-13/12/8 obtained by dropping
// the leading zeros that padded it (e.g. "00614141000418" -> also "0614141000418",
// "614141000418"). Empty when gtin14 is not 14 digits.
std::vector<std::string> GtinForms(std::string_view gtin14);

// Renders elements in the human-readable bracketed form, '(' in values escaped as "\(":
// "(01)09506000134352(10)ABC123". ParseScan(ToBracketed(s.elements)) gives s.elements back.
std::string ToBracketed(const std::vector<Element>& elements);
// Renders elements as an unbracketed element string (what a scanner sends after the symbology
// identifier): GS (0x1D) after every element not of predefined length, except the last.
std::string ToElementString(const std::vector<Element>& elements);

}  // namespace depot::gs1
