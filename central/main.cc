// depot-central: parses flags and wires the store, the sync engine, the order service, the gRPC
// server (NodeSync, Central, Orders, Rights, health, reflection) and the JSON HTTP API.
#include <CLI/CLI.hpp>
#include <iostream>

#include "central/central_rights.h"
#include "central/central_sync.h"
#include "central/grpc_service.h"
#include "central/http_api.h"
#include "central/orders.h"
#include "central/sqlite_store.h"
#include "absl/strings/str_cat.h"
#include "common/http_server.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/process.h"
#include "spdlog/spdlog.h"


int main(int argc, char** argv) {
  CLI::App app{"depot-central: master data, the network-wide stock mirror and node sync"};
  std::string db_path, host = "127.0.0.1", port_file, sync = "full", log_level = "info";
  int grpc_port = 7000, http_port = 7001, threads = 2;
  app.set_config("--config", "", "read options from a TOML/INI file");
  app.allow_config_extras(false);  // a misspelt option in the file is an error
  app.add_option("--db", db_path, "SQLite database file")->required();
  app.add_option("--host", host, "address to listen on (gRPC and HTTP)")->capture_default_str();
  app.add_option("--grpc-port", grpc_port, "gRPC port (0 picks a free one)")
      ->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--http-port", http_port, "HTTP port (0 picks a free one)")
      ->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--port-file", port_file,
                 "write the bound ports to this file (lines grpc=PORT and http=PORT)");
  app.add_option("--threads", threads, "HTTP I/O threads")->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--sync", sync, "SQLite synchronous mode: full (durable) or normal")
      ->capture_default_str()->check(CLI::IsMember({"full", "normal"}));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  depot::InitLogging(log_level, "depot-central");

  // Before any thread starts, so every thread inherits the mask; main waits for them below.
  depot::BlockTerminationSignals();

  auto store = depot::central::OpenSqliteStore({.path = db_path, .durable = sync == "full"});
  if (!store.ok()) {
    std::cerr << "depot-central: " << store.status().message() << "\n";
    return 1;
  }
  depot::central::CentralSyncEngine engine(store->get(), &depot::SystemClock());
  depot::central::CentralService service(store->get(), &engine, &depot::SystemClock());
  depot::central::OrderService orders(
      store->get(), &depot::SystemClock(), [&engine] { return engine.OnlineNodes(); },
      [&service] { service.FeedChanged(); });
  service.AttachOrders(&orders);
  depot::central::RightsService rights(store->get(), &depot::SystemClock(),
                                       [&service] { service.FeedChanged(); });
  service.AttachRights(&rights);

  auto grpc_server = depot::central::GrpcServer::Start(
      {.host = host, .port = static_cast<uint16_t>(grpc_port)}, &service);
  if (!grpc_server.ok()) {
    std::cerr << "depot-central: " << grpc_server.status().message() << "\n";
    return 1;
  }

  depot::metrics::Registry registry;
  depot::central::CentralHttpApi api(&service, &registry);
  depot::http::ServerOptions options;
  options.host = host;
  options.port = static_cast<uint16_t>(http_port);
  options.threads = threads;
  options.max_body_bytes = 64 << 20;  // master-data CSV files
  auto http_server = depot::http::Server::Start(
      options, [&api](depot::http::Request&& req, depot::http::Responder respond) {
        api.Handle(std::move(req), std::move(respond));
      });
  if (!http_server.ok()) {
    std::cerr << "depot-central: " << http_server.status().message() << "\n";
    return 1;
  }
  spdlog::info("central listening: gRPC {}:{}, HTTP http://{}:{}", host, (*grpc_server)->port(),
               host, (*http_server)->port());
  if (!port_file.empty() &&
      !depot::WriteFileAtomically(port_file, absl::StrCat("grpc=", (*grpc_server)->port(),
                                                          "\nhttp=", (*http_server)->port(),
                                                          "\n"))) {
    std::cerr << "depot-central: cannot write " << port_file << "\n";
    return 1;
  }

  const int sig = depot::WaitForTermination();
  spdlog::info("signal {}: shutting down", sig);
  (*http_server)->Stop();
  (*grpc_server)->Stop();
  return 0;
}
