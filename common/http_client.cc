#include "common/http_client.h"

#include <curl/curl.h>

#include <cctype>
#include <mutex>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace depot::http {
namespace {

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

size_t AppendToString(char* data, size_t size, size_t nmemb, void* user) {
  static_cast<std::string*>(user)->append(data, size * nmemb);
  return size * nmemb;
}

// Frees a curl_slist on scope exit.
class HeaderList {
 public:
  HeaderList() = default;
  HeaderList(const HeaderList&) = delete;
  HeaderList& operator=(const HeaderList&) = delete;
  ~HeaderList() { curl_slist_free_all(list_); }
  bool Append(const std::string& line) {
    curl_slist* next = curl_slist_append(list_, line.c_str());
    if (next == nullptr) return false;
    list_ = next;
    return true;
  }
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

class CurlClient final : public Client {
 public:
  explicit CurlClient(std::chrono::milliseconds timeout) : timeout_(timeout) {
    GlobalInitOnce();
    curl_ = curl_easy_init();
  }
  ~CurlClient() override {
    if (curl_ != nullptr) curl_easy_cleanup(curl_);
  }
  CurlClient(const CurlClient&) = delete;
  CurlClient& operator=(const CurlClient&) = delete;

  absl::StatusOr<ClientResponse> Send(
      std::string_view method, const std::string& url, const std::string& body,
      const std::vector<std::pair<std::string, std::string>>& headers) override {
    if (curl_ == nullptr) return absl::InternalError("curl_easy_init failed");
    if (method.empty()) return absl::InvalidArgumentError("empty HTTP method");

    // Keeps live connections and caches, drops every option of the previous call.
    curl_easy_reset(curl_);
    const std::string method_str(method);
    ClientResponse response;
    char error[CURL_ERROR_SIZE] = {0};

    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(curl_, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(curl_, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &AppendToString);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &response.body);

    const bool sends_body =
        !body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
    if (method == "HEAD") {
      curl_easy_setopt(curl_, CURLOPT_NOBODY, 1L);
    } else if (!sends_body) {
      curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
      if (method != "GET") curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method_str.c_str());
    } else {
      // POSTFIELDS does not copy: `body` outlives curl_easy_perform.
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.data());
      if (method != "POST") curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method_str.c_str());
    }

    HeaderList header_list;
    bool has_content_type = false;
    bool ok = true;
    for (const auto& [name, value] : headers) {
      if (EqualsIgnoreCase(name, "content-type")) has_content_type = true;
      // "Name;" is curl's way to send a header with an empty value ("Name:" would remove it).
      ok = ok && header_list.Append(value.empty() ? absl::StrCat(name, ";")
                                                  : absl::StrCat(name, ": ", value));
    }
    if (sends_body && !has_content_type) {
      // Without this, curl would label POSTFIELDS as application/x-www-form-urlencoded; an
      // empty body gets no Content-Type at all.
      ok = ok &&
           header_list.Append(body.empty() ? "Content-Type:" : "Content-Type: application/json");
    }
    ok = ok && header_list.Append("Expect:");  // never wait for "100 Continue"
    if (!ok) return absl::ResourceExhaustedError("out of memory building request headers");
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, header_list.get());

    CURLcode rc = curl_easy_perform(curl_);
    // Do not leave pointers to locals in the handle.
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, static_cast<char*>(nullptr));
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, static_cast<void*>(nullptr));

    if (rc != CURLE_OK) {
      std::string message = absl::StrCat(method_str, " ", url, ": ", curl_easy_strerror(rc));
      if (error[0] != '\0') absl::StrAppend(&message, " (", error, ")");
      switch (rc) {
        case CURLE_OPERATION_TIMEDOUT: return absl::DeadlineExceededError(message);
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL: return absl::InvalidArgumentError(message);
        default: return absl::UnavailableError(message);
      }
    }
    long status = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
    response.status = static_cast<int>(status);
    char* content_type = nullptr;
    if (curl_easy_getinfo(curl_, CURLINFO_CONTENT_TYPE, &content_type) == CURLE_OK &&
        content_type != nullptr) {
      response.content_type = content_type;
    }
    return response;
  }

 private:
  const std::chrono::milliseconds timeout_;
  CURL* curl_ = nullptr;
};

}  // namespace

std::unique_ptr<Client> NewCurlClient(std::chrono::milliseconds timeout) {
  return std::make_unique<CurlClient>(timeout);
}

}  // namespace depot::http
