#include "flight/faas/http_client.h"

#include <curl/curl.h>

#include <mutex>

#include "flight/base/options.h"
#include "flight/base/strings.h"
#include "flight/faas/auth.h"

namespace flight::faas {

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Sink {
  std::string* body;
  size_t limit;
  bool overflow = false;
};

size_t write_cb(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  if (sink->body->size() + size * n > sink->limit) {
    sink->overflow = true;
    return 0;  // aborts the transfer
  }
  sink->body->append(data, size * n);
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

namespace {

std::vector<std::string> split_urls(const std::string& list) {
  std::vector<std::string> out;
  for (auto& u : split(list, ',')) {
    std::string t = trim(u);
    while (!t.empty() && t.back() == '/') t.pop_back();
    if (!t.empty()) out.push_back(std::move(t));
  }
  return out;
}

}  // namespace

HttpClient::HttpClient(std::string base_url, std::string token, std::string ca_file)
    : urls_(split_urls(base_url)), ca_file_(std::move(ca_file)) {
  if (urls_.empty()) urls_.push_back("");
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
  StatusOr<HttpResponse> r = perform(urls_[current_], method, path, body, headers, timeout_s);
  for (size_t tried = 1; tried < urls_.size(); ++tried) {
    const bool failover =
        r.is_ok() ? r->status == 503 : r.status().code() == StatusCode::kUnavailable;
    if (!failover) break;
    current_ = (current_ + 1) % urls_.size();
    r = perform(urls_[current_], method, path, body, headers, timeout_s);
  }
  return r;
}

StatusOr<HttpResponse> HttpClient::perform(const std::string& base, const std::string& method,
                                           const std::string& path, const std::string& body,
                                           const std::vector<std::string>& headers,
                                           double timeout_s) {
  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_reset(c);  // keeps the connection cache
  const std::string url = base + path;
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
  Sink sink{&response.body, kMaxResponseBytes};
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  // Only the service's own scheme: no redirects to elsewhere, no downgrade.
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!ca_file_.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, ca_file_.c_str());
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
  if (sink.overflow) {
    return unavailable(method + " " + url + ": response larger than " +
                       std::to_string(kMaxResponseBytes) + " bytes");
  }
  if (rc != CURLE_OK) {
    return unavailable(method + " " + url + ": " + curl_easy_strerror(rc));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

StatusOr<nlohmann::json> reply_object(const HttpResponse& r, const std::string& what) {
  auto j = r.json();
  if (!j.is_ok()) return j.status().with_context(what);
  if (!j->is_object()) {
    return invalid_argument(what + ": expected a JSON object, got " + j->type_name());
  }
  return j;
}

StatusOr<nlohmann::json> reply_array(nlohmann::json& j, const char* key, const std::string& what) {
  OptionReader reader(j, what);
  reader.ignore_unknown();
  auto it = j.is_object() ? j.find(key) : j.end();
  if (it != j.end() && !it->is_null() && !it->is_array()) {
    reader.fail(key, std::string("expected an array, got ") + it->type_name());
  }
  FLIGHT_RETURN_IF_ERROR(reader.finish());
  // Moved out, not copied: replies carry thousands of tasks.
  if (it == j.end() || it->is_null()) return nlohmann::json::array();
  return std::move(*it);
}

Status check_service_url(const std::string& url, const std::string& what) {
  auto urls = split_urls(url);
  if (urls.empty()) return invalid_argument(what + ": service url is empty");
  for (const auto& u : urls) {
    if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0) {
      return invalid_argument(what + ": service url must start with http:// or https:// (got '" +
                              u + "')");
    }
  }
  return Status::ok();
}

Status status_from_response(const HttpResponse& r, const std::string& what) {
  if (r.ok()) return Status::ok();
  std::string message = r.body.substr(0, 500);
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    // {"error": {"message": ...}} when the service sent it; else the raw body.
    OptionReader reply(j, "reply");
    OptionReader err = reply.ignore_unknown().child("error");
    std::string m;
    err.ignore_unknown().optional("message", &m);
    if (err.finish().is_ok() && !m.empty()) message = m;
  }
  message = what + ": HTTP " + std::to_string(r.status) + ": " + message;
  switch (r.status) {
    case 400:
      return invalid_argument(message);
    case 401:
      return unauthenticated(message);
    case 403:
      return permission_denied(message);
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
