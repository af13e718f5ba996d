// depotctl: the command-line client for a depot-node's JSON API and, under `depotctl central`,
// for depot-central's. Requests are built from the same protobuf messages the servers parse, so
// the CLI and the APIs cannot drift apart.
// Exit codes: 0 success, 1 the server refused the request (message on stderr), 2 usage error,
// 3 the server could not be reached, 4 verify found differences.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/http_client.h"
#include "common/json.h"
#include "depot/v1/central.pb.h"
#include "depot/v1/node_api.pb.h"
#include "depot/v1/purchasing.pb.h"
#include "depot/v1/transfers.pb.h"

namespace {



std::string EnvOr(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

struct Ctl {
  std::string node = EnvOr("DEPOT_NODE", "http://127.0.0.1:7070");
  std::string central = EnvOr("DEPOT_CENTRAL", "http://127.0.0.1:7001");
  std::string op = EnvOr("DEPOT_OPERATOR", EnvOr("USER", "depotctl"));
  std::unique_ptr<depot::http::Client> client = depot::http::NewCurlClient();
  int exit_code = 0;

  // Sends a request to the node, prints the JSON answer on stdout or the error on stderr.
  void Call(std::string_view method, const std::string& path, const std::string& body = "",
            const std::string& content_type = "application/json") {
    CallAt(node, method, path, body, content_type);
  }
  // The same against central.
  void CallCentral(std::string_view method, const std::string& path, const std::string& body = "",
                   const std::string& content_type = "application/json") {
    CallAt(central, method, path, body, content_type);
  }
  void CallAt(const std::string& base, std::string_view method, const std::string& path,
              const std::string& body, const std::string& content_type) {
    auto r = client->Send(method, base + path, body,
                          {{"Content-Type", content_type}, {"X-Depot-Operator", op}});
    if (!r.ok()) {
      std::cerr << "depotctl: cannot reach " << base << ": " << r.status().message() << "\n";
      exit_code = 3;
      return;
    }
    if (r->status >= 200 && r->status < 300) {
      std::cout << r->body << "\n";
      return;
    }
    depot::v1::ErrorBody err;
    if (depot::JsonToMessage(r->body, &err).ok() && !err.error().message().empty()) {
      std::cerr << "depotctl: " << err.error().message() << " (HTTP " << r->status << " "
                << err.error().code() << ")\n";
    } else {
      std::cerr << "depotctl: HTTP " << r->status << ": " << r->body << "\n";
    }
    exit_code = 1;
  }
  void Post(const std::string& path, const google::protobuf::Message& m) {
    Call("POST", path, depot::MessageToJson(m));
  }
};

std::string Encode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Ctl ctl;
  CLI::App app{"depotctl: command-line client for Depot"};
  app.require_subcommand(1);
  app.add_option("--node", ctl.node, "node URL (env DEPOT_NODE)")->capture_default_str();
  app.add_option("--central", ctl.central, "central's HTTP URL (env DEPOT_CENTRAL)")
      ->capture_default_str();
  app.add_option("--operator", ctl.op, "operator recorded on writes (env DEPOT_OPERATOR)")
      ->capture_default_str();

  // import skus|bins FILE
  auto* import = app.add_subcommand("import", "import master data from CSV");
  std::string kind, file;
  import->add_option("kind", kind, "skus or bins")->required()->check(CLI::IsMember({"skus", "bins"}));
  import->add_option("file", file, "CSV file")->required()->check(CLI::ExistingFile);
  import->callback([&] {
    std::ifstream in(file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    ctl.Call("POST", "/v1/import/" + kind, ss.str(), "text/csv");
  });

  depot::v1::ReceiptRequest receipt;
  auto* receive = app.add_subcommand("receive", "receive stock into a bin");
  receive->add_option("--sku", *receipt.mutable_sku())->required();
  receive->add_option("--bin", *receipt.mutable_bin())->required();
  int64_t rq = 0;
  receive->add_option("--qty", rq)->required();
  receive->add_option("--lot", *receipt.mutable_lot());
  receive->add_option("--expiry", *receipt.mutable_expiry(), "YYYY-MM-DD");
  std::vector<std::string> rserials;
  receive->add_option("--serial", rserials, "serial numbers (repeat)");
  receive->add_option("--reference", *receipt.mutable_reference());
  receive->add_option("--request-id", *receipt.mutable_request_id(), "idempotency key");
  receive->callback([&] {
    receipt.set_quantity(rq);
    for (auto& s : rserials) receipt.add_serials(s);
    ctl.Post("/v1/receipts", receipt);
  });

  depot::v1::MoveRequest move;
  auto* mv = app.add_subcommand("move", "move stock between bins");
  mv->add_option("--sku", *move.mutable_sku())->required();
  mv->add_option("--from", *move.mutable_from_bin())->required();
  mv->add_option("--to", *move.mutable_to_bin())->required();
  int64_t mq = 0;
  mv->add_option("--qty", mq)->required();
  mv->add_option("--lot", *move.mutable_lot());
  std::vector<std::string> mserials;
  mv->add_option("--serial", mserials);
  mv->add_option("--reference", *move.mutable_reference());
  mv->add_option("--request-id", *move.mutable_request_id());
  mv->callback([&] {
    move.set_quantity(mq);
    for (auto& s : mserials) move.add_serials(s);
    ctl.Post("/v1/moves", move);
  });

  depot::v1::AdjustRequest adjust;
  auto* adj = app.add_subcommand("adjust", "adjust stock with a reason code");
  adj->add_option("--sku", *adjust.mutable_sku())->required();
  adj->add_option("--bin", *adjust.mutable_bin())->required();
  int64_t aq = 0;
  adj->add_option("--qty", aq, "signed quantity")->required();
  adj->add_option("--reason", *adjust.mutable_reason(), "damaged, lost, found, count")->required();
  adj->add_option("--lot", *adjust.mutable_lot());
  adj->add_option("--expiry", *adjust.mutable_expiry());
  std::vector<std::string> aserials;
  adj->add_option("--serial", aserials);
  adj->add_option("--reference", *adjust.mutable_reference());
  adj->add_option("--request-id", *adjust.mutable_request_id());
  adj->callback([&] {
    adjust.set_quantity(aq);
    for (auto& s : aserials) adjust.add_serials(s);
    ctl.Post("/v1/adjustments", adjust);
  });

  depot::v1::ScrapRequest scrap;
  auto* scr = app.add_subcommand("scrap", "scrap stock");
  scr->add_option("--sku", *scrap.mutable_sku())->required();
  scr->add_option("--bin", *scrap.mutable_bin())->required();
  int64_t sq = 0;
  scr->add_option("--qty", sq)->required();
  scr->add_option("--lot", *scrap.mutable_lot());
  std::vector<std::string> sserials;
  scr->add_option("--serial", sserials);
  scr->add_option("--reason", *scrap.mutable_reason());
  scr->add_option("--reference", *scrap.mutable_reference());
  scr->add_option("--request-id", *scrap.mutable_request_id());
  scr->callback([&] {
    scrap.set_quantity(sq);
    for (auto& s : sserials) scrap.add_serials(s);
    ctl.Post("/v1/scraps", scrap);
  });

  depot::v1::ReserveRequest reserve;
  auto* res = app.add_subcommand("reserve", "reserve units of a SKU for a reference");
  res->add_option("--sku", *reserve.mutable_sku())->required();
  res->add_option("--ref", *reserve.mutable_reference())->required();
  int64_t resq = 0;
  res->add_option("--qty", resq)->required();
  res->add_option("--request-id", *reserve.mutable_request_id());
  res->callback([&] {
    reserve.set_quantity(resq);
    ctl.Post("/v1/reservations", reserve);
  });

  depot::v1::ReleaseRequest release;
  auto* rel = app.add_subcommand("release", "release a reservation (all of it without --qty)");
  rel->add_option("--sku", *release.mutable_sku())->required();
  rel->add_option("--ref", *release.mutable_reference())->required();
  int64_t relq = 0;
  rel->add_option("--qty", relq);
  rel->add_option("--request-id", *release.mutable_request_id());
  rel->callback([&] {
    release.set_quantity(relq);
    ctl.Post("/v1/reservations/release", release);
  });

  depot::v1::ConsumeRequest consume;
  auto* con = app.add_subcommand("consume", "issue reserved goods (FEFO unless --bin)");
  con->add_option("--sku", *consume.mutable_sku())->required();
  con->add_option("--ref", *consume.mutable_reference())->required();
  int64_t conq = 0;
  con->add_option("--qty", conq)->required();
  con->add_option("--bin", *consume.mutable_bin());
  con->add_option("--lot", *consume.mutable_lot());
  std::vector<std::string> cserials;
  con->add_option("--serial", cserials);
  con->add_option("--request-id", *consume.mutable_request_id());
  con->callback([&] {
    consume.set_quantity(conq);
    for (auto& s : cserials) consume.add_serials(s);
    ctl.Post("/v1/reservations/consume", consume);
  });

  std::string qsku, qbin;
  auto* stock = app.add_subcommand("stock", "stock by bin and lot for a SKU or a bin");
  stock->add_option("--sku", qsku);
  stock->add_option("--bin", qbin);
  stock->callback([&] {
    ctl.Call("GET", absl::StrCat("/v1/stock?sku=", Encode(qsku), "&bin=", Encode(qbin)));
  });

  std::vector<std::string> atp_skus;
  auto* atp = app.add_subcommand("atp", "available-to-promise for SKUs");
  atp->add_option("sku", atp_skus)->required();
  atp->callback([&] {
    std::string list;
    for (auto& s : atp_skus) list += (list.empty() ? "" : ",") + Encode(s);
    ctl.Call("GET", "/v1/atp?skus=" + list);
  });

  std::string hsku, hbin, hlot, href, hop, htype;
  uint64_t hafter = 0, hlimit = 100;
  auto* hist = app.add_subcommand("history", "movement history, filtered and paged");
  hist->add_option("--sku", hsku);
  hist->add_option("--bin", hbin);
  hist->add_option("--lot", hlot);
  hist->add_option("--reference", href);
  hist->add_option("--by", hop, "operator");
  hist->add_option("--type", htype, "receipt, move, adjustment, scrap, reserve, release, consume");
  hist->add_option("--after-seq", hafter);
  hist->add_option("--limit", hlimit)->capture_default_str();
  hist->callback([&] {
    ctl.Call("GET", absl::StrCat("/v1/movements?sku=", Encode(hsku), "&bin=", Encode(hbin),
                                 "&lot=", Encode(hlot), "&reference=", Encode(href),
                                 "&operator=", Encode(hop), "&type=", Encode(htype),
                                 "&after_seq=", hafter, "&limit=", hlimit));
  });

  // Lots with expiry: `lot SKU LOT` (where it is, whether it expired, its movements) and
  // `lots expire` (write off expired stock now; the node also does it every 10 minutes).
  std::string lsku, llot;
  uint64_t lafter = 0, llimit = 100;
  auto* lot = app.add_subcommand("lot", "a lot: expiry, stock per bin and its movement history");
  lot->add_option("sku", lsku)->required();
  lot->add_option("lot", llot)->required();
  lot->add_option("--after-seq", lafter);
  lot->add_option("--limit", llimit)->capture_default_str();
  lot->callback([&] {
    ctl.Call("GET", absl::StrCat("/v1/lots/", Encode(lsku), "/", Encode(llot),
                                 "?after_seq=", lafter, "&limit=", llimit));
  });
  auto* lots = app.add_subcommand("lots", "lots with expiry");
  lots->require_subcommand(1);
  depot::v1::ExpireLotsRequest expire;
  auto* lexp = lots->add_subcommand("expire", "write off the stock of expired lots now");
  lexp->add_option("--request-id", *expire.mutable_request_id());
  lexp->callback([&] { ctl.Post("/v1/lots/expire", expire); });

  std::string rsku;
  auto* rlist = app.add_subcommand("reservations", "open reservations");
  rlist->add_option("--sku", rsku);
  rlist->callback([&] { ctl.Call("GET", "/v1/reservations?sku=" + Encode(rsku)); });

  app.add_subcommand("skus", "list SKUs")->callback([&] { ctl.Call("GET", "/v1/skus?limit=1000"); });
  app.add_subcommand("bins", "list bins")->callback([&] { ctl.Call("GET", "/v1/bins"); });
  // scan CODE: what the node makes of a barcode (GS1 element string, EAN/UPC/GTIN) and its SKU.
  // In a shell write GS (ASCII 29) as $'\x1d', or use the bracketed form "(01)...(10)...".
  std::string scan_code;
  auto* scan = app.add_subcommand("scan", "parse a barcode (GS1, EAN/UPC) and find its SKU");
  scan->add_option("code", scan_code, "the scanned text")->required();
  scan->callback([&] { ctl.Call("GET", "/v1/scan?code=" + Encode(scan_code)); });
  app.add_subcommand("status", "node id, epoch, ledger size, outbox depth")->callback([&] {
    ctl.Call("GET", "/v1/status");
  });
  app.add_subcommand("sync", "the node's sync state with central")->callback([&] {
    ctl.Call("GET", "/v1/sync");
  });

  // ---- order fulfilment at the node (node/fulfilment.h) ----
  std::string fstatus, fwave;
  auto* flist = app.add_subcommand("fulfilments", "fulfilments at this node, newest first");
  flist->add_option("--status", fstatus, "accepted, picking, picked, packed, shipped, cancelled");
  flist->add_option("--wave", fwave, "only this wave");
  flist->callback([&] {
    ctl.Call("GET", absl::StrCat("/v1/fulfilments?status=", Encode(fstatus),
                                 "&wave=", Encode(fwave)));
  });
  std::string fid;
  auto* fget = app.add_subcommand("fulfilment", "one fulfilment with its lines and packages");
  fget->add_option("id", fid)->required();
  fget->callback([&] { ctl.Call("GET", "/v1/fulfilments/" + Encode(fid)); });

  depot::v1::CreateWaveRequest wave;
  auto* wv = app.add_subcommand("wave", "group released orders into a wave with a pick list");
  uint32_t wmax = 0;
  wv->add_option("--max", wmax, "at most this many orders (default 50)");
  wv->add_option("--service-level", *wave.mutable_service_level(), "only this service level");
  wv->add_option("--request-id", *wave.mutable_request_id());
  wv->callback([&] {
    wave.set_max_orders(wmax);
    ctl.Post("/v1/waves", wave);
  });
  app.add_subcommand("waves", "waves, newest first")->callback([&] {
    ctl.Call("GET", "/v1/waves");
  });
  std::string plwave;
  bool pljson = false;
  auto* pl = app.add_subcommand("picklist", "a wave's pick list in bin walk order");
  pl->add_option("wave", plwave)->required();
  pl->add_flag("--json", pljson, "print the Wave as JSON");
  pl->callback([&] {
    if (pljson) return ctl.Call("GET", "/v1/waves/" + Encode(plwave));
    auto r = ctl.client->Send("GET", ctl.node + "/v1/waves/" + Encode(plwave), "",
                              {{"X-Depot-Operator", ctl.op}});
    depot::v1::Wave w;
    if (!r.ok() || r->status != 200 || !depot::JsonToMessage(r->body, &w).ok()) {
      return ctl.Call("GET", "/v1/waves/" + Encode(plwave));  // prints the error
    }
    std::printf("wave %s: %d orders, %d tasks\n", w.wave_id().c_str(), w.fulfilment_ids_size(),
                w.tasks_size());
    std::printf("%-12s %-16s %-14s %-10s %6s %6s  %s\n", "bin", "sku", "lot", "expiry", "qty",
                "picked", "fulfilment/line");
    for (const auto& t : w.tasks()) {
      std::printf("%-12s %-16s %-14s %-10s %6lld %6lld  %s/%u\n", t.bin().c_str(),
                  t.sku().c_str(), t.lot().c_str(), t.expiry().c_str(),
                  static_cast<long long>(t.quantity()), static_cast<long long>(t.picked()),
                  t.fulfilment_id().c_str(), t.line_no());
    }
  });

  depot::v1::PickRequest pick;
  auto* pk = app.add_subcommand("pick", "pick scanned goods into the staging bin");
  pk->add_option("fulfilment", *pick.mutable_fulfilment_id())->required();
  pk->add_option("--bin", *pick.mutable_bin())->required();
  pk->add_option("--item", *pick.mutable_item(), "SKU code or GTIN")->required();
  int64_t pkq = 0;
  pk->add_option("--qty", pkq)->required();
  pk->add_option("--lot", *pick.mutable_lot());
  std::vector<std::string> pkserials;
  pk->add_option("--serial", pkserials, "serial numbers (repeat)");
  pk->add_option("--request-id", *pick.mutable_request_id());
  pk->callback([&] {
    pick.set_quantity(pkq);
    for (auto& s : pkserials) pick.add_serials(s);
    ctl.Post("/v1/picks", pick);
  });

  depot::v1::ShortPickRequest shortp;
  auto* sp = app.add_subcommand("short", "report units of a line that cannot be picked here");
  sp->add_option("fulfilment", *shortp.mutable_fulfilment_id())->required();
  uint32_t spline = 0;
  int64_t spq = 0;
  sp->add_option("--line", spline)->required();
  sp->add_option("--qty", spq, "default: everything not yet picked");
  sp->add_option("--reason", *shortp.mutable_reason(), "not_found, damaged, wrong_item, other")
      ->required();
  sp->add_option("--request-id", *shortp.mutable_request_id());
  sp->callback([&] {
    shortp.set_line_no(spline);
    shortp.set_quantity(spq);
    ctl.Post("/v1/picks/short", shortp);
  });

  depot::v1::PackRequest pack;
  auto* pa = app.add_subcommand("pack", "pack what was picked (one package, or --package-json)");
  pa->add_option("fulfilment", *pack.mutable_fulfilment_id())->required();
  int64_t weight = 0;
  std::string dims, package_json;
  pa->add_option("--weight-g", weight, "package weight in grams");
  pa->add_option("--dims", dims, "LxWxH in millimetres");
  pa->add_option("--package-json", package_json,
                 "file with {\"packages\":[{\"weight_g\":..,\"length_mm\":..,\"width_mm\":..,"
                 "\"height_mm\":..,\"items\":[{\"sku\":..,\"quantity\":..}]}]}")
      ->check(CLI::ExistingFile);
  pa->add_option("--request-id", *pack.mutable_request_id());
  pa->callback([&] {
    if (!package_json.empty()) {
      std::ifstream in(package_json, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      depot::v1::PackRequest from_file;
      if (auto st = depot::JsonToMessage(ss.str(), &from_file); !st.ok()) {
        std::cerr << "depotctl: " << package_json << ": " << st.message() << "\n";
        ctl.exit_code = 2;
        return;
      }
      *pack.mutable_packages() = from_file.packages();
    } else {
      long long l = 0, w = 0, h = 0;
      char x1 = 0, x2 = 0;
      std::istringstream in(dims);
      if (weight <= 0 || !(in >> l >> x1 >> w >> x2 >> h) || (x1 != 'x' && x1 != 'X') ||
          (x2 != 'x' && x2 != 'X')) {
        std::cerr << "depotctl: pack needs --weight-g N and --dims LxWxH (or --package-json)\n";
        ctl.exit_code = 2;
        return;
      }
      auto* p = pack.add_packages();
      p->set_weight_g(weight);
      p->set_length_mm(l);
      p->set_width_mm(w);
      p->set_height_mm(h);
    }
    ctl.Post("/v1/packs", pack);
  });

  depot::v1::ShipRequest ship;
  auto* sh = app.add_subcommand("ship", "hand a packed fulfilment to the carrier");
  sh->add_option("fulfilment", *ship.mutable_fulfilment_id())->required();
  sh->add_option("--carrier", *ship.mutable_carrier())->required();
  sh->add_option("--tracking", *ship.mutable_tracking())->required();
  sh->add_option("--request-id", *ship.mutable_request_id());
  sh->callback([&] { ctl.Post("/v1/shipments", ship); });

  // sell / collect SKU:QTY[:PRICE_CENTS]...
  auto local_order = [&](depot::v1::LocalOrderKind kind, const std::vector<std::string>& items,
                         const std::string& customer, const std::string& request_id) {
    depot::v1::LocalOrderRequest lo;
    lo.set_kind(kind);
    lo.set_customer(customer);
    lo.set_request_id(request_id);
    for (const auto& item : items) {
      std::vector<std::string> parts;
      std::stringstream in(item);
      for (std::string part; std::getline(in, part, ':');) parts.push_back(part);
      auto* l = lo.add_lines();
      try {
        if (parts.size() < 2 || parts.size() > 3) throw std::invalid_argument(item);
        l->set_sku(parts[0]);
        l->set_quantity(std::stoll(parts[1]));
        if (parts.size() == 3) l->set_unit_price_cents(std::stoll(parts[2]));
      } catch (const std::exception&) {
        std::cerr << "depotctl: '" << item << "' is not SKU:QTY[:PRICE_CENTS]\n";
        ctl.exit_code = 2;
        return;
      }
    }
    ctl.Post("/v1/local-orders", lo);
  };
  std::vector<std::string> sell_items, collect_items;
  std::string sell_customer, sell_rid, collect_customer, collect_rid;
  auto* sell = app.add_subcommand("sell", "counter sale: the goods leave now");
  sell->add_option("items", sell_items, "SKU:QTY[:PRICE_CENTS] ...")->required();
  sell->add_option("--customer", sell_customer);
  sell->add_option("--request-id", sell_rid, "idempotency key of the sale");
  sell->callback([&] {
    local_order(depot::v1::COUNTER_SALE, sell_items, sell_customer, sell_rid);
  });
  auto* collect = app.add_subcommand("collect", "click-and-collect: reserve now, hand out later");
  collect->add_option("items", collect_items, "SKU:QTY[:PRICE_CENTS] ...")->required();
  collect->add_option("--customer", collect_customer);
  collect->add_option("--request-id", collect_rid);
  collect->callback([&] {
    local_order(depot::v1::CLICK_AND_COLLECT, collect_items, collect_customer, collect_rid);
  });
  depot::v1::HandOutRequest handout;
  auto* ho = app.add_subcommand("handout", "hand a click-and-collect order to the customer");
  ho->add_option("fulfilment", *handout.mutable_fulfilment_id())->required();
  ho->add_option("--request-id", *handout.mutable_request_id());
  ho->callback([&] { ctl.Post("/v1/handouts", handout); });

  // Selling rights at this node (docs/SYNC.md "Selling rights").
  std::string rights_sku;
  auto* rights = app.add_subcommand("rights", "this node's selling rights per SKU, and the policy");
  rights->add_option("--sku", rights_sku, "only this SKU");
  rights->callback([&] {
    if (rights->get_subcommands().empty()) ctl.Call("GET", "/v1/rights?sku=" + Encode(rights_sku));
  });
  std::string rhsku;
  uint32_t rhlimit = 100;
  auto* rhist = rights->add_subcommand("history", "transfers of rights, newest first");
  rhist->add_option("--sku", rhsku, "only this SKU");
  rhist->add_option("--limit", rhlimit, "at most this many (1..10000)");
  rhist->callback([&] {
    ctl.Call("GET", absl::StrCat("/v1/rights/history?sku=", Encode(rhsku), "&limit=", rhlimit));
  });
  depot::v1::RightsRequest rreq;
  auto* rask = rights->add_subcommand("request", "ask central for more selling rights now");
  rask->add_option("sku", *rreq.mutable_sku())->required();
  int64_t rask_units = 0;
  rask->add_option("units", rask_units)->required();
  rask->add_option("--reason", *rreq.mutable_reason());
  rask->callback([&] {
    rreq.set_units(rask_units);
    ctl.Post("/v1/rights/request", rreq);
  });

  // count create|generate|list|show|start|submit|approve|reject|kpi: cycle counts
  // (docs/OPERATIONS.md "Cycle counts"). Counters see the blind view; --supervisor the full one.
  auto* count = app.add_subcommand("count", "cycle counts: tasks, blind counting, approval, KPI");
  count->require_subcommand(1);
  bool count_sup = false;
  auto view = [&] { return count_sup ? std::string("?view=supervisor") : std::string(); };
  depot::v1::CreateCountRequest ccreate;
  int64_t cc_units = -1, cc_percent = -1;
  bool cc_start = false;
  auto* cc = count->add_subcommand("create", "a count task for a SKU, a bin, or a SKU in a bin");
  cc->add_option("--sku", *ccreate.mutable_sku());
  cc->add_option("--bin", *ccreate.mutable_bin());
  cc->add_option("--tolerance-units", cc_units, "override the node's default");
  cc->add_option("--tolerance-percent", cc_percent, "override the node's default");
  cc->add_flag("--start", cc_start, "start counting now");
  cc->add_option("--request-id", *ccreate.mutable_request_id());
  cc->add_flag("--supervisor", count_sup, "show expected quantities");
  cc->callback([&] {
    if (cc_units >= 0) ccreate.set_tolerance_units(cc_units);
    if (cc_percent >= 0) ccreate.set_tolerance_percent(cc_percent);
    ccreate.set_start(cc_start);
    ctl.Call("POST", "/v1/counts" + view(), depot::MessageToJson(ccreate));
  });
  depot::v1::GenerateCountsRequest cgen;
  bool cg_start = false;
  auto* cg = count->add_subcommand("generate", "ABC rule: tasks for SKUs not counted in time");
  uint32_t cg_a = 0, cg_b = 0, cg_c = 0, cg_window = 0, cg_limit = 0;
  cg->add_option("--window-days", cg_window, "days of volume that classify SKUs [30]");
  cg->add_option("--a-days", cg_a, "interval of class A [7]");
  cg->add_option("--b-days", cg_b, "interval of class B [30]");
  cg->add_option("--c-days", cg_c, "interval of class C [90]");
  cg->add_option("--limit", cg_limit, "at most this many tasks [1000]");
  cg->add_flag("--start", cg_start, "start the tasks now");
  cg->add_flag("--supervisor", count_sup, "show expected quantities");
  cg->callback([&] {
    cgen.set_a_days(cg_a);
    cgen.set_b_days(cg_b);
    cgen.set_c_days(cg_c);
    cgen.set_limit(cg_limit);
    cgen.set_start(cg_start);
    cgen.set_window_days(cg_window);
    ctl.Call("POST", "/v1/counts/generate" + view(), depot::MessageToJson(cgen));
  });
  std::string cl_status;
  uint32_t cl_limit = 100;
  auto* cl = count->add_subcommand("list", "count tasks, newest first");
  cl->add_option("--status", cl_status, "open, pending_approval or done");
  cl->add_option("--limit", cl_limit, "1..10000");
  cl->add_flag("--supervisor", count_sup, "show expected quantities");
  cl->callback([&] {
    ctl.Call("GET", absl::StrCat("/v1/counts?status=", Encode(cl_status), "&limit=", cl_limit,
                                 count_sup ? "&view=supervisor" : ""));
  });
  std::string count_id;
  auto* cs = count->add_subcommand("show", "one count task (blind unless --supervisor)");
  cs->add_option("id", count_id)->required();
  cs->add_flag("--supervisor", count_sup, "show expected quantities");
  cs->callback([&] { ctl.Call("GET", "/v1/counts/" + Encode(count_id) + view()); });
  auto* cst = count->add_subcommand("start", "start counting: records the ledger seq");
  cst->add_option("id", count_id)->required();
  cst->callback([&] { ctl.Call("POST", "/v1/counts/" + Encode(count_id) + "/start", "{}"); });
  std::vector<std::string> csub_lines;
  std::string csub_json;
  auto* csub = count->add_subcommand("submit", "submit counted quantities");
  csub->add_option("id", count_id)->required();
  csub->add_option("--line", csub_lines, "LINE_NO=COUNTED (repeat)");
  csub->add_option("--lines-json", csub_json, "the lines as JSON (with sku/bin/lot, serials)");
  csub->callback([&] {
    depot::v1::SubmitCountRequest req;
    if (!csub_json.empty()) {
      if (!depot::JsonToMessage(absl::StrCat("{\"lines\":", csub_json, "}"), &req).ok()) {
        std::cerr << "depotctl: --lines-json is not a JSON list of counted lines\n";
        ctl.exit_code = 2;
        return;
      }
    }
    for (const auto& l : csub_lines) {
      auto eq = l.find('=');
      auto* line = req.add_lines();
      try {
        if (eq == std::string::npos) throw std::invalid_argument(l);
        line->set_line_no(static_cast<uint32_t>(std::stoul(l.substr(0, eq))));
        line->set_counted(std::stoll(l.substr(eq + 1)));
      } catch (const std::exception&) {
        std::cerr << "depotctl: --line wants LINE_NO=COUNTED, got '" << l << "'\n";
        ctl.exit_code = 2;
        return;
      }
    }
    ctl.Call("POST", "/v1/counts/" + Encode(count_id) + "/submit", depot::MessageToJson(req));
  });
  for (const char* verb : {"approve", "reject"}) {
    auto* cr = count->add_subcommand(
        verb, std::string(verb) + " counted lines waiting for approval (all without --line)");
    auto lines = std::make_shared<std::vector<uint32_t>>();
    auto note = std::make_shared<std::string>();
    cr->add_option("id", count_id)->required();
    cr->add_option("--line", *lines, "line number (repeat)");
    cr->add_option("--note", *note);
    cr->callback([&ctl, &count_id, lines, note, verb] {
      depot::v1::ReviewCountRequest req;
      for (uint32_t n : *lines) req.add_line_nos(n);
      req.set_note(*note);
      ctl.Call("POST", "/v1/counts/" + Encode(count_id) + "/" + verb, depot::MessageToJson(req));
    });
  }
  uint32_t ck_days = 0;
  auto* ck = count->add_subcommand("kpi", "inventory accuracy: share of count lines in tolerance");
  ck->add_option("--days", ck_days, "only lines posted in the last N days (0 = all)");
  ck->callback([&] { ctl.Call("GET", absl::StrCat("/v1/counts/kpi?days=", ck_days)); });

  // central import|stock|nodes|exceptions|channels|orders|kpis|rights|listings: depot-central's
  // API (--central).
  auto* central = app.add_subcommand("central", "depot-central's API (see --central)");
  central->require_subcommand(1);
  central->fallthrough();  // --central/--operator may follow the subcommand
  std::string ckind, cfile;
  auto* cimport = central->add_subcommand("import", "import master data from CSV at central");
  cimport->fallthrough();
  cimport->add_option("kind", ckind, "skus, sites, bins, channels or kits")
      ->required()->check(CLI::IsMember({"skus", "sites", "bins", "channels", "kits"}));
  cimport->add_option("file", cfile, "CSV file")->required()->check(CLI::ExistingFile);
  cimport->callback([&] {
    std::ifstream in(cfile, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    ctl.CallCentral("POST", "/v1/import/" + ckind, ss.str(), "text/csv");
  });
  std::string csku, csite;
  auto* cstock = central->add_subcommand("stock", "network stock by SKU across sites, or by site");
  cstock->fallthrough();
  cstock->add_option("--sku", csku);
  cstock->add_option("--site", csite);
  cstock->callback([&] {
    ctl.CallCentral("GET", absl::StrCat("/v1/stock?sku=", Encode(csku), "&site=", Encode(csite)));
  });
  auto* cnodes = central->add_subcommand("nodes", "registered nodes and their sync state");
  cnodes->fallthrough();
  cnodes->callback([&] { ctl.CallCentral("GET", "/v1/nodes"); });
  auto* cchannels = central->add_subcommand("channels", "sales channels and kits");
  cchannels->fallthrough();
  cchannels->callback([&] { ctl.CallCentral("GET", "/v1/channels"); });

  // central exceptions [filters] | exceptions assign ID --to NAME | exceptions resolve ID --note
  std::string cnode, cexkind, cexorder, cexsku, cexassignee;
  bool cexall = false;
  auto* cexc = central->add_subcommand("exceptions", "central's exception list (open ones)");
  cexc->fallthrough();
  cexc->add_option("--node", cnode, "only this node (site)");
  cexc->add_option("--kind", cexkind,
                   "only this kind, e.g. short_pick, cancel_after_ship, restore_lost_events");
  cexc->add_option("--order", cexorder, "only this order");
  cexc->add_option("--sku", cexsku, "only this SKU");
  cexc->add_option("--assignee", cexassignee, "only those assigned to this person");
  cexc->add_flag("--all", cexall, "resolved ones too");
  uint64_t cexid = 0;
  std::string cexto, cexnote;
  auto* cexassign = cexc->add_subcommand("assign", "assign an exception to someone");
  cexassign->fallthrough();
  cexassign->add_option("id", cexid, "exception id")->required();
  cexassign->add_option("--to", cexto, "who works on it")->required();
  cexassign->callback([&] {
    depot::v1::ExceptionActionRequest a;
    a.set_assignee(cexto);
    ctl.CallCentral("POST", absl::StrCat("/v1/exceptions/", cexid, "/assign"),
                    depot::MessageToJson(a));
  });
  auto* cexresolve = cexc->add_subcommand("resolve", "resolve an exception with a note");
  cexresolve->fallthrough();
  cexresolve->add_option("id", cexid, "exception id")->required();
  cexresolve->add_option("--note", cexnote, "what was done")->required();
  cexresolve->callback([&] {
    depot::v1::ExceptionActionRequest a;
    a.set_note(cexnote);
    ctl.CallCentral("POST", absl::StrCat("/v1/exceptions/", cexid, "/resolve"),
                    depot::MessageToJson(a));
  });
  cexc->callback([&] {
    if (cexassign->parsed() || cexresolve->parsed()) return;
    ctl.CallCentral("GET", absl::StrCat("/v1/exceptions?node_id=", Encode(cnode),
                                        "&kind=", Encode(cexkind), "&order_id=", Encode(cexorder),
                                        "&sku=", Encode(cexsku), "&assignee=", Encode(cexassignee),
                                        cexall ? "&include_resolved=true" : ""));
  });

  // central orders capture|list|show|cancel|review|deliver
  auto* corders = central->add_subcommand("orders", "orders at central");
  corders->require_subcommand(1);
  corders->fallthrough();
  std::string co_file, co_json;
  auto* co_capture = corders->add_subcommand(
      "capture", "capture an order (CaptureOrderRequest as JSON; same external id = same order)");
  co_capture->fallthrough();
  auto* co_file_opt =
      co_capture->add_option("--file", co_file, "JSON file")->check(CLI::ExistingFile);
  co_capture->add_option("--json", co_json, "the JSON itself")->excludes(co_file_opt);
  co_capture->callback([&] {
    std::string body = co_json;
    if (!co_file.empty()) {
      std::ifstream in(co_file, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      body = ss.str();
    }
    if (body.empty()) {
      std::cerr << "depotctl: orders capture needs --file FILE or --json TEXT\n";
      ctl.exit_code = 2;
      return;
    }
    ctl.CallCentral("POST", "/v1/orders", body);
  });
  std::string co_status, co_channel, co_site, co_after;
  uint32_t co_limit = 100;
  auto* co_list = corders->add_subcommand("list", "orders, filtered and paged (no history)");
  co_list->fallthrough();
  co_list->add_option("--status", co_status, "e.g. shipped, backordered, ORDER_ON_HOLD");
  co_list->add_option("--channel", co_channel);
  co_list->add_option("--site", co_site, "orders with a fulfilment at this site");
  co_list->add_option("--after", co_after, "page after this order id");
  co_list->add_option("--limit", co_limit, "1..1000")->capture_default_str();
  co_list->callback([&] {
    ctl.CallCentral("GET", absl::StrCat("/v1/orders?status=", Encode(co_status), "&channel=",
                                        Encode(co_channel), "&site=", Encode(co_site), "&after=",
                                        Encode(co_after), "&limit=", co_limit));
  });
  std::string co_id;
  auto* co_show = corders->add_subcommand("show", "one order with fulfilments and history");
  co_show->fallthrough();
  co_show->add_option("id", co_id, "order id")->required();
  co_show->callback([&] { ctl.CallCentral("GET", "/v1/orders/" + Encode(co_id)); });
  depot::v1::CancelOrderRequest co_cancel_req;
  auto* co_cancel = corders->add_subcommand(
      "cancel", "cancel: open units at once, released ones are asked of their site");
  co_cancel->fallthrough();
  co_cancel->add_option("id", co_id, "order id")->required();
  co_cancel->add_option("--reason", *co_cancel_req.mutable_reason());
  co_cancel->callback([&] {
    ctl.CallCentral("POST", "/v1/orders/" + Encode(co_id) + "/cancel",
                    depot::MessageToJson(co_cancel_req));
  });
  depot::v1::ReviewOrderRequest co_review_req;
  bool co_approve = false, co_reject = false;
  auto* co_review = corders->add_subcommand("review", "approve or reject an order on hold");
  co_review->fallthrough();
  co_review->add_option("id", co_id, "order id")->required();
  auto* co_approve_flag = co_review->add_flag("--approve", co_approve, "release it");
  co_review->add_flag("--reject", co_reject, "reject it")->excludes(co_approve_flag);
  co_review->add_option("--note", *co_review_req.mutable_note());
  co_review->callback([&] {
    if (co_approve == co_reject) {
      std::cerr << "depotctl: orders review needs --approve or --reject\n";
      ctl.exit_code = 2;
      return;
    }
    co_review_req.set_approve(co_approve);
    ctl.CallCentral("POST", "/v1/orders/" + Encode(co_id) + "/review",
                    depot::MessageToJson(co_review_req));
  });
  depot::v1::DeliveryRequest co_delivery_req;
  bool co_failed = false;
  auto* co_deliver = corders->add_subcommand("deliver", "record a carrier's delivery (or failure)");
  co_deliver->fallthrough();
  co_deliver->add_option("id", co_id, "order id")->required();
  co_deliver->add_option("--fulfilment", *co_delivery_req.mutable_fulfilment_id(),
                         "fulfilment id (may be left out when the order has one)");
  co_deliver->add_flag("--failed", co_failed, "the delivery failed (raises failed_shipment)");
  co_deliver->add_option("--note", *co_delivery_req.mutable_note());
  co_deliver->callback([&] {
    co_delivery_req.set_failed(co_failed);
    ctl.CallCentral("POST", "/v1/orders/" + Encode(co_id) + "/delivery",
                    depot::MessageToJson(co_delivery_req));
  });
  int64_t co_from_ms = 0, co_to_ms = 0;
  auto* ckpis =
      central->add_subcommand("kpis", "per site and channel: shipped, cycle time, fill rate");
  ckpis->fallthrough();
  ckpis->add_option("--from-ms", co_from_ms, "captured at or after (ms since epoch)");
  ckpis->add_option("--to-ms", co_to_ms, "captured before (ms since epoch)");
  ckpis->callback([&] {
    ctl.CallCentral("GET", absl::StrCat("/v1/kpis?from_ms=", co_from_ms, "&to_ms=", co_to_ms));
  });
  // central accuracy: inventory accuracy of cycle counts per site.
  std::string ca_site;
  int64_t ca_from_ms = 0, ca_to_ms = 0;
  auto* caccuracy = central->add_subcommand(
      "accuracy", "per site: share of cycle-count lines within tolerance");
  caccuracy->fallthrough();
  caccuracy->add_option("--site", ca_site, "only this site");
  caccuracy->add_option("--from-ms", ca_from_ms, "posted at or after (ms since epoch)");
  caccuracy->add_option("--to-ms", ca_to_ms, "posted before (ms since epoch)");
  caccuracy->callback([&] {
    ctl.CallCentral("GET", absl::StrCat("/v1/kpi/inventory-accuracy?site=", Encode(ca_site),
                                        "&from_ms=", ca_from_ms, "&to_ms=", ca_to_ms));
  });
  // central rights [--site --sku] | rights history | rights release | rights policy | rights
  // verify, central listings CHANNEL: central's selling rights (docs/SYNC.md "Selling rights").
  std::string cr_site, cr_sku;
  auto* crights = central->add_subcommand("rights", "central's selling rights per site and SKU");
  crights->fallthrough();
  crights->add_option("--site", cr_site, "only this site");
  crights->add_option("--sku", cr_sku, "only this SKU");
  std::string crh_site, crh_sku;
  uint32_t crh_limit = 100;
  auto* crhist = crights->add_subcommand("history", "changes of central's rights, newest first");
  crhist->fallthrough();
  crhist->add_option("--site", crh_site, "only this site");
  crhist->add_option("--sku", crh_sku, "only this SKU");
  crhist->add_option("--limit", crh_limit, "1..1000")->capture_default_str();
  crhist->callback([&] {
    ctl.CallCentral("GET", absl::StrCat("/v1/rights/history?site=", Encode(crh_site), "&sku=",
                                        Encode(crh_sku), "&limit=", crh_limit));
  });
  depot::v1::ReleaseRightsRequest cr_release;
  int64_t cr_release_units = 0;
  auto* crrelease = crights->add_subcommand(
      "release", "hand unused rights back to a site (at most what central has uncommitted)");
  crrelease->fallthrough();
  crrelease->add_option("site", *cr_release.mutable_site())->required();
  crrelease->add_option("sku", *cr_release.mutable_sku())->required();
  crrelease->add_option("units", cr_release_units)->required();
  crrelease->add_option("--note", *cr_release.mutable_note());
  crrelease->callback([&] {
    cr_release.set_units(cr_release_units);
    ctl.CallCentral("POST", "/v1/rights/release", depot::MessageToJson(cr_release));
  });
  std::string crp_site;
  int crp_percent = 0;
  int64_t crp_units = 0, crp_floor = 0, crp_refill = 0;
  auto* crpolicy = crights->add_subcommand(
      "policy", "every site's split policy, or set SITE's (the flags replace the whole policy)");
  crpolicy->fallthrough();
  crpolicy->add_option("site", crp_site, "set this site's policy");
  crpolicy->add_option("--percent", crp_percent, "store share in percent of sellable, 0..100");
  crpolicy->add_option("--units", crp_units, "store share in units (used instead of --percent)");
  crpolicy->add_option("--floor", crp_floor, "local rights kept at least");
  crpolicy->add_option("--refill-below", crp_refill, "the node asks for rights below this");
  crpolicy->callback([&] {
    if (crp_site.empty()) return ctl.CallCentral("GET", "/v1/rights/policies");
    depot::v1::RightsPolicy p;
    p.set_store_share_percent(crp_percent);
    p.set_store_share_units(crp_units);
    p.set_floor_units(crp_floor);
    p.set_refill_below(crp_refill);
    ctl.CallCentral("PUT", "/v1/rights/policies/" + Encode(crp_site), depot::MessageToJson(p));
  });
  auto* crverify = crights->add_subcommand(
      "verify", "check central's rights identities (exit 4 when one does not hold)");
  crverify->fallthrough();
  crverify->callback([&] {
    auto r = ctl.client->Send("GET", ctl.central + "/v1/rights/verify", "",
                              {{"X-Depot-Operator", ctl.op}});
    if (!r.ok()) {
      std::cerr << "depotctl: cannot reach " << ctl.central << ": " << r.status().message()
                << "\n";
      ctl.exit_code = 3;
      return;
    }
    std::cout << r->body << "\n";
    if (r->status != 200) {
      ctl.exit_code = 1;
    } else if (r->body.find("\"ok\":true") == std::string::npos) {
      std::cerr << "depotctl: central's rights do not add up\n";
      ctl.exit_code = 4;
    }
  });
  crights->callback([&] {
    if (crhist->parsed() || crrelease->parsed() || crpolicy->parsed() || crverify->parsed()) {
      return;
    }
    ctl.CallCentral("GET",
                    absl::StrCat("/v1/rights?site=", Encode(cr_site), "&sku=", Encode(cr_sku)));
  });
  std::string cl_channel;
  auto* clistings = central->add_subcommand(
      "listings", "published quantity per SKU for a channel (central's rights minus its buffer)");
  clistings->fallthrough();
  clistings->add_option("channel", cl_channel)->required();
  clistings->callback(
      [&] { ctl.CallCentral("GET", "/v1/listings?channel=" + Encode(cl_channel)); });

  // returns list|show|receive|dispose|refund (node) and central returns list|show|create|kpi:
  // returns (docs/ORDERS.md "Returns").
  auto* rt = app.add_subcommand("returns", "returns at this node: RMAs, receipt, disposition");
  rt->require_subcommand(1);
  std::string rt_id, rt_status, rt_order, rt_ref, rt_sku, rt_reason, rt_action, rt_bin, rt_lot,
      rt_note, rt_currency, rt_request, rt_site;
  std::vector<std::string> rt_serials;
  int64_t rt_qty = 0, rt_amount = -1;
  uint32_t rt_limit = 100, rt_line = 0;
  auto* rtl = rt->add_subcommand("list", "returns known here (RMAs and received), newest first");
  rtl->add_option("--status", rt_status, "authorised, received, disposed or refunded");
  rtl->add_option("--limit", rt_limit);
  rtl->callback([&] {
    ctl.Call("GET", absl::StrCat("/v1/returns?status=", Encode(rt_status), "&limit=", rt_limit));
  });
  auto* rts = rt->add_subcommand("show", "one return");
  rts->add_option("id", rt_id)->required();
  rts->callback([&] { ctl.Call("GET", "/v1/returns/" + Encode(rt_id)); });
  auto* rtr = rt->add_subcommand("receive", "receive returned goods (against --rma, or a counter return)");
  rtr->add_option("--rma", rt_id, "the return authorisation; omit for a counter return");
  rtr->add_option("--order", rt_order, "the order (counter return)");
  rtr->add_option("--ref", rt_ref, "external reference (counter return without order id)");
  rtr->add_option("--sku", rt_sku)->required();
  rtr->add_option("--qty", rt_qty)->required();
  rtr->add_option("--reason", rt_reason,
                  "damaged, wrong_item, not_as_described, no_longer_needed, other");
  rtr->add_option("--serial", rt_serials, "serials (serial-tracked SKUs)");
  rtr->add_option("--note", rt_note);
  rtr->add_option("--request-id", rt_request);
  rtr->callback([&] {
    depot::v1::ReceiveReturnRequest q;
    q.set_return_id(rt_id);
    q.set_order_id(rt_order);
    q.set_external_ref(rt_ref);
    q.set_note(rt_note);
    q.set_request_id(rt_request);
    auto* l = q.add_lines();
    l->set_sku(rt_sku);
    l->set_quantity(rt_qty);
    l->set_reason(rt_reason);
    for (const auto& s : rt_serials) l->add_serials(s);
    ctl.Post("/v1/returns", q);
  });
  auto* rtd = rt->add_subcommand("dispose", "inspect and dispose: restock, refurbish or scrap");
  rtd->add_option("id", rt_id)->required();
  rtd->add_option("--sku", rt_sku)->required();
  rtd->add_option("--qty", rt_qty)->required();
  rtd->add_option("--action", rt_action)->required()
      ->check(CLI::IsMember({"restock", "refurbish", "scrap"}));
  rtd->add_option("--bin", rt_bin, "restock: the bin");
  rtd->add_option("--lot", rt_lot, "restock of a lot-tracked SKU");
  rtd->add_option("--serial", rt_serials, "restock of serial-tracked units");
  rtd->add_option("--request-id", rt_request);
  rtd->callback([&] {
    depot::v1::DisposeReturnRequest q;
    q.set_request_id(rt_request);
    auto* l = q.add_lines();
    l->set_sku(rt_sku);
    l->set_quantity(rt_qty);
    l->set_action(rt_action);
    l->set_bin(rt_bin);
    l->set_lot(rt_lot);
    for (const auto& s : rt_serials) l->add_serials(s);
    ctl.Post("/v1/returns/" + Encode(rt_id) + "/disposition", q);
  });
  auto* rtf = rt->add_subcommand("refund", "record the refund (amount in cents) for central");
  rtf->add_option("id", rt_id)->required();
  rtf->add_option("--amount", rt_amount, "cents")->required();
  rtf->add_option("--currency", rt_currency, "default EUR");
  rtf->add_option("--note", rt_note);
  rtf->add_option("--request-id", rt_request);
  rtf->callback([&] {
    depot::v1::RefundReturnRequest q;
    q.set_amount_cents(rt_amount);
    q.set_currency(rt_currency);
    q.set_note(rt_note);
    q.set_request_id(rt_request);
    ctl.Post("/v1/returns/" + Encode(rt_id) + "/refund", q);
  });
  auto* crt = central->add_subcommand("returns", "RMAs and returns at central, turnaround KPI");
  crt->fallthrough();
  crt->require_subcommand(1);
  auto* crtl = crt->add_subcommand("list", "returns, newest first, with the KPI of the list");
  crtl->fallthrough();
  crtl->add_option("--status", rt_status, "authorised, received, disposed or refunded");
  crtl->add_option("--order", rt_order);
  crtl->add_option("--site", rt_site);
  crtl->add_option("--limit", rt_limit);
  crtl->callback([&] {
    ctl.CallCentral("GET", absl::StrCat("/v1/returns?status=", Encode(rt_status), "&order_id=",
                                        Encode(rt_order), "&site=", Encode(rt_site),
                                        "&limit=", rt_limit));
  });
  auto* crts = crt->add_subcommand("show", "one return at central");
  crts->fallthrough();
  crts->add_option("id", rt_id)->required();
  crts->callback([&] { ctl.CallCentral("GET", "/v1/returns/" + Encode(rt_id)); });
  auto* crtc = crt->add_subcommand("create", "authorise a return (RMA) for an order's line");
  crtc->fallthrough();
  crtc->add_option("--order", rt_order)->required();
  crtc->add_option("--line", rt_line, "the order line (or --sku)");
  crtc->add_option("--sku", rt_sku);
  crtc->add_option("--qty", rt_qty)->required();
  crtc->add_option("--reason", rt_reason,
                   "damaged, wrong_item, not_as_described, no_longer_needed, other")
      ->required();
  crtc->add_option("--note", rt_note);
  crtc->callback([&] {
    depot::v1::CreateReturnRequest q;
    q.set_order_id(rt_order);
    q.set_note(rt_note);
    auto* l = q.add_lines();
    l->set_line_no(rt_line);
    l->set_sku(rt_sku);
    l->set_quantity(rt_qty);
    l->set_reason(rt_reason);
    ctl.CallCentral("POST", "/v1/returns", depot::MessageToJson(q));
  });
  auto* crtk = crt->add_subcommand("kpi", "return turnaround per site and reason");
  crtk->fallthrough();
  crtk->add_option("--site", rt_site);
  crtk->callback([&] { ctl.CallCentral("GET", "/v1/kpi/returns?site=" + Encode(rt_site)); });

  // Purchase orders (docs/OPERATIONS.md "Receiving against purchase orders"): at the node the
  // site's copy, receiving and put-away; under `central po` creation, import, close, cancel.
  auto* po = app.add_subcommand("po", "purchase orders of this site: list, show, receive");
  po->require_subcommand(1);
  std::string po_status, po_id, po_sku, po_bin, po_lot, po_expiry, po_request;
  int64_t po_qty = 0;
  std::vector<std::string> po_serials;
  auto* pol = po->add_subcommand("list", "this site's purchase orders (central's feed)");
  pol->add_option("--status", po_status, "open, partially_received, received, closed_short, cancelled");
  pol->callback([&] { ctl.Call("GET", "/v1/purchase-orders?status=" + Encode(po_status)); });
  auto* pos = po->add_subcommand("show", "one purchase order with received quantities");
  pos->add_option("po", po_id)->required();
  pos->callback([&] { ctl.Call("GET", "/v1/purchase-orders/" + Encode(po_id)); });
  auto* por = po->add_subcommand("receive", "receive a SKU against a purchase order");
  por->add_option("po", po_id)->required();
  por->add_option("sku", po_sku)->required();
  por->add_option("quantity", po_qty)->required();
  por->add_option("--bin", po_bin, "default: the put-away suggestion");
  por->add_option("--lot", po_lot);
  por->add_option("--expiry", po_expiry, "YYYY-MM-DD");
  por->add_option("--serial", po_serials, "serial numbers (repeat)");
  por->add_option("--request-id", po_request, "idempotency key");
  por->callback([&] {
    depot::v1::ReceivePoRequest r;
    auto* l = r.add_lines();
    l->set_sku(po_sku);
    l->set_quantity(po_qty);
    l->set_bin(po_bin);
    l->set_lot(po_lot);
    l->set_expiry(po_expiry);
    for (const auto& s : po_serials) l->add_serials(s);
    r.set_request_id(po_request);
    ctl.Post("/v1/purchase-orders/" + Encode(po_id) + "/receive", r);
  });
  auto* pw = app.add_subcommand("putaway", "where to put a SKU away: a bin holding it, else an empty one");
  pw->add_option("sku", po_sku)->required();
  pw->add_option("--lot", po_lot);
  pw->add_option("--qty", po_qty);
  pw->callback([&] {
    std::string path = "/v1/putaway?sku=" + Encode(po_sku) + "&lot=" + Encode(po_lot);
    if (po_qty > 0) path += "&quantity=" + std::to_string(po_qty);
    ctl.Call("GET", path);
  });
  auto* cpo = central->add_subcommand("po", "purchase orders at central");
  cpo->require_subcommand(1);
  cpo->fallthrough();
  std::string cpo_file, cpo_site, cpo_supplier, cpo_note, cpo_date, cpo_name;
  std::vector<std::string> cpo_lines;
  int cpo_tolerance = -1;
  auto* cpoc = cpo->add_subcommand("create", "create a purchase order (lines as SKU:QTY)");
  cpoc->fallthrough();
  cpoc->add_option("po", po_id)->required();
  cpoc->add_option("--supplier", cpo_supplier)->required();
  cpoc->add_option("--site", cpo_site)->required();
  cpoc->add_option("--line", cpo_lines, "SKU:QTY (repeat)")->required();
  cpoc->add_option("--expected", cpo_date, "expected date YYYY-MM-DD");
  cpoc->add_option("--tolerance", cpo_tolerance, "over-receipt % (default: the supplier's)");
  cpoc->callback([&] {
    depot::v1::PurchaseOrder p;
    p.set_po_id(po_id);
    p.set_supplier(cpo_supplier);
    p.set_site(cpo_site);
    p.set_expected_date(cpo_date);
    if (cpo_tolerance >= 0) p.set_receipt_tolerance_percent(cpo_tolerance);
    uint32_t n = 0;
    for (const auto& text : cpo_lines) {
      const size_t colon = text.rfind(':');
      auto* l = p.add_lines();
      l->set_line_no(++n);
      l->set_sku(text.substr(0, colon));
      if (colon == std::string::npos) continue;  // central refuses the missing quantity
      try {
        l->set_ordered(std::stoll(text.substr(colon + 1)));
      } catch (...) {
        std::cerr << "depotctl: --line '" << text << "' is not SKU:QTY\n";
        ctl.exit_code = 2;
        return;
      }
    }
    ctl.CallCentral("POST", "/v1/purchase-orders", depot::MessageToJson(p));
  });
  auto* cpoi = cpo->add_subcommand(
      "import", "import POs from CSV (po,supplier,site,expected_date,line,sku,quantity)");
  cpoi->fallthrough();
  cpoi->add_option("file", cpo_file, "CSV file")->required()->check(CLI::ExistingFile);
  cpoi->callback([&] {
    std::ifstream in(cpo_file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    ctl.CallCentral("POST", "/v1/purchase-orders/import", ss.str(), "text/csv");
  });
  auto* cpol = cpo->add_subcommand("list", "purchase orders, filtered");
  cpol->fallthrough();
  cpol->add_option("--site", cpo_site);
  cpol->add_option("--supplier", cpo_supplier);
  cpol->add_option("--status", po_status);
  cpol->callback([&] {
    ctl.CallCentral("GET", "/v1/purchase-orders?site=" + Encode(cpo_site) + "&supplier=" +
                               Encode(cpo_supplier) + "&status=" + Encode(po_status));
  });
  auto* cpos = cpo->add_subcommand("show", "one purchase order");
  cpos->fallthrough();
  cpos->add_option("po", po_id)->required();
  cpos->callback([&] { ctl.CallCentral("GET", "/v1/purchase-orders/" + Encode(po_id)); });
  for (const char* action : {"close", "cancel"}) {
    auto* a = cpo->add_subcommand(action, std::string(action) == "close"
                                              ? "close a PO short (open quantity is not coming)"
                                              : "cancel a PO nothing was received against");
    a->fallthrough();
    a->add_option("po", po_id)->required();
    a->add_option("--note", cpo_note);
    a->callback([&ctl, &po_id, &cpo_note, action] {
      depot::v1::PurchaseOrderActionRequest r;
      r.set_note(cpo_note);
      ctl.CallCentral("POST", "/v1/purchase-orders/" + Encode(po_id) + "/" + action,
                      depot::MessageToJson(r));
    });
  }
  auto* csup = central->add_subcommand("supplier", "set a supplier's default receipt tolerance");
  csup->fallthrough();
  csup->add_option("id", cpo_supplier)->required();
  csup->add_option("--tolerance", cpo_tolerance, "over-receipt % allowed")->required();
  csup->add_option("--name", cpo_name);
  csup->callback([&] {
    depot::v1::Supplier s;
    s.set_name(cpo_name);
    s.set_receipt_tolerance_percent(cpo_tolerance < 0 ? 0 : cpo_tolerance);
    ctl.CallCentral("PUT", "/v1/suppliers/" + Encode(cpo_supplier), depot::MessageToJson(s));
  });
  central->add_subcommand("suppliers", "suppliers and their defaults")->fallthrough()->callback([&] {
    ctl.CallCentral("GET", "/v1/suppliers");
  });

  // ---- Transfers between sites (node/transfers.h, central/transfers.h). Lines are SKU:QTY, on
  // ship and receive optionally SKU:QTY@BIN.
  std::string xfer_id, xfer_to, xfer_from, xfer_note, xfer_bin, xfer_status, xfer_sku, xfer_site;
  std::vector<std::string> xfer_lines;
  // Parses xfer_lines into (sku, qty, bin); false (exit 2) when one is malformed.
  auto xfer_parse = [&](std::vector<std::tuple<std::string, int64_t, std::string>>* out) {
    for (const auto& text : xfer_lines) {
      std::string head = text, bin;
      if (const size_t at = text.rfind('@'); at != std::string::npos) {
        head = text.substr(0, at);
        bin = text.substr(at + 1);
      }
      const size_t colon = head.rfind(':');
      int64_t q = 0;
      try {
        if (colon == std::string::npos) throw std::invalid_argument("no quantity");
        q = std::stoll(head.substr(colon + 1));
      } catch (...) {
        std::cerr << "depotctl: --line '" << text << "' is not SKU:QTY[@BIN]\n";
        ctl.exit_code = 2;
        return false;
      }
      out->emplace_back(head.substr(0, colon), q, bin);
    }
    return true;
  };
  auto xfer_create = [&](bool at_central) {
    std::vector<std::tuple<std::string, int64_t, std::string>> lines;
    if (!xfer_parse(&lines)) return;
    depot::v1::CreateTransferRequest r;
    r.set_source(xfer_from);
    r.set_destination(xfer_to);
    r.set_note(xfer_note);
    for (const auto& [sku, q, bin] : lines) {
      auto* l = r.add_lines();
      l->set_sku(sku);
      l->set_quantity(q);
    }
    if (at_central) {
      ctl.CallCentral("POST", "/v1/transfers", depot::MessageToJson(r));
    } else {
      ctl.Post("/v1/transfers", r);
    }
  };
  auto xfer_query = [&] {
    return "?status=" + Encode(xfer_status) + "&sku=" + Encode(xfer_sku) + "&site=" +
           Encode(xfer_site);
  };
  auto* xfer = app.add_subcommand("transfer", "transfers between sites from or to this node");
  xfer->require_subcommand(1);
  xfer->fallthrough();
  auto* xc = xfer->add_subcommand("create", "order a transfer from this site (lines SKU:QTY)");
  xc->fallthrough();
  xc->add_option("--to", xfer_to, "destination site")->required();
  xc->add_option("--line", xfer_lines, "SKU:QTY (repeat)")->required();
  xc->add_option("--note", xfer_note);
  xc->callback([&] { xfer_create(false); });
  auto* xl = xfer->add_subcommand("list", "transfers from or to this node, newest first");
  xl->fallthrough();
  xl->add_option("--status", xfer_status, "requested, in_transit, received, ...");
  xl->add_option("--sku", xfer_sku);
  xl->callback([&] { ctl.Call("GET", "/v1/transfers" + xfer_query()); });
  auto* xs = xfer->add_subcommand("show", "one transfer");
  xs->fallthrough();
  xs->add_option("id", xfer_id)->required();
  xs->callback([&] { ctl.Call("GET", "/v1/transfers/" + Encode(xfer_id)); });
  auto* xsh = xfer->add_subcommand("ship", "transfer-out: the goods leave (all lines without --line)");
  xsh->fallthrough();
  xsh->add_option("id", xfer_id)->required();
  xsh->add_option("--line", xfer_lines, "SKU:QTY[@BIN] (repeat)");
  xsh->callback([&] {
    std::vector<std::tuple<std::string, int64_t, std::string>> lines;
    if (!xfer_parse(&lines)) return;
    depot::v1::ShipTransferRequest r;
    for (const auto& [sku, q, bin] : lines) {
      auto* l = r.add_lines();
      l->set_sku(sku);
      l->set_quantity(q);
      l->set_bin(bin);
    }
    ctl.Post("/v1/transfers/" + Encode(xfer_id) + "/ship", r);
  });
  auto* xca = xfer->add_subcommand("cancel", "cancel a transfer before it ships");
  xca->fallthrough();
  xca->add_option("id", xfer_id)->required();
  xca->add_option("--reason", xfer_note);
  xca->callback([&] {
    depot::v1::ShipTransferRequest r;
    r.set_reason(xfer_note);
    ctl.Post("/v1/transfers/" + Encode(xfer_id) + "/cancel", r);
  });
  auto* xr = xfer->add_subcommand("receive", "transfer-in: count the goods into a bin");
  xr->fallthrough();
  xr->add_option("id", xfer_id)->required();
  xr->add_option("--bin", xfer_bin, "bin for every line without @BIN");
  xr->add_option("--line", xfer_lines, "SKU:QTY[@BIN] counted (repeat; default: as shipped)");
  xr->callback([&] {
    std::vector<std::tuple<std::string, int64_t, std::string>> lines;
    if (!xfer_parse(&lines)) return;
    depot::v1::ReceiveTransferRequest r;
    r.set_bin(xfer_bin);
    for (const auto& [sku, q, bin] : lines) {
      auto* l = r.add_lines();
      l->set_sku(sku);
      l->set_quantity(q);
      l->set_bin(bin);
    }
    ctl.Post("/v1/transfers/" + Encode(xfer_id) + "/receive", r);
  });
  auto* cx = central->add_subcommand("transfer", "transfers between sites at central");
  cx->require_subcommand(1);
  cx->fallthrough();
  auto* cxc = cx->add_subcommand("create", "order a transfer (uses central's selling rights)");
  cxc->fallthrough();
  cxc->add_option("--from", xfer_from, "source site")->required();
  cxc->add_option("--to", xfer_to, "destination site")->required();
  cxc->add_option("--line", xfer_lines, "SKU:QTY (repeat)")->required();
  cxc->add_option("--note", xfer_note);
  cxc->callback([&] { xfer_create(true); });
  auto* cxl = cx->add_subcommand("list", "transfers, newest first");
  cxl->fallthrough();
  cxl->add_option("--status", xfer_status, "requested, in_transit, received, ...");
  cxl->add_option("--site", xfer_site, "source or destination");
  cxl->add_option("--sku", xfer_sku);
  cxl->callback([&] { ctl.CallCentral("GET", "/v1/transfers" + xfer_query()); });
  auto* cxs = cx->add_subcommand("show", "one transfer");
  cxs->fallthrough();
  cxs->add_option("id", xfer_id)->required();
  cxs->callback([&] { ctl.CallCentral("GET", "/v1/transfers/" + Encode(xfer_id)); });
  auto* cxt = cx->add_subcommand("in-transit", "units in transit per SKU and destination");
  cxt->fallthrough();
  cxt->add_option("--sku", xfer_sku);
  cxt->add_option("--site", xfer_site, "destination");
  cxt->callback([&] {
    ctl.CallCentral("GET", "/v1/in-transit?sku=" + Encode(xfer_sku) + "&site=" + Encode(xfer_site));
  });

  app.add_subcommand("verify", "recompute balances from the movements and compare")
      ->callback([&] {
        auto r = ctl.client->Send("POST", ctl.node + "/v1/verify", "",
                                  {{"X-Depot-Operator", ctl.op}});
        if (!r.ok()) {
          std::cerr << "depotctl: cannot reach " << ctl.node << ": " << r.status().message() << "\n";
          ctl.exit_code = 3;
          return;
        }
        std::cout << r->body << "\n";
        depot::v1::VerifyResponse v;
        if (r->status != 200 || !depot::JsonToMessage(r->body, &v).ok()) {
          ctl.exit_code = 1;
        } else if (!v.ok()) {
          std::cerr << "depotctl: verify found " << v.differences_size() << " difference(s)\n";
          ctl.exit_code = 4;
        } else {
          std::cerr << "verify: ok, " << v.movements() << " movements, " << v.balances()
                    << " balances\n";
        }
      });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return ctl.exit_code;
}
