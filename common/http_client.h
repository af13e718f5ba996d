// Small blocking HTTP client, used by the `depotctl` CLI and by tests. The real implementation is
// built on libcurl, which is not included by this header.

#ifndef DEPOT_COMMON_HTTP_CLIENT_H_
#define DEPOT_COMMON_HTTP_CLIENT_H_

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace depot::http {

struct ClientResponse {
  int status = 0;
  std::string body;
  std::string content_type;  // "" when the server sent none
};

// Interface so that callers can be tested with a fake.
class Client {
 public:
  virtual ~Client() = default;

  // Sends one request and waits for the complete response.
  //   method:  any token, e.g. "GET", "POST", "PUT", "DELETE", "HEAD".
  //   body:    sent when non-empty (and, as an empty body, for POST/PUT/PATCH). Its Content-Type
  //            defaults to application/json unless `headers` contains one.
  //   headers: extra request headers as (name, value) pairs.
  // Any HTTP status, including 4xx/5xx, is an OK result. Failures:
  //   DeadlineExceeded - the total timeout passed;
  //   Unavailable      - transport failure (connection refused, reset, DNS, ...);
  //   InvalidArgument  - malformed URL, unsupported scheme or empty method;
  //   Internal         - libcurl could not be initialised.
  // The message carries curl's description.
  virtual absl::StatusOr<ClientResponse> Send(
      std::string_view method, const std::string& url, const std::string& body = "",
      const std::vector<std::pair<std::string, std::string>>& headers = {}) = 0;
};

// Real client: one CURL easy handle reused across calls (so connections are kept alive),
// no proxy (CURLOPT_NOPROXY "*"), no signals (CURLOPT_NOSIGNAL), never sends
// "Expect: 100-continue", and `timeout` bounds each whole call (connect + transfer).
// Not thread-safe: use one client per thread. Different clients may be used concurrently.
std::unique_ptr<Client> NewCurlClient(std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace depot::http

#endif  // DEPOT_COMMON_HTTP_CLIENT_H_
