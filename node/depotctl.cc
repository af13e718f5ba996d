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
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/http_client.h"
#include "common/json.h"
#include "depot/v1/central.pb.h"
#include "depot/v1/node_api.pb.h"

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

  std::string rsku;
  auto* rlist = app.add_subcommand("reservations", "open reservations");
  rlist->add_option("--sku", rsku);
  rlist->callback([&] { ctl.Call("GET", "/v1/reservations?sku=" + Encode(rsku)); });

  app.add_subcommand("skus", "list SKUs")->callback([&] { ctl.Call("GET", "/v1/skus?limit=1000"); });
  app.add_subcommand("bins", "list bins")->callback([&] { ctl.Call("GET", "/v1/bins"); });
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
