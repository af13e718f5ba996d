// depotctl: the command-line client for a depot-node's JSON API and, under `depotctl central`,
// for depot-central's. Requests are built from the same protobuf messages the servers parse, so
// the CLI and the APIs cannot drift apart.
// Exit codes: 0 success, 1 the server refused the request (message on stderr), 2 usage error,
// 3 the server could not be reached, 4 verify found differences.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/http_client.h"
#include "common/json.h"
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

  // central import|stock|nodes|exceptions: depot-central's API (--central URL).
  auto* central = app.add_subcommand("central", "depot-central's API (see --central)");
  central->require_subcommand(1);
  central->fallthrough();  // --central/--operator may follow the subcommand
  std::string ckind, cfile;
  auto* cimport = central->add_subcommand("import", "import master data from CSV at central");
  cimport->fallthrough();
  cimport->add_option("kind", ckind, "skus, sites or bins")
      ->required()->check(CLI::IsMember({"skus", "sites", "bins"}));
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
  std::string cnode, cexkind;
  auto* cexc = central->add_subcommand("exceptions", "central's exception list");
  cexc->fallthrough();
  cexc->add_option("--node", cnode, "only this node");
  cexc->add_option("--kind", cexkind, "only this kind, e.g. unknown_node, restore_lost_events");
  cexc->callback([&] {
    ctl.CallCentral("GET", absl::StrCat("/v1/exceptions?node_id=", Encode(cnode),
                                        "&kind=", Encode(cexkind)));
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
