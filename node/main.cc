// depot-node: parses flags and wires the ledger, the group committer, the HTTP API and (with
// --central) the sync engine and its gRPC transport.
#include <CLI/CLI.hpp>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <thread>

#include "common/http_server.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/metrics.h"
#include "node/group_commit.h"
#include "node/http_api.h"
#include "node/ledger.h"
#include "node/node_sync.h"
#include "node/sync_client.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  CLI::App app{"depot-node: a Depot site's stock ledger and local API"};
  std::string db_path = "depot-node.db", node_id, host = "127.0.0.1", port_file,
              sync = "full", log_level = "info", central, restore_from;
  int port = 7070, threads = 2;
  size_t max_body = 1 << 20;
  depot::node::CountTolerance count_tolerance;
  app.set_config("--config", "", "read options from a TOML/INI file");
  app.allow_config_extras(false);  // a misspelt option in the file is an error
  app.add_option("--db", db_path, "SQLite database file")->capture_default_str();
  app.add_option("--node-id", node_id, "this site's node id (stored on first start)");
  app.add_option("--host", host, "address to listen on")->capture_default_str();
  app.add_option("--port", port, "HTTP port (0 picks a free one)")
      ->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--port-file", port_file, "write the bound port to this file");
  app.add_option("--threads", threads, "HTTP I/O threads")->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--sync", sync, "SQLite synchronous mode: full (durable) or normal")
      ->capture_default_str()->check(CLI::IsMember({"full", "normal"}));
  app.add_option("--max-body", max_body, "largest accepted request body in bytes")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  app.add_option("--central", central,
                 "central's gRPC address HOST:PORT: sync with it (master data then comes only "
                 "from central)");
  app.add_option("--restore-from", restore_from,
                 "replace --db with this backup copy (starting a new epoch), then run")
      ->check(CLI::ExistingFile);
  app.add_option("--count-tolerance-units", count_tolerance.units,
                 "cycle counts: variances up to this many units post without approval")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--count-tolerance-percent", count_tolerance.percent,
                 "cycle counts: ... or up to this percentage of the expected quantity")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  depot::InitLogging(log_level, "depot-node");

  // Before any thread starts, so every thread inherits the mask; main waits for them below.
  depot::BlockTerminationSignals();

  if (!restore_from.empty()) {
    if (auto s = depot::node::Ledger::RestoreFromBackup(restore_from, db_path); !s.ok()) {
      std::cerr << "depot-node: restore from " << restore_from << ": " << s.message() << "\n";
      return 1;
    }
    spdlog::warn("restored {} from backup {}: a new epoch starts", db_path, restore_from);
  }
  auto ledger = depot::node::Ledger::Open({.path = db_path,
                                           .node_id = node_id,
                                           .durable = sync == "full",
                                           .central_managed = !central.empty(),
                                           .count_tolerance = count_tolerance});
  if (!ledger.ok()) {
    std::cerr << "depot-node: " << ledger.status().message() << "\n";
    return 1;
  }
  depot::metrics::Registry registry;
  depot::node::GroupCommitter committer(ledger->get());
  std::unique_ptr<depot::node::NodeSyncEngine> sync_engine;
  std::unique_ptr<depot::node::SyncClient> sync_client;
  if (!central.empty()) {
    sync_engine =
        std::make_unique<depot::node::NodeSyncEngine>(ledger->get(), &depot::SystemClock());
    sync_client = std::make_unique<depot::node::SyncClient>(sync_engine.get(), central);
  }
  depot::node::NodeHttpApi api(ledger->get(), &committer, &registry, sync_engine.get(),
                               sync_client.get());

  depot::http::ServerOptions options;
  options.host = host;
  options.port = static_cast<uint16_t>(port);
  options.threads = threads;
  options.max_body_bytes = max_body;
  auto server = depot::http::Server::Start(
      options, [&api](depot::http::Request&& req, depot::http::Responder respond) {
        api.Handle(std::move(req), std::move(respond));
      });
  if (!server.ok()) {
    std::cerr << "depot-node: " << server.status().message() << "\n";
    return 1;
  }
  const auto status = (*ledger)->Status();
  spdlog::info("node '{}' (epoch {}) listening on http://{}:{} with {} movements", status.node_id(),
               status.epoch(), host, (*server)->port(), status.last_seq());
  if (sync_client) {
    sync_client->Start();
    spdlog::info("syncing with central at {}", central);
  }
  if (!port_file.empty() &&
      !depot::WriteFileAtomically(port_file, std::to_string((*server)->port()) + "\n")) {
    std::cerr << "depot-node: cannot write " << port_file << "\n";
    return 1;
  }

  // Lots with expiry: write off expired stock at start and then every 10 minutes
  // (Operation.expire_lots; idempotent, so a run with nothing expired writes nothing).
  std::mutex expiry_mu;
  std::condition_variable expiry_cv;
  bool expiry_stop = false;
  std::thread expiry([&] {
    const depot::RequestContext ctx{"expiry", "node"};
    std::unique_lock lock(expiry_mu);
    do {
      lock.unlock();
      depot::v1::Operation op;
      op.mutable_expire_lots();
      auto r = (*ledger)->Apply(ctx, op);
      if (!r.ok()) {
        spdlog::warn("expiring lots failed: {}", std::string(r.status().message()));
      } else if (r->expired().balances() > 0) {
        spdlog::info("expired lots: {} units in {} balances written off",
                     r->expired().units(), r->expired().balances());
        if (sync_client) sync_client->Notify();
      }
      lock.lock();
    } while (!expiry_cv.wait_for(lock, std::chrono::minutes(10), [&] { return expiry_stop; }));
  });

  const int sig = depot::WaitForTermination();
  spdlog::info("signal {}: shutting down", sig);
  {
    std::lock_guard lock(expiry_mu);
    expiry_stop = true;
  }
  expiry_cv.notify_all();
  expiry.join();
  (*server)->Stop();
  committer.Stop();
  // Events not yet acknowledged stay in the outbox and leave after the next start.
  if (sync_client) sync_client->Stop();
  return 0;
}
