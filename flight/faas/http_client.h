// A small libcurl client for the REST service: one easy handle, so one
// kept-alive connection, reused across requests. Used by RestInvoker and
// EndpointAgent.
//
// Thread safety: not thread-safe; use one HttpClient per thread.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/base/json.h"

namespace flight::faas {

struct HttpResponse {
  long status = 0;
  std::string body;
  bool ok() const { return status >= 200 && status < 300; }
  // The body as JSON (an error when it is not JSON).
  StatusOr<nlohmann::json> json() const;
};

class HttpClient {
 public:
  // base_url: "http://host:port" (no trailing slash needed). token: bearer
  // token sent on every request ("" sends none).
  HttpClient(std::string base_url, std::string token);
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
  const std::string& base_url() const { return base_url_; }

 private:
  std::string base_url_;
  std::string auth_header_;
  void* curl_ = nullptr;
  const std::atomic<bool>* abort_ = nullptr;
};

// A non-2xx response as a Status carrying the service's error message:
// 400 → InvalidArgument, 401 → Unauthenticated, 404 → NotFound,
// 409 → AlreadyExists, 413/429 → ResourceExhausted, 5xx → Unavailable.
Status status_from_response(const HttpResponse& response, const std::string& what);

}  // namespace flight::faas
