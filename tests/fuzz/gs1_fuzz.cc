// libFuzzer target for the barcode parser (common/gs1.h), built with clang by run_fuzz.sh and run
// briefly by ctest ("fuzz: gs1 parser"). Properties checked on every input:
// - ParseScan never crashes, hangs or trips ASan/UBSan, and every error has a message;
// - every accepted GTIN (14 digits), contained GTIN and SSCC (18 digits) has a right check digit,
//   every expiry is a YYYY-MM-DD date;
// - an accepted element string rendered in bracketed form, and as scan data after ]C1, parses
//   again to the same elements and fields; an accepted GTIN parses again from its 14 digits.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/gs1.h"

namespace {

using depot::gs1::ParseOptions;
using depot::gs1::ParseScan;
using depot::gs1::Scan;
using depot::gs1::ScanKind;

[[noreturn]] void Fail(const char* what, std::string_view input, std::string_view detail) {
  std::fprintf(stderr, "gs1_fuzz property violated: %s\n  input: ", what);
  for (unsigned char c : input) std::fprintf(stderr, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
  std::fprintf(stderr, "\n  detail: %.*s\n", static_cast<int>(detail.size()), detail.data());
  std::abort();
}

bool Digits(std::string_view s, size_t n) {
  if (s.size() != n) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

void CheckKey(std::string_view input, const char* name, const std::string& key, size_t n) {
  if (key.empty()) return;
  if (!Digits(key, n) || !depot::gs1::HasValidCheckDigit(key)) Fail(name, input, key);
}

// The fields a re-parse must reproduce (the symbology may differ).
bool SameFields(const Scan& a, const Scan& b) {
  return a.kind == b.kind && a.elements == b.elements && a.gtin == b.gtin &&
         a.content_gtin == b.content_gtin && a.sscc == b.sscc && a.lot == b.lot &&
         a.serial == b.serial && a.expiry == b.expiry && a.count == b.count;
}

void Reparse(std::string_view input, const Scan& scan, const std::string& again,
             const ParseOptions& opts, const char* what) {
  auto r = ParseScan(again, opts);
  if (!r.ok()) Fail(what, input, std::string(r.status().message()) + " for " + again);
  if (!SameFields(scan, *r)) Fail(what, input, again);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const ParseOptions opts{2026};
  auto scan = ParseScan(input, opts);
  if (!scan.ok()) {
    if (scan.status().message().empty()) Fail("error without a message", input, "");
    return 0;
  }
  const Scan& s = *scan;
  CheckKey(input, "GTIN check digit", s.gtin, 14);
  CheckKey(input, "contained GTIN check digit", s.content_gtin, 14);
  CheckKey(input, "SSCC check digit", s.sscc, 18);
  if (!s.expiry.empty() && (s.expiry.size() != 10 || s.expiry[4] != '-' || s.expiry[7] != '-')) {
    Fail("expiry format", input, s.expiry);
  }
  switch (s.kind) {
    case ScanKind::kElementString:
      if (s.elements.empty()) Fail("element string without elements", input, "");
      Reparse(input, s, depot::gs1::ToBracketed(s.elements), opts, "bracketed round trip");
      Reparse(input, s, "]C1" + depot::gs1::ToElementString(s.elements), opts,
              "element string round trip");
      break;
    case ScanKind::kGtin: {
      if (s.gtin.empty()) Fail("GTIN scan without GTIN", input, "");
      auto r = ParseScan(s.gtin, opts);
      if (!r.ok() || r->gtin != s.gtin) Fail("GTIN round trip", input, s.gtin);
      break;
    }
    case ScanKind::kText:
      if (s.text.empty()) Fail("text scan without text", input, "");
      break;
  }
  return 0;
}
