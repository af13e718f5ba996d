#include "central/serials.h"

#include "absl/strings/str_cat.h"

namespace depot::central {
namespace {

using absl::StrCat;

constexpr const char* kTransferOut = "transfer_out";  // node/transfers.h kReasonOut
constexpr const char* kReturn = "return";              // node/returns.cc restock

void Raise(OrderTx& tx, const std::string& kind, const std::string& node_id,
           const std::string& sku, const std::string& message, int64_t at_ms) {
  v1::ExceptionEntry x;
  x.set_kind(kind);
  x.set_node_id(node_id);
  x.set_sku(sku);
  x.set_message(message);
  x.set_at_ms(at_ms);
  tx.AddException(x);
}

std::string Ref(const std::string& reference) {
  return reference.empty() ? "" : StrCat(" (reference '", reference, "')");
}

}  // namespace

void ApplySerialMovement(OrderTx& tx, const std::string& node_id, const v1::Event& event) {
  if (!event.has_movement()) return;
  const v1::Movement& m = event.movement();
  if (m.serials_size() == 0) return;
  enum { kIn, kOut, kGone } kind;
  switch (m.type()) {
    case v1::RECEIPT:
      kind = kIn;
      break;
    case v1::ADJUSTMENT:
      if (m.quantity() == 0) return;
      kind = m.quantity() > 0 ? kIn : kGone;
      break;
    case v1::SCRAP:
      kind = kGone;
      break;
    case v1::CONSUME:
      kind = kOut;
      break;
    default:
      return;  // MOVE changes bins only; RESERVE / RELEASE carry no stock
  }
  const uint64_t hlc = m.hlc() != 0 ? m.hlc() : event.hlc();
  const int64_t at_ms = static_cast<int64_t>(hlc >> 16);
  const bool transfer_out = kind == kOut && m.reason() == kTransferOut;
  for (const std::string& serial : m.serials()) {
    std::optional<v1::SerialRecord> row = tx.LoadSerial(m.sku(), serial);
    v1::SerialRecord r;
    if (row) r = *row;
    r.set_sku(m.sku());
    r.set_serial(serial);
    const bool late = row && hlc < row->updated_hlc();
    const std::string what = StrCat("serial '", serial, "' of SKU '", m.sku(), "'");
    if (kind == kIn) {
      if (!late && row && row->state() == kSerialInStock && row->site() != node_id) {
        Raise(tx, "serial_duplicate", node_id, m.sku(),
              StrCat(what, " received at ", node_id, Ref(m.reference()),
                     " is already in stock at ", row->site(), ": one of them is wrong"),
              at_ms);
      }
      if (m.type() == v1::RECEIPT && m.reason() == kReturn) {  // it came back
        r.clear_shipped_site();
        r.clear_shipped_reference();
      }
      if (!late) r.set_state(kSerialInStock);
    } else if (kind == kOut && !transfer_out) {
      if (!r.shipped_site().empty() &&
          (r.shipped_site() != node_id || r.shipped_reference() != m.reference())) {
        Raise(tx, "serial_shipped_twice", node_id, m.sku(),
              StrCat(what, " shipped by ", node_id, Ref(m.reference()),
                     " was already shipped by ", r.shipped_site(), Ref(r.shipped_reference()),
                     " and not returned since"),
              at_ms);
      }
      if (!late || r.shipped_site().empty()) {
        r.set_shipped_site(node_id);
        r.set_shipped_reference(m.reference());
      }
      if (!late) r.set_state(kSerialShipped);
    } else if (!late) {
      r.set_state(transfer_out ? kSerialInTransit : kSerialGone);
    }
    if (!late) {
      r.set_site(node_id);
      r.set_reference(m.reference());
      r.set_updated_hlc(hlc);
    }
    tx.SaveSerial(r);
  }
}

}  // namespace depot::central
