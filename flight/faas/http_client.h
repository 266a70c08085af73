// A small libcurl client for the REST service: one easy handle, so one
// kept-alive connection, reused across requests. Used by RestInvoker and
// EndpointAgent.
//
// Replicas: base_url may list several service URLs separated by commas. A
// request that meets a network error or a 503 (a standby replica, or a leader
// whose state store failed) is sent to the next URL at once, each URL at most
// once per request; the client then stays with the URL that answered.
//
// Thread safety: not thread-safe; use one HttpClient per thread.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/json.h"
#include "flight/base/status.h"

namespace flight::faas {

// Larger response bodies are refused (Unavailable): a broken or hostile peer
// cannot make a client buffer without bound.
constexpr size_t kMaxResponseBytes = 64ull << 20;

struct HttpResponse {
  long status = 0;
  std::string body;
  bool ok() const { return status >= 200 && status < 300; }
  // The body as JSON (an error when it is not JSON).
  StatusOr<nlohmann::json> json() const;
};

class HttpClient {
 public:
  // base_url: "http://host:port" or "https://host:port" (no trailing slash
  // needed), or several of them separated by commas. token: bearer token sent on every request (""
  // sends none). ca_file: PEM CA bundle the service's certificate must chain to (https;
  // "" = the system's CAs). Certificates and host names are always verified.
  HttpClient(std::string base_url, std::string token, std::string ca_file = "");
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Network failures and timeouts are Unavailable; any HTTP status is a
  // response. `headers` are "Name: value" lines. An in-flight request is
  // abandoned (Cancelled) soon after *abort becomes true.
  StatusOr<HttpResponse> request(const std::string& method, const std::string& path,
                                 const std::string& body = "",
                                 const std::vector<std::string>& headers = {},
                                 double timeout_s = 30);
  StatusOr<HttpResponse> get(const std::string& path, double timeout_s = 30) {
    return request("GET", path, "", {}, timeout_s);
  }
  StatusOr<HttpResponse> post_json(const std::string& path, const nlohmann::json& body,
                                   const std::vector<std::string>& headers = {},
                                   double timeout_s = 30) {
    return request("POST", path, dump_json(body), headers, timeout_s);
  }

  void set_abort_flag(const std::atomic<bool>* abort) { abort_ = abort; }
  // The URL in use (the one that answered last).
  const std::string& base_url() const { return urls_[current_]; }

 private:
  StatusOr<HttpResponse> perform(const std::string& base, const std::string& method,
                                 const std::string& path, const std::string& body,
                                 const std::vector<std::string>& headers, double timeout_s);

  std::vector<std::string> urls_;
  size_t current_ = 0;
  std::string auth_header_;
  std::string ca_file_;
  void* curl_ = nullptr;
  const std::atomic<bool>* abort_ = nullptr;
};

// OK when `url` is an http:// or https:// URL (or a comma-separated list of
// them); else InvalidArgument naming `what`.
Status check_service_url(const std::string& url, const std::string& what);

// Replies are untrusted (a proxy, a broken or hostile service): they are read
// with OptionReader into a Status, never through a throwing accessor.
// The body of `r` as a JSON object ("<what>: ..." errors).
StatusOr<nlohmann::json> reply_object(const HttpResponse& r, const std::string& what);
// The array at `key` of the reply object `j` (absent or null: empty), moved
// out of `j`.
StatusOr<nlohmann::json> reply_array(nlohmann::json& j, const char* key, const std::string& what);

// A non-2xx response as a Status carrying the service's error message:
// 400 → InvalidArgument, 401 → Unauthenticated, 403 → permission_denied() (auth.h), 404 → NotFound,
// 409 → AlreadyExists, 413/429 → ResourceExhausted, 5xx → Unavailable.
Status status_from_response(const HttpResponse& response, const std::string& what);

}  // namespace flight::faas
