#include "common/gs1.h"

#include <ctime>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace depot::gs1 {
namespace {

// Debian's Abseil has its own string_view; StrCat over std::string_view arguments too.
template <typename T>
decltype(auto) Conv(const T& v) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return absl::string_view(v.data(), v.size());
  } else {
    return (v);
  }
}
template <typename... Args>
std::string StrCat(const Args&... args) {
  return absl::StrCat(Conv(args)...);
}

constexpr char kGs = '\x1d';

enum class Charset { kNumeric, kCset82 };
enum class Check { kNone, kCheckDigit, kDate, kDateDay00, kCount };

struct AiSpec {
  std::string_view ai;  // for measures (4 digits) only the first 3 digits; see FindAi
  size_t min_len;
  size_t max_len;
  Charset charset;
  Check check;
};

// The supported AIs (GS1 General Specifications, section 3.2 and the GS1 Barcode Syntax
// Dictionary). Keep gs1.h's list in step.
constexpr AiSpec kAis[] = {
    {"00", 18, 18, Charset::kNumeric, Check::kCheckDigit},   // SSCC
    {"01", 14, 14, Charset::kNumeric, Check::kCheckDigit},   // GTIN
    {"02", 14, 14, Charset::kNumeric, Check::kCheckDigit},   // GTIN of contained trade items
    {"10", 1, 20, Charset::kCset82, Check::kNone},           // batch or lot
    {"11", 6, 6, Charset::kNumeric, Check::kDate},           // production date
    {"12", 6, 6, Charset::kNumeric, Check::kDate},           // due date
    {"13", 6, 6, Charset::kNumeric, Check::kDateDay00},      // packaging date
    {"15", 6, 6, Charset::kNumeric, Check::kDateDay00},      // best before
    {"16", 6, 6, Charset::kNumeric, Check::kDateDay00},      // sell by
    {"17", 6, 6, Charset::kNumeric, Check::kDateDay00},      // expiry
    {"20", 2, 2, Charset::kNumeric, Check::kNone},           // internal product variant
    {"21", 1, 20, Charset::kCset82, Check::kNone},           // serial
    {"22", 1, 20, Charset::kCset82, Check::kNone},           // consumer product variant
    {"240", 1, 30, Charset::kCset82, Check::kNone},          // additional product id
    {"241", 1, 30, Charset::kCset82, Check::kNone},          // customer part number
    {"250", 1, 30, Charset::kCset82, Check::kNone},          // secondary serial
    {"30", 1, 8, Charset::kNumeric, Check::kCount},          // variable count
    {"37", 1, 8, Charset::kNumeric, Check::kCount},          // count of trade items
    {"400", 1, 30, Charset::kCset82, Check::kNone},          // customer's PO number
    {"401", 1, 30, Charset::kCset82, Check::kNone},          // GINC
    {"402", 17, 17, Charset::kNumeric, Check::kCheckDigit},  // GSIN
    {"403", 1, 30, Charset::kCset82, Check::kNone},          // routing code
    {"410", 13, 13, Charset::kNumeric, Check::kCheckDigit},  // ship to GLN
    {"411", 13, 13, Charset::kNumeric, Check::kCheckDigit},  // bill to
    {"412", 13, 13, Charset::kNumeric, Check::kCheckDigit},  // purchased from
    {"413", 13, 13, Charset::kNumeric, Check::kCheckDigit},  // ship for
    {"414", 13, 13, Charset::kNumeric, Check::kCheckDigit},  // physical location
    {"415", 13, 13, Charset::kNumeric, Check::kCheckDigit},  // invoicing party
    {"416", 13, 13, Charset::kNumeric, Check::kCheckDigit},  // production or service location
    {"417", 13, 13, Charset::kNumeric, Check::kCheckDigit},  // party
    {"420", 1, 20, Charset::kCset82, Check::kNone},          // ship to postal code
    {"90", 1, 30, Charset::kCset82, Check::kNone},           // mutually agreed
    {"91", 1, 90, Charset::kCset82, Check::kNone},           // company internal 91-99
    {"92", 1, 90, Charset::kCset82, Check::kNone},
    {"93", 1, 90, Charset::kCset82, Check::kNone},
    {"94", 1, 90, Charset::kCset82, Check::kNone},
    {"95", 1, 90, Charset::kCset82, Check::kNone},
    {"96", 1, 90, Charset::kCset82, Check::kNone},
    {"97", 1, 90, Charset::kCset82, Check::kNone},
    {"98", 1, 90, Charset::kCset82, Check::kNone},
    {"99", 1, 90, Charset::kCset82, Check::kNone},
};
// Trade and logistic measures 310n-316n, 320n-337n, 340n-357n, 360n-369n: N6, n = 0..5.
constexpr AiSpec kMeasure = {"", 6, 6, Charset::kNumeric, Check::kNone};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool AllDigits(std::string_view s) {
  for (char c : s) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

bool IsMeasurePrefix(std::string_view three) {
  int v = (three[0] - '0') * 100 + (three[1] - '0') * 10 + (three[2] - '0');
  return (v >= 310 && v <= 316) || (v >= 320 && v <= 337) || (v >= 340 && v <= 357) ||
         (v >= 360 && v <= 369);
}

// The AI that data starts with (GS1 AIs are prefix-free), or nullptr. *ai_len gets its length.
const AiSpec* FindAi(std::string_view data, size_t* ai_len) {
  for (size_t len = 2; len <= 3; ++len) {
    if (data.size() < len || !AllDigits(data.substr(0, len))) return nullptr;
    for (const auto& spec : kAis) {
      if (spec.ai == data.substr(0, len)) {
        *ai_len = len;
        return &spec;
      }
    }
  }
  if (data.size() >= 4 && AllDigits(data.substr(0, 4)) && IsMeasurePrefix(data.substr(0, 3)) &&
      data[3] <= '5') {
    *ai_len = 4;
    return &kMeasure;
  }
  return nullptr;
}

// An exact AI ("01", "3103"), for the bracketed form.
const AiSpec* FindExactAi(std::string_view ai) {
  size_t len = 0;
  const AiSpec* spec = FindAi(ai, &len);
  return spec != nullptr && len == ai.size() ? spec : nullptr;
}

// GS1 "predefined length" AIs (General Specifications figure 7.8.5-2): by their first two
// digits. These need no FNC1 after them.
bool PredefinedLength(std::string_view ai) {
  int v = (ai[0] - '0') * 10 + (ai[1] - '0');
  return v <= 4 || (v >= 11 && v <= 20) || (v >= 31 && v <= 36) || v == 41;
}

// GS1 AI encodable character set 82.
bool IsCset82(char c) {
  if (c >= 'A' && c <= 'Z') return true;
  if (c >= 'a' && c <= 'z') return true;
  if (c >= '0' && c <= '9') return true;
  switch (c) {
    case '!': case '"': case '%': case '&': case '\'': case '(': case ')': case '*': case '+':
    case ',': case '-': case '.': case '/': case ':': case ';': case '<': case '=': case '>':
    case '?': case '_':
      return true;
    default:
      return false;
  }
}

// 'x', or 0x1D for what would not print.
std::string Describe(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return StrCat("'", std::string(1, c), "'");
  static const char* kHex = "0123456789ABCDEF";
  return StrCat("0x", std::string{kHex[u >> 4], kHex[u & 15]});
}

absl::Status Bad(std::string_view where, std::string_view what) {
  return absl::InvalidArgumentError(StrCat(where, ": ", what));
}

int DaysIn(int year, int month) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) return 29;
  return kDays[month - 1];
}

int ThisYear() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  return tm.tm_year + 1900;
}

// GS1 General Specifications 7.12: the year YY relative to current_year.
int FullYear(int yy, int current_year) {
  const int century = current_year / 100;
  const int diff = yy - current_year % 100;
  if (diff >= 51) return (century - 1) * 100 + yy;
  if (diff <= -50) return (century + 1) * 100 + yy;
  return century * 100 + yy;
}

std::string Pad(int v, int width) {
  std::string s = std::to_string(v);
  while (static_cast<int>(s.size()) < width) s.insert(s.begin(), '0');
  return s;
}

// YYMMDD (already 6 digits) to YYYY-MM-DD, or an error naming the bad part.
absl::StatusOr<std::string> ToIsoDate(std::string_view where, std::string_view v,
                                      bool day00_allowed, int current_year) {
  const int yy = (v[0] - '0') * 10 + (v[1] - '0');
  const int mm = (v[2] - '0') * 10 + (v[3] - '0');
  int dd = (v[4] - '0') * 10 + (v[5] - '0');
  if (mm < 1 || mm > 12) return Bad(where, StrCat("month ", v.substr(2, 2), " is not 01-12"));
  const int year = FullYear(yy, current_year);
  if (dd == 0) {
    if (!day00_allowed) return Bad(where, "day 00 is not allowed for this AI");
    dd = DaysIn(year, mm);
  } else if (dd > DaysIn(year, mm)) {
    return Bad(where, StrCat("day ", v.substr(4, 2), " does not exist in ", Pad(year, 4), "-",
                             Pad(mm, 2)));
  }
  return StrCat(Pad(year, 4), "-", Pad(mm, 2), "-", Pad(dd, 2));
}

// Checks one element's value against its AI and fills the typed fields of *scan.
absl::Status AddElement(const AiSpec& spec, std::string ai, std::string value, size_t position,
                        const ParseOptions& options, Scan* scan) {
  const std::string where = StrCat("AI ", ai, " at character ", position);
  const bool numeric = spec.charset == Charset::kNumeric;
  if (value.empty()) return Bad(where, "value is empty");
  if (spec.min_len == spec.max_len && value.size() != spec.min_len) {
    return Bad(where, StrCat("value must be ", spec.min_len, numeric ? " digits" : " characters",
                             ", got ", value.size()));
  }
  if (value.size() > spec.max_len) {
    return Bad(where, StrCat("value must be at most ", spec.max_len,
                             numeric ? " digits" : " characters", ", got ", value.size()));
  }
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (numeric && !IsDigit(c)) {
      return Bad(where, StrCat("character ", i + 1, " of the value, ", Describe(c),
                               ", is not a digit"));
    }
    if (!numeric && !IsCset82(c)) {
      return Bad(where, StrCat("character ", i + 1, " of the value, ", Describe(c),
                               ", is not in GS1 character set 82"));
    }
  }
  switch (spec.check) {
    case Check::kCheckDigit: {
      const char want = CheckDigit(std::string_view(value).substr(0, value.size() - 1));
      if (want != value.back()) {
        return Bad(where, StrCat("check digit should be ", std::string(1, want), ", got ",
                                 std::string(1, value.back())));
      }
      break;
    }
    case Check::kDate:
    case Check::kDateDay00: {
      auto iso = ToIsoDate(where, value, spec.check == Check::kDateDay00, options.current_year);
      if (!iso.ok()) return iso.status();
      if (ai == "17") scan->expiry = *iso;
      break;
    }
    case Check::kCount:
    case Check::kNone:
      break;
  }
  if (ai == "00") scan->sscc = value;
  if (ai == "01") scan->gtin = value;
  if (ai == "02") scan->content_gtin = value;
  if (ai == "10") scan->lot = value;
  if (ai == "21") scan->serial = value;
  if (ai == "37") scan->count = std::stoll(value);  // 1..8 digits: fits
  for (const auto& e : scan->elements) {
    if (e.ai == ai && e.value != value) {
      return Bad(where, StrCat("AI ", ai, " appears twice with different values ('", e.value,
                               "' and '", value, "')"));
    }
  }
  scan->elements.push_back({std::move(ai), std::move(value)});
  return absl::OkStatus();
}

// An unbracketed element string; base = characters before data in the raw scan.
absl::Status ParseElementString(std::string_view data, size_t base, const ParseOptions& options,
                                Scan* scan) {
  size_t pos = 0;
  if (!data.empty() && data[0] == kGs) ++pos;  // FNC1 in first position sent as GS
  if (pos >= data.size()) {
    return absl::InvalidArgumentError(StrCat("no GS1 data at character ", base + pos + 1));
  }
  while (pos < data.size()) {
    const size_t at = base + pos + 1;
    if (data[pos] == kGs) {
      return absl::InvalidArgumentError(
          StrCat("unexpected GS separator at character ", at, ": an AI was expected"));
    }
    size_t ai_len = 0;
    const AiSpec* spec = FindAi(data.substr(pos), &ai_len);
    if (spec == nullptr) {
      size_t n = 0;
      while (n < 4 && pos + n < data.size() && IsDigit(data[pos + n])) ++n;
      if (n == 0) {
        return absl::InvalidArgumentError(StrCat("expected an AI (digits) at character ", at,
                                                 ", got ", Describe(data[pos])));
      }
      return absl::InvalidArgumentError(StrCat("unknown or unsupported AI at character ", at,
                                               " (data starts '", data.substr(pos, n), "')"));
    }
    std::string ai(data.substr(pos, ai_len));
    const size_t start = pos + ai_len;
    std::string value;
    if (PredefinedLength(ai)) {
      // Exactly its length; a separator inside or the end of data makes it short.
      size_t end = start;
      while (end < data.size() && end - start < spec->max_len && data[end] != kGs) ++end;
      value = std::string(data.substr(start, end - start));
      if (value.size() != spec->max_len) {
        return Bad(StrCat("AI ", ai, " at character ", at),
                   StrCat("value must be ", spec->max_len, " digits, got ", value.size(),
                          end < data.size() ? " before a GS separator" : " before the end"));
      }
      pos = end;
      if (pos < data.size() && data[pos] == kGs) ++pos;  // redundant separator: tolerated
    } else {
      size_t end = data.find(kGs, start);
      if (end == std::string_view::npos) end = data.size();
      value = std::string(data.substr(start, end - start));
      pos = end < data.size() ? end + 1 : end;
    }
    if (auto s = AddElement(*spec, std::move(ai), std::move(value), at, options, scan); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// The bracketed human-readable form "(01)...(10)...".
absl::Status ParseBracketed(std::string_view data, size_t base, const ParseOptions& options,
                            Scan* scan) {
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t at = base + pos + 1;
    if (data[pos] != '(') {
      return absl::InvalidArgumentError(
          StrCat("expected '(' starting an AI at character ", at, ", got ", Describe(data[pos])));
    }
    const size_t close = data.find(')', pos + 1);
    if (close == std::string_view::npos || close - pos - 1 > 4) {
      return absl::InvalidArgumentError(
          StrCat("'(' at character ", at, " is not followed by an AI of 2-4 digits and ')'"));
    }
    const std::string_view ai = data.substr(pos + 1, close - pos - 1);
    if (ai.size() < 2 || !AllDigits(ai)) {
      return absl::InvalidArgumentError(
          StrCat("'(", ai, ")' at character ", at, " is not an AI (2-4 digits)"));
    }
    const AiSpec* spec = FindExactAi(ai);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(
          StrCat("unknown or unsupported AI (", ai, ") at character ", at));
    }
    std::string value;
    size_t p = close + 1;
    while (p < data.size() && data[p] != '(') {
      if (data[p] == '\\' && p + 1 < data.size() && data[p + 1] == '(') {
        value.push_back('(');
        p += 2;
      } else {
        value.push_back(data[p++]);
      }
    }
    if (auto s = AddElement(*spec, std::string(ai), std::move(value), at, options, scan);
        !s.ok()) {
      return s;
    }
    pos = p;
  }
  return absl::OkStatus();
}

// A plain number of 8, 12, 13 or 14 digits; format_hint names the symbology when one was sent.
absl::Status ParseGtinDigits(std::string_view digits, std::string_view format_hint, Scan* scan) {
  scan->kind = ScanKind::kGtin;
  const size_t n = digits.size();
  auto check = [&](std::string_view format) -> absl::Status {
    const char want = CheckDigit(digits.substr(0, n - 1));
    if (want != digits.back()) {
      return absl::InvalidArgumentError(StrCat(format, " ", digits, ": check digit should be ",
                                               std::string(1, want), ", got ",
                                               std::string(1, digits.back())));
    }
    return absl::OkStatus();
  };
  if (n == 8) {
    if (HasValidCheckDigit(digits)) {
      scan->format = "EAN-8";
      scan->gtin = StrCat("000000", digits);
      return absl::OkStatus();
    }
    if (format_hint.empty() && (digits[0] == '0' || digits[0] == '1')) {
      auto upca = ExpandUpcE(digits);
      if (upca.ok()) {
        scan->format = "UPC-E";
        scan->gtin = StrCat("00", *upca);
        return absl::OkStatus();
      }
      return absl::InvalidArgumentError(
          StrCat("8-digit code ", digits, " is neither an EAN-8 (check digit should be ",
                 std::string(1, CheckDigit(digits.substr(0, 7))), ") nor a UPC-E (",
                 upca.status().message(), ")"));
    }
    return check("EAN-8");
  }
  std::string_view format = format_hint;
  if (format.empty()) format = n == 12 ? "UPC-A" : n == 13 ? "EAN-13" : "GTIN-14";
  if (auto s = check(format); !s.ok()) return s;
  scan->format = std::string(format);
  scan->gtin = std::string(14 - n, '0') + std::string(digits);
  return absl::OkStatus();
}

bool IsGtinLength(size_t n) { return n == 8 || n == 12 || n == 13 || n == 14; }

}  // namespace

std::string_view KindName(ScanKind kind) {
  switch (kind) {
    case ScanKind::kElementString:
      return "gs1";
    case ScanKind::kGtin:
      return "gtin";
    case ScanKind::kText:
      return "text";
  }
  return "text";
}

char CheckDigit(std::string_view digits) {
  int sum = 0;
  int weight = 3;  // the digit next to the check digit weighs 3
  for (size_t i = digits.size(); i-- > 0;) {
    if (!IsDigit(digits[i])) return '?';
    sum += weight * (digits[i] - '0');
    weight = 4 - weight;
  }
  return static_cast<char>('0' + (10 - sum % 10) % 10);
}

bool HasValidCheckDigit(std::string_view digits) {
  return digits.size() >= 2 && AllDigits(digits) &&
         CheckDigit(digits.substr(0, digits.size() - 1)) == digits.back();
}

absl::StatusOr<std::string> ExpandUpcE(std::string_view e) {
  if (e.size() != 8 || !AllDigits(e)) {
    return absl::InvalidArgumentError("UPC-E must be 8 digits");
  }
  if (e[0] != '0' && e[0] != '1') {
    return absl::InvalidArgumentError(
        StrCat("UPC-E number system must be 0 or 1, got ", std::string(1, e[0])));
  }
  const std::string_view d = e.substr(1, 6);
  std::string a(1, e[0]);
  switch (d[5]) {
    case '0': case '1': case '2':
      a += StrCat(d.substr(0, 2), d.substr(5, 1), "0000", d.substr(2, 3));
      break;
    case '3':
      a += StrCat(d.substr(0, 3), "00000", d.substr(3, 2));
      break;
    case '4':
      a += StrCat(d.substr(0, 4), "00000", d.substr(4, 1));
      break;
    default:
      a += StrCat(d.substr(0, 5), "0000", d.substr(5, 1));
      break;
  }
  const char want = CheckDigit(a);
  if (want != e[7]) {
    return absl::InvalidArgumentError(StrCat("UPC-E check digit should be ",
                                             std::string(1, want), ", got ",
                                             std::string(1, e[7])));
  }
  return a + want;
}

std::vector<std::string> GtinForms(std::string_view g) {
  std::vector<std::string> out;
  if (g.size() != 14 || !AllDigits(g)) return out;
  out.emplace_back(g);
  if (g.starts_with("0")) out.emplace_back(g.substr(1));
  if (g.starts_with("00")) out.emplace_back(g.substr(2));
  if (g.starts_with("000000")) out.emplace_back(g.substr(6));
  return out;
}

std::string ToBracketed(const std::vector<Element>& elements) {
  std::string out;
  for (const auto& e : elements) {
    out += StrCat("(", e.ai, ")");
    for (char c : e.value) {
      if (c == '(') out.push_back('\\');
      out.push_back(c);
    }
  }
  return out;
}

std::string ToElementString(const std::vector<Element>& elements) {
  std::string out;
  for (size_t i = 0; i < elements.size(); ++i) {
    out += elements[i].ai;
    out += elements[i].value;
    if (i + 1 < elements.size() && !PredefinedLength(elements[i].ai)) out.push_back(kGs);
  }
  return out;
}

absl::StatusOr<Scan> ParseScan(std::string_view raw, const ParseOptions& in_options) {
  ParseOptions options = in_options;
  if (options.current_year == 0) options.current_year = ThisYear();
  if (raw.empty()) return absl::InvalidArgumentError("empty barcode");
  if (raw.size() > options.max_length) {
    return absl::InvalidArgumentError(
        StrCat("barcode is ", raw.size(), " characters, more than ", options.max_length));
  }
  Scan scan;
  std::string_view data = raw;
  if (raw[0] == ']') {
    if (raw.size() < 3 || !absl::ascii_isalpha(static_cast<unsigned char>(raw[1])) ||
        !absl::ascii_isalnum(static_cast<unsigned char>(raw[2]))) {
      return absl::InvalidArgumentError(
          "malformed symbology identifier: ']' must be followed by a letter and a letter or digit");
    }
    scan.symbology = std::string(raw.substr(0, 3));
    data = raw.substr(3);
    const std::string& sym = scan.symbology;
    if (sym == "]C1" || sym == "]d2" || sym == "]Q3" || sym == "]e0" || sym == "]J1") {
      scan.kind = ScanKind::kElementString;
      if (data.empty()) {
        return absl::InvalidArgumentError(StrCat("no GS1 data after symbology identifier ", sym));
      }
      auto s = !data.empty() && data[0] == '(' ? ParseBracketed(data, 3, options, &scan)
                                               : ParseElementString(data, 3, options, &scan);
      if (!s.ok()) return s;
      return scan;
    }
    if (sym == "]E0" || sym == "]E4") {
      const size_t want = sym == "]E0" ? 13 : 8;
      if (data.size() != want || !AllDigits(data)) {
        return absl::InvalidArgumentError(StrCat(sym == "]E0" ? "EAN-13" : "EAN-8", " (", sym,
                                                 ") must be ", want, " digits, got '", data,
                                                 "'"));
      }
      const bool upca = want == 13 && data[0] == '0';
      if (auto s = ParseGtinDigits(data, want == 8 ? "EAN-8" : upca ? "UPC-A" : "EAN-13", &scan);
          !s.ok()) {
        return s;
      }
      return scan;
    }
    if ((sym == "]I0" || sym == "]I1") && data.size() == 14 && AllDigits(data)) {
      if (auto s = ParseGtinDigits(data, "ITF-14", &scan); !s.ok()) return s;
      return scan;
    }
    scan.kind = ScanKind::kText;
    if (data.empty()) return absl::InvalidArgumentError(StrCat("no data after ", sym));
    for (size_t i = 0; i < data.size(); ++i) {
      const auto u = static_cast<unsigned char>(data[i]);
      if (u < 0x20 || u >= 0x7f) {
        return absl::InvalidArgumentError(StrCat("character ", i + 4, ", ", Describe(data[i]),
                                                 ", is not printable ASCII"));
      }
    }
    scan.text = std::string(data);
    return scan;
  }
  if (AllDigits(raw) && IsGtinLength(raw.size())) {
    if (auto s = ParseGtinDigits(raw, "", &scan); !s.ok()) return s;
    return scan;
  }
  scan.kind = ScanKind::kElementString;
  auto s = raw[0] == '(' ? ParseBracketed(raw, 0, options, &scan)
                         : ParseElementString(raw, 0, options, &scan);
  if (!s.ok()) {
    if (raw[0] != '(' && raw[0] != kGs && !IsDigit(raw[0])) {
      return absl::InvalidArgumentError(StrCat(
          "unrecognised barcode: not a GTIN (8, 12, 13 or 14 digits), not a GS1 element string "
          "(", s.message(), ")"));
    }
    return s;
  }
  return scan;
}

}  // namespace depot::gs1
