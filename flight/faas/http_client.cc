#include "flight/faas/http_client.h"

#include <curl/curl.h>

#include <mutex>

namespace flight::faas {

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t write_cb(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

int progress_cb(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* abort = static_cast<const std::atomic<bool>*>(user);
  return abort && abort->load(std::memory_order_relaxed) ? 1 : 0;
}

}  // namespace

StatusOr<nlohmann::json> HttpResponse::json() const {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) {
    return data_loss("HTTP " + std::to_string(status) +
                     ": response is not JSON: " + body.substr(0, 200));
  }
  return j;
}

HttpClient::HttpClient(std::string base_url, std::string token) : base_url_(std::move(base_url)) {
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
  if (!token.empty()) auth_header_ = "Authorization: Bearer " + token;
  global_init();
  curl_ = curl_easy_init();
  FLIGHT_CHECK(curl_ != nullptr, "curl_easy_init failed");
}

HttpClient::~HttpClient() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

StatusOr<HttpResponse> HttpClient::request(const std::string& method, const std::string& path,
                                           const std::string& body,
                                           const std::vector<std::string>& headers,
                                           double timeout_s) {
  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_reset(c);  // keeps the connection cache
  const std::string url = base_url_ + path;
  HttpResponse response;
  curl_slist* list = nullptr;
  if (!auth_header_.empty()) list = curl_slist_append(list, auth_header_.c_str());
  // curl otherwise sends "Expect: 100-continue" for larger bodies and waits
  // up to a second for an interim response the service never sends.
  list = curl_slist_append(list, "Expect:");
  if (!body.empty()) list = curl_slist_append(list, "Content-Type: application/json");
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_s * 1000));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response.body);
  if (abort_) {
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(abort_));
  }
  if (method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    if (method != "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method == "POST" || !body.empty()) {
      curl_easy_setopt(c, CURLOPT_POST, 1L);
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
  }
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(list);
  if (rc == CURLE_ABORTED_BY_CALLBACK) return cancelled(method + " " + url + ": aborted");
  if (rc != CURLE_OK) {
    return unavailable(method + " " + url + ": " + curl_easy_strerror(rc));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

Status status_from_response(const HttpResponse& r, const std::string& what) {
  if (r.ok()) return Status::ok();
  std::string message = r.body.substr(0, 500);
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_object()) {
    message = j["error"].value("message", message);
  }
  message = what + ": HTTP " + std::to_string(r.status) + ": " + message;
  switch (r.status) {
    case 400:
      return invalid_argument(message);
    case 401:
      return unauthenticated(message);
    case 404:
      return not_found(message);
    case 409:
      return already_exists(message);
    case 413:
    case 429:
      return resource_exhausted(message);
    default:
      break;
  }
  if (r.status >= 500) return unavailable(message);
  return internal_error(message);
}

}  // namespace flight::faas
