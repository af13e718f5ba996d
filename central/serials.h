// Serials across the network (docs/OPERATIONS.md "Serials across the network"): central's registry
// of every serial of the nodes' movements, one row per (SKU, serial) in the `serials` table, and
// the two exceptions it raises. Nodes keep serials unique within their own stock; only central
// sees every site, so only central can tell that a serial is in stock twice or shipped twice.
//
// ApplySerialMovement runs for every movement event with serials, inside ApplyEvents'
// transaction (exactly once per event, in each node's order):
// - stock in (RECEIPT of any reason: "po", "return", "transfer_in", ...; ADJUSTMENT > 0):
//   in_stock at the node. When the registry has the serial in_stock at ANOTHER site, the
//   exception serial_duplicate names the SKU, the serial and both sites (the new site is still
//   recorded). A shipped serial received with reason "return" came back: its shipment is
//   forgotten (shipping it again is no double shipment).
// - CONSUME: reason "transfer_out" -> in_transit from the node; otherwise shipped by the node
//   against the reference (a fulfilment). When a shipment of the serial no return has come back
//   from is on record (even if the serial was received again elsewhere since, other than as a
//   return), the exception serial_shipped_twice names the SKU, the serial, the earlier site and
//   reference and the new ones.
// - SCRAP, ADJUSTMENT < 0: gone (at the node). MOVE only changes bins; RESERVE / RELEASE carry no
//   stock: ignored.
// A movement older (hlc) than the registry row's last change (a node that synced late) does not
// change the row; only its shipment is still checked for serial_shipped_twice.
// A node restored from a backup (CentralStore::BeginEpoch): the events the node lost are ignored
// here, the registry is not rolled back for them; the node's new events update it forward.
#pragma once

#include <string>

#include "central/order_store.h"
#include "depot/v1/ledger.pb.h"

namespace depot::central {

inline constexpr const char* kSerialInStock = "in_stock";
inline constexpr const char* kSerialInTransit = "in_transit";
inline constexpr const char* kSerialShipped = "shipped";
inline constexpr const char* kSerialGone = "gone";

// Applies the serials of event's movement (none: nothing) from node_id to the registry, raising
// the exceptions above through tx.AddException. hlc: the movement's, else the event's. Throws
// only on storage failure.
void ApplySerialMovement(OrderTx& tx, const std::string& node_id, const v1::Event& event);

}  // namespace depot::central
