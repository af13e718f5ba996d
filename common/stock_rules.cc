#include "common/stock_rules.h"

#include "common/gs1.h"

#include <cctype>
#include <cstdio>


#include "absl/strings/str_cat.h"

namespace depot {

MovementEffects EffectsOf(const v1::Movement& m) {
  MovementEffects e;
  auto add = [&](const std::string& bin, int64_t delta) {
    e.stock[e.stock_count++] = {bin, delta};
  };
  switch (m.type()) {
    case v1::RECEIPT:
      add(m.bin(), m.quantity());
      break;
    case v1::MOVE:
      add(m.bin(), -m.quantity());
      add(m.to_bin(), m.quantity());
      break;
    case v1::ADJUSTMENT:
      add(m.bin(), m.quantity());
      break;
    case v1::SCRAP:
      add(m.bin(), -m.quantity());
      break;
    case v1::RESERVE:
      e.reserved_delta = m.quantity();
      break;
    case v1::RELEASE:
      e.reserved_delta = -m.quantity();
      break;
    case v1::CONSUME:
      add(m.bin(), -m.quantity());
      e.reserved_delta = -m.quantity();
      break;
    default:
      break;
  }
  return e;
}

namespace {
// Movement and Event have no map fields, so protobuf's ordinary serialization is canonical
// (fields in number order) and identical to its "deterministic" mode, and faster.
std::string Canonical(const google::protobuf::MessageLite& m) { return m.SerializeAsString(); }
}  // namespace

uint64_t EventHashOfBytes(uint64_t seq, std::string_view movement_bytes) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a over seq (little endian) and the bytes
  for (int i = 0; i < 8; ++i) {
    h ^= (seq >> (8 * i)) & 0xFF;
    h *= 1099511628211ULL;
  }
  for (unsigned char c : movement_bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h ^= h >> 33;  // final mix
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

uint64_t EventHash(uint64_t seq, const v1::Movement& m) {
  return EventHashOfBytes(seq, Canonical(m));
}

uint64_t SerializeAndHash(const v1::Event& event, std::string* out) {
  event.SerializeToString(out);
  if (!event.has_movement()) return 0;
  // The movement (field 10) is serialized last: its bytes end the buffer.
  const size_t len = event.movement().GetCachedSize();
  return EventHashOfBytes(event.seq(), std::string_view(*out).substr(out->size() - len));
}

bool ValidGtin(std::string_view gtin) {
  if (gtin.size() != 8 && gtin.size() != 12 && gtin.size() != 13 && gtin.size() != 14) {
    return false;
  }
  return gs1::HasValidCheckDigit(gtin);
}

bool ValidDate(std::string_view d) {
  if (d.size() != 10 || d[4] != '-' || d[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isdigit(static_cast<unsigned char>(d[i]))) return false;
  }
  int y = std::stoi(std::string(d.substr(0, 4)));
  int m = std::stoi(std::string(d.substr(5, 2)));
  int day = std::stoi(std::string(d.substr(8, 2)));
  if (y < 1900 || m < 1 || m > 12 || day < 1) return false;
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  int max = kDays[m - 1] + (m == 2 && leap ? 1 : 0);
  return day <= max;
}

absl::Status CheckCode(std::string_view what, std::string_view code, bool required) {
  if (code.empty()) {
    if (required) return absl::InvalidArgumentError(absl::StrCat(std::string(what), " is required"));
    return absl::OkStatus();
  }
  if (code.size() > 64) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(what), " is longer than 64 characters"));
  }
  if (code.front() == ' ' || code.back() == ' ') {
    return absl::InvalidArgumentError(absl::StrCat(std::string(what), " '", std::string(code), "' has surrounding spaces"));
  }
  for (char c : code) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      return absl::InvalidArgumentError(absl::StrCat(std::string(what), " contains a control character"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckAdjustment(std::string_view reason, int64_t quantity) {
  if (quantity == 0) return absl::InvalidArgumentError("quantity must not be zero");
  if (reason == "damaged" || reason == "lost" || reason == "expired") {
    if (quantity > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("reason '", std::string(reason), "' takes stock out: quantity must be negative"));
    }
    return absl::OkStatus();
  }
  if (reason == "found") {
    if (quantity < 0) {
      return absl::InvalidArgumentError(
          "reason 'found' brings stock in: quantity must be positive");
    }
    return absl::OkStatus();
  }
  if (reason == "count") return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown adjustment reason '", std::string(reason),
      "' (damaged, lost, expired, found, count)"));
}

std::string UtcDate(int64_t unix_micros) {
  // Days since 1970-01-01 to a civil date (Howard Hinnant's days_from_civil, inverted).
  int64_t days = unix_micros / 86'400'000'000LL;
  if (unix_micros % 86'400'000'000LL < 0) --days;
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld", static_cast<long long>(y),
                static_cast<long long>(m), static_cast<long long>(d));
  return buf;
}

bool LotExpired(std::string_view expiry, std::string_view today) {
  return !expiry.empty() && expiry < today;
}

}  // namespace depot
