#include "flight/faas/service.h"

#include <array>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "flight/base/ids.h"
#include "flight/base/json.h"
#include "flight/base/logging.h"
#include "flight/base/options.h"
#include "flight/base/strings.h"
#include "flight/base/time.h"
#include "flight/faas/auth.h"
#include "flight/faas/service_state.h"
#include "flight/faas/token_file.h"

namespace flight::faas {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// ---------------------------------------------------------------------------
// Options

Status ServiceOptions::validate() const {
  if (host.empty()) return invalid_argument("service: host must not be empty");
  if (port < 0 || port > 65535) return invalid_argument("service: port must be in [0, 65535]");
  if (token.empty() && token_file.empty()) {
    return invalid_argument("service: a bearer token is required (token or token_file)");
  }
  if (tls_cert.empty() != tls_key.empty()) {
    return invalid_argument("service: TLS needs both tls_cert and tls_key");
  }
  if (threads < 1) return invalid_argument("service: threads must be >= 1");
  if (max_body_bytes < 1024) return invalid_argument("service: max_body_bytes must be >= 1024");
  if (max_batch < 1) return invalid_argument("service: max_batch must be >= 1");
  if (!(lease_s > 0)) return invalid_argument("service: lease_s must be > 0");
  if (max_attempts < 1) return invalid_argument("service: max_attempts must be >= 1");
  if (!(leader_ttl_s > 0)) return invalid_argument("service: leader_ttl_s must be > 0");
  if (max_queue < 1) return invalid_argument("service: max_queue must be >= 1");
  if (!(read_timeout_s > 0)) return invalid_argument("service: read_timeout_s must be > 0");
  if (max_wait_s < 0) return invalid_argument("service: max_wait_s must be >= 0");
  if (!(result_ttl_s > 0)) return invalid_argument("service: result_ttl_s must be > 0");
  if (!(sweep_interval_s > 0)) return invalid_argument("service: sweep_interval_s must be > 0");
  return Status::ok();
}

StatusOr<ServiceOptions> ServiceOptions::from_json(const nlohmann::json& j) {
  const std::string w = "service options";
  OptionReader reader(j, w);
  ServiceOptions o;
  reader.optional("host", &o.host);
  reader.optional("port", &o.port);
  reader.optional("token", &o.token);
  reader.optional("token_file", &o.token_file);
  reader.optional("tls_cert", &o.tls_cert);
  reader.optional("tls_key", &o.tls_key);
  reader.optional("state", &o.state);
  reader.optional("state_prefix", &o.state_prefix);
  reader.optional("threads", &o.threads);
  reader.optional("max_body_bytes", &o.max_body_bytes);
  reader.optional("max_batch", &o.max_batch);
  reader.optional("lease_s", &o.lease_s);
  reader.optional("max_attempts", &o.max_attempts);
  reader.optional("max_queue", &o.max_queue);
  reader.optional("leader_ttl_s", &o.leader_ttl_s);
  reader.optional("read_timeout_s", &o.read_timeout_s);
  reader.optional("max_wait_s", &o.max_wait_s);
  reader.optional("result_ttl_s", &o.result_ttl_s);
  reader.optional("sweep_interval_s", &o.sweep_interval_s);
  FLIGHT_RETURN_IF_ERROR(reader.finish());
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

nlohmann::json ServiceOptions::to_json() const {
  return {{"host", host},
          {"port", port},
          {"token_file", token_file},
          {"tls_cert", tls_cert},
          {"tls_key", tls_key},
          {"state", state},
          {"state_prefix", state_prefix},
          {"threads", threads},
          {"max_body_bytes", max_body_bytes},
          {"max_batch", max_batch},
          {"lease_s", lease_s},
          {"max_attempts", max_attempts},
          {"max_queue", max_queue},
          {"leader_ttl_s", leader_ttl_s},
          {"read_timeout_s", read_timeout_s},
          {"max_wait_s", max_wait_s},
          {"result_ttl_s", result_ttl_s},
          {"sweep_interval_s", sweep_interval_s}};
}

// ---------------------------------------------------------------------------
// HTTP helpers

namespace {

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

const char* error_code_name(http::status s) {
  switch (s) {
    case http::status::bad_request:
      return "bad_request";
    case http::status::unauthorized:
      return "unauthenticated";
    case http::status::forbidden:
      return "forbidden";
    case http::status::not_found:
      return "not_found";
    case http::status::method_not_allowed:
      return "method_not_allowed";
    case http::status::request_timeout:
      return "request_timeout";
    case http::status::conflict:
      return "conflict";
    case http::status::payload_too_large:
      return "payload_too_large";
    case http::status::request_header_fields_too_large:
      return "header_too_large";
    case http::status::too_many_requests:
      return "too_many_requests";
    case http::status::service_unavailable:
      return "unavailable";
    default:
      return "internal";
  }
}

Response json_response(http::status status, const nlohmann::json& body, unsigned version = 11) {
  Response res{status, version};
  res.set(http::field::server, "flight");
  res.set(http::field::content_type, "application/json");
  res.body() = dump_json(body);
  res.prepare_payload();
  return res;
}

Response error_response(http::status status, const std::string& message, unsigned version = 11) {
  Response res = json_response(status,
                               {{"error",
                                 {{"code", error_code_name(status)},
                                  {"status", static_cast<int>(status)},
                                  {"message", message}}}},
                               version);
  if (status == http::status::unauthorized) res.set(http::field::www_authenticate, "Bearer");
  if (status == http::status::too_many_requests) res.set(http::field::retry_after, "1");
  return res;
}

http::status http_status_for(const Status& st) {
  switch (st.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      return http::status::bad_request;
    case StatusCode::kUnauthenticated:
      return http::status::unauthorized;
    case StatusCode::kNotFound:
      return http::status::not_found;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
      return http::status::conflict;
    case StatusCode::kResourceExhausted:
      return http::status::too_many_requests;
    case StatusCode::kUnavailable:
      return http::status::service_unavailable;
    default:
      return http::status::internal_server_error;
  }
}

Response status_response(const Status& st, unsigned version) {
  if (is_permission_denied(st)) {
    return error_response(http::status::forbidden, st.message().substr(11), version);
  }
  return error_response(http_status_for(st), st.message(), version);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string fnv1a_hex(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

struct Target {
  std::vector<std::string> segments;  // "/v1/tasks/x" -> {"v1","tasks","x"}
  std::map<std::string, std::string> query;
};

Target parse_target(std::string_view target) {
  Target t;
  auto q = target.find('?');
  std::string_view path = target.substr(0, q);
  for (auto& seg : split(path, '/')) {
    if (!seg.empty()) t.segments.push_back(url_decode(seg));
  }
  if (q != std::string_view::npos) {
    for (auto& kv : split(target.substr(q + 1), '&')) {
      if (kv.empty()) continue;
      auto eq = kv.find('=');
      if (eq == std::string::npos) {
        t.query[url_decode(kv)] = "";
      } else {
        t.query[url_decode(kv.substr(0, eq))] = url_decode(kv.substr(eq + 1));
      }
    }
  }
  return t;
}

StatusOr<double> query_number(const Target& t, const char* key, double def, double lo, double hi) {
  auto it = t.query.find(key);
  if (it == t.query.end()) return def;
  char* end = nullptr;
  double v = strtod(it->second.c_str(), &end);
  if (it->second.empty() || end == nullptr || *end != '\0' || !(v >= lo)) {
    return invalid_argument(std::string("query parameter '") + key + "': expected a number >= " +
                            std::to_string(lo) + ", got '" + it->second + "'");
  }
  return std::min(v, hi);
}

StatusOr<nlohmann::json> parse_body(const Request& req) {
  if (req.body().empty()) return invalid_argument("request body is empty; expected a JSON object");
  try {
    nlohmann::json j = nlohmann::json::parse(req.body());
    if (!j.is_object()) {
      return invalid_argument(std::string("request body: expected a JSON object, got ") +
                              j.type_name());
    }
    return j;
  } catch (const nlohmann::json::parse_error& e) {
    return invalid_argument(std::string("malformed JSON body: ") + e.what());
  }
}

using SharedByName = std::map<std::string, std::shared_ptr<SharedJson>>;

// The body's "shared" parts of its tasks' args or results (shared_json.h),
// {"name": {...}}, moved out of `body`; problems go to `reader`.
SharedByName read_shared(nlohmann::json& body, OptionReader& reader) {
  SharedByName shared;
  auto sh = body.find("shared");
  if (sh == body.end()) return shared;
  if (!sh->is_object()) {
    reader.fail("shared", "expected an object of named objects");
    return shared;
  }
  for (auto& [name, value] : sh->items()) {
    if (!value.is_object()) {
      reader.fail("shared", "'" + name + "': expected an object, got " + value.type_name());
      continue;
    }
    auto a = std::make_shared<SharedJson>();
    a->value = std::move(value);
    shared.emplace(name, std::move(a));
  }
  return shared;
}

// The SharedJson `name` of `shared`, or a failure on `reader`'s "shared" key.
std::shared_ptr<SharedJson> find_shared(const SharedByName& shared, const std::string& name,
                                        OptionReader& reader) {
  auto it = shared.find(name);
  if (it != shared.end()) return it->second;
  reader.fail("shared", "'" + name + "' is not in the request's \"shared\" object");
  return nullptr;
}

// One task of a submit body. Its args are moved out of `j` (batches are
// large: no copy); `shared` holds the body's shared args.
StatusOr<ServiceState::Submission> read_submission(nlohmann::json& j, const std::string& where,
                                                   const SharedByName& shared) {
  ServiceState::Submission s;
  TaskSpec& spec = s.spec;
  std::string shared_name;
  OptionReader reader(j, where);
  reader.required("endpoint", &spec.endpoint)
      .required("function", &spec.function)
      .at_least("deadline_s", &spec.deadline_s, 0.0)
      .optional("id", &s.id)
      .optional("shared", &shared_name)
      .known({"args"});
  if (reader.has("endpoint") && spec.endpoint.empty()) reader.fail("endpoint", "must not be empty");
  if (reader.has("function") && spec.function.empty()) reader.fail("function", "must not be empty");
  auto args = j.is_object() ? j.find("args") : j.end();
  if (reader.has("shared")) {
    s.shared = find_shared(shared, shared_name, reader);
    if (args != j.end() && !args->is_object()) {
      reader.fail("args",
                  std::string("must be an object with \"shared\", got ") + args->type_name());
    }
  }
  FLIGHT_RETURN_IF_ERROR(reader.finish());
  if (args != j.end()) spec.args = std::move(*args);
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------

class ServiceCore {
 public:
  explicit ServiceCore(ServiceOptions options) : options_(std::move(options)) {}
  ~ServiceCore() { stop(); }

  Status start();
  void stop();
  int port() const { return port_; }
  const ServiceOptions& options() const { return options_; }
  // Only while leader() (a standby has no tables yet).
  ServiceState& state() { return *state_; }
  // True while this replica serves: always with memory state; with Redis
  // while it holds the lead and no write of its was fenced.
  bool leader() const {
    return leader_.load(std::memory_order_acquire) && !state_->backend().fenced_out();
  }
  // "leader", "standby" (waiting to take over) or "fenced" (lost the lead).
  const char* role() const {
    if (leader_.load(std::memory_order_acquire)) {
      return state_->backend().fenced_out() ? "fenced" : "leader";
    }
    return lost_lead_.load() ? "fenced" : "standby";
  }
  bool lost_lead() const { return std::string(role()) == "fenced"; }
  const TokenTable& tokens() const { return tokens_; }
  std::string describe_state() const {
    return election_ ? election_->describe() : std::string("memory");
  }
  bool tls() const { return ssl_ != nullptr; }
  void count_response(unsigned status) {
    if (status < http_counts_.size()) http_counts_[status].fetch_add(1, std::memory_order_relaxed);
  }
  std::string http_metrics() const {
    std::string out =
        "# HELP flight_http_responses_total HTTP responses by status code.\n"
        "# TYPE flight_http_responses_total counter\n";
    for (size_t i = 0; i < http_counts_.size(); ++i) {
      uint64_t n = http_counts_[i].load(std::memory_order_relaxed);
      if (n)
        out += "flight_http_responses_total{code=\"" + std::to_string(i) + "\"} " +
               std::to_string(n) + "\n";
    }
    return out;
  }

 private:
  void do_accept();
  void schedule_sweep();
  // One election round: take or renew the lead; on taking it, load the
  // journal and start serving; on losing it, stop serving for good.
  void elect();
  Status promote();

  ServiceOptions options_;
  std::unique_ptr<StateBackend> election_;  // own connection; null with memory state
  std::string holder_;                      // this replica's id in the leader key
  std::atomic<bool> leader_{false}, lost_lead_{false};
  double last_renewal_ = 0;  // steady seconds of the last successful renewal
  std::thread elector_;
  std::mutex elector_mu_;
  std::condition_variable elector_cv_;
  bool elector_stop_ = false;
  TokenTable tokens_;
  std::unique_ptr<net::ssl::context> ssl_;  // null: plain HTTP
  std::unique_ptr<ServiceState> state_;     // outlives ioc_ (declared before it)
  std::unique_ptr<net::io_context> ioc_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::unique_ptr<net::steady_timer> sweep_timer_;
  std::vector<std::thread> threads_;
  int port_ = 0;
  bool running_ = false;
  std::array<std::atomic<uint64_t>, 600> http_counts_{};
};

namespace {

// One connection. Everything runs on the connection's strand. The HTTP logic
// is here; PlainSession and TlsSession below only say how bytes move.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(const net::any_io_executor& ex, ServiceCore& svc)
      : svc_(svc), read_timer_(ex), timer_(ex) {}
  virtual ~Session() = default;

  void run() {
    net::dispatch(tcp().get_executor(), [self = shared_from_this()] { self->start(); });
  }

 protected:
  using Handler = std::function<void(beast::error_code, std::size_t)>;
  // The TCP layer (timeouts, socket); for TLS the stream under the TLS layer.
  virtual beast::tcp_stream& tcp() = 0;
  // Plain: do_read(). TLS: the handshake first.
  virtual void start() = 0;
  virtual void async_read_request(Handler h) = 0;
  virtual void async_write_response(Handler h) = 0;
  // Application bytes (decrypted under TLS).
  virtual void async_read_some(net::mutable_buffer b, Handler h) = 0;

  std::shared_ptr<Session> self() { return shared_from_this(); }
  ServiceCore& svc_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<Response> res_;

 public:
  void do_read() {
    parser_.emplace();
    parser_->body_limit(svc_.options().max_body_bytes);
    parser_->header_limit(16 * 1024);
    // Our own timer rather than tcp_stream's expiry: that one closes the
    // socket, and a stalled client should still read its 408.
    tcp().expires_never();
    read_timed_out_ = false;
    read_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(svc_.options().read_timeout_s)));
    read_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->read_timed_out_ = true;
      beast::error_code ignored;
      self->tcp().socket().cancel(ignored);
    });
    async_read_request(
        [self = shared_from_this()](beast::error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  void close() {
    beast::error_code ec;
    tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp().close();
  }

 private:
  using Attempt = std::function<std::optional<Response>(const WaiterPtr&)>;

  void on_read(beast::error_code ec, std::size_t) {
    read_timer_.cancel();
    if (ec == http::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::connection_reset || ec == net::ssl::error::stream_truncated) {
      return close();
    }
    if (read_timed_out_ && ec == net::error::operation_aborted) {
      // A client that started a request and stalled gets 408; an idle
      // keep-alive connection is just closed.
      if (parser_->got_some()) {
        return send(error_response(http::status::request_timeout,
                                   "request not received within " +
                                       std::to_string(svc_.options().read_timeout_s) + " s"),
                    /*keep_alive=*/false);
      }
      return close();
    }
    if (ec == http::error::body_limit) {
      return send(error_response(http::status::payload_too_large,
                                 "request body exceeds the limit of " +
                                     std::to_string(svc_.options().max_body_bytes) + " bytes"),
                  false);
    }
    if (ec == http::error::header_limit) {
      return send(error_response(http::status::request_header_fields_too_large,
                                 "request headers exceed 16384 bytes"),
                  false);
    }
    if (ec) {
      return send(
          error_response(http::status::bad_request, "malformed HTTP request: " + ec.message()),
          false);
    }
    req_ = parser_->release();
    // Nothing may escape an Asio handler: a bug in one request answers 500
    // instead of taking the service down.
    try {
      handle();
    } catch (const std::exception& e) {
      spdlog::error("{} {}: {}", std::string(req_.method_string()), std::string(req_.target()),
                    e.what());
      waiter_.reset();
      respond(error_response(http::status::internal_server_error,
                             std::string("internal error: ") + e.what()));
    }
  }

  void send(Response res, bool keep_alive) {
    res.version(11);
    res.keep_alive(keep_alive);
    svc_.count_response(res.result_int());
    res_ = std::make_shared<Response>(std::move(res));
    tcp().expires_after(std::chrono::seconds(30));
    async_write_response(
        [self = shared_from_this(), keep_alive](beast::error_code ec, std::size_t n) {
          self->on_write(keep_alive, ec, n);
        });
  }

  void respond(Response res) { send(std::move(res), req_.keep_alive()); }

  void on_write(bool keep_alive, beast::error_code ec, std::size_t) {
    res_.reset();
    std::vector<std::string> leased = std::move(leased_ids_);
    leased_ids_.clear();
    if (ec) {
      // The endpoint never saw these leases: hand them back at once rather
      // than let them wait for lease expiry.
      if (!leased.empty()) (void)svc_.state().release(leased_endpoint_, leased);
      return close();
    }
    if (!keep_alive) return linger_close();
    do_read();
  }

  // Half-close, then drain what the client is still sending (e.g. the rest of
  // an oversized body), so the kernel does not reset the connection before
  // the client has read our response.
  void linger_close() {
    beast::error_code ec;
    tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
    tcp().expires_after(std::chrono::seconds(2));
    drain_.resize(16 * 1024);
    tcp().async_read_some(net::buffer(drain_),
                          beast::bind_front_handler(&Session::on_drain, shared_from_this()));
  }

  void on_drain(beast::error_code ec, std::size_t) {
    if (ec) return close();
    tcp().async_read_some(net::buffer(drain_),
                          beast::bind_front_handler(&Session::on_drain, shared_from_this()));
  }

  // --- long polls -------------------------------------------------------

  // What a replica that does not lead answers; clients with several service
  // URLs move on to the next one.
  Response standby_response() {
    Response r = error_response(http::status::service_unavailable,
                                std::string("this service replica is ") + svc_.role() +
                                    ", not the leader; try another replica");
    r.set("X-Flight-Role", svc_.role());
    return r;
  }

  void long_poll(double wait_s, Attempt attempt_in) {
    // The lead can be lost while a poll waits: answer from nothing stale.
    Attempt attempt = [this,
                       a = std::move(attempt_in)](const WaiterPtr& w) -> std::optional<Response> {
      if (!svc_.leader()) return standby_response();
      return a(w);
    };
    if (wait_s <= 0) return respond(*attempt(nullptr));
    auto waiter = std::make_shared<Waiter>();
    const uint64_t gen = ++wait_gen_;
    std::weak_ptr<Session> weak = shared_from_this();
    auto exec = tcp().get_executor();
    waiter->wake = [weak, exec, gen] {
      net::post(exec, [weak, gen] {
        if (auto self = weak.lock()) self->on_wake(gen);
      });
    };
    waiter_ = waiter;
    attempt_ = std::move(attempt);
    if (auto r = attempt_(waiter_)) return finish_wait(std::move(*r));
    tcp().expires_never();
    timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(wait_s)));
    timer_.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
      if (ec || gen != self->wait_gen_ || !self->waiter_) return;
      self->svc_.state().remove_waiter(self->waiter_);
      auto r = self->attempt_(nullptr);
      self->finish_wait(std::move(*r));
    });
    watch_disconnect(gen);
  }

  // A client that vanishes mid-poll (e.g. a SIGKILLed endpoint) must not keep
  // a waiter that would lease tasks into a dead socket: read while waiting;
  // EOF or an error ends the wait. (Pipelined bytes are kept for the parser.)
  void watch_disconnect(uint64_t gen) {
    watching_ = true;
    async_read_some(buffer_.prepare(4096),
                    [self = shared_from_this(), gen](beast::error_code ec, std::size_t n) {
                      self->watching_ = false;
                      if (!ec) self->buffer_.commit(n);
                      if (gen != self->wait_gen_ || !self->waiter_)
                        return;  // the wait already ended
                      if (!ec) return self->watch_disconnect(gen);
                      self->svc_.state().remove_waiter(self->waiter_);
                      self->waiter_.reset();
                      self->attempt_ = nullptr;
                      ++self->wait_gen_;
                      self->timer_.cancel();
                      self->close();
                    });
  }

  void on_wake(uint64_t gen) {
    if (gen != wait_gen_ || !waiter_) return;
    if (auto r = attempt_(waiter_)) finish_wait(std::move(*r));
    // else: the attempt registered the waiter again; keep waiting.
  }

  void finish_wait(Response res) {
    svc_.state().remove_waiter(waiter_);
    waiter_.reset();
    attempt_ = nullptr;
    ++wait_gen_;  // stale wake-ups and timer completions are ignored
    timer_.cancel();
    if (watching_) {
      // Cancel the disconnect watch before the response is written and the
      // next request read (its completion is queued ahead of ours).
      beast::error_code ignored;
      tcp().socket().cancel(ignored);
    }
    respond(std::move(res));
  }

  // --- routing ----------------------------------------------------------

  void handle();
  bool authorized(std::string* why);
  // 403 for a route this principal's role may not use.
  bool role_allowed(std::initializer_list<Role> roles) {
    for (Role r : roles) {
      if (who_.role == r) return true;
    }
    respond(error_response(http::status::forbidden, std::string("a ") + role_name(who_.role) +
                                                        " token may not use " +
                                                        std::string(req_.method_string()) + " " +
                                                        std::string(req_.target())));
    return false;
  }

  Response method_not_allowed(const char* allow) {
    Response r = error_response(http::status::method_not_allowed,
                                std::string("method ") + std::string(req_.method_string()) +
                                    " not allowed here (allowed: " + allow + ")");
    r.set(http::field::allow, allow);
    return r;
  }

  void route_endpoints(const Target& t);
  void route_tasks(const Target& t);
  void route_results();
  void route_clients(const Target& t);

  Request req_;
  Principal who_;  // of the request being handled
  std::vector<char> drain_;
  net::steady_timer read_timer_;
  bool read_timed_out_ = false;
  net::steady_timer timer_;
  WaiterPtr waiter_;
  Attempt attempt_;
  uint64_t wait_gen_ = 0;
  bool watching_ = false;
  std::string leased_endpoint_;
  std::vector<std::string> leased_ids_;  // in the response being written
};

bool Session::authorized(std::string* why) {
  auto it = req_.find(http::field::authorization);
  if (it == req_.end()) {
    *why = "missing bearer token (send 'Authorization: Bearer <token>')";
    return false;
  }
  std::string_view value(it->value().data(), it->value().size());
  if (value.size() < 7 || to_lower(value.substr(0, 7)) != "bearer ") {
    *why = "Authorization header must use the Bearer scheme";
    return false;
  }
  auto who = svc_.tokens().authenticate(trim(value.substr(7)));
  if (!who.is_ok()) {
    *why = who.status().message();
    return false;
  }
  who_ = std::move(who).value();
  return true;
}

void Session::handle() {
  const Target t = parse_target(std::string_view(req_.target().data(), req_.target().size()));
  const auto& seg = t.segments;
  const auto method = req_.method();
  if (seg.size() == 2 && seg[0] == "v1" && seg[1] == "healthz") {
    if (method != http::verb::get) return respond(method_not_allowed("GET"));
    return respond(
        json_response(http::status::ok,
                      {{"status", "ok"}, {"state", svc_.describe_state()}, {"role", svc_.role()}}));
  }
  if (!svc_.leader()) return respond(standby_response());
  std::string why;
  if (!authorized(&why)) return respond(error_response(http::status::unauthorized, why));
  if (seg.size() == 1 && seg[0] == "metrics") {
    if (method != http::verb::get) return respond(method_not_allowed("GET"));
    if (!role_allowed({Role::kAdmin})) return;
    Response res{http::status::ok, 11};
    res.set(http::field::content_type, "text/plain; version=0.0.4");
    res.body() = svc_.state().metrics_text() + svc_.http_metrics();
    res.prepare_payload();
    return respond(std::move(res));
  }
  if (seg.size() >= 2 && seg[0] == "v1") {
    if (seg[1] == "endpoints") return route_endpoints(t);
    if (seg[1] == "tasks") return route_tasks(t);
    if (seg[1] == "results" && seg.size() == 2) return route_results();
    if (seg[1] == "clients") return route_clients(t);
  }
  respond(error_response(http::status::not_found,
                         "no route for " + std::string(req_.method_string()) + " " +
                             std::string(req_.target()) + " (see docs/rest-api.md)"));
}

void Session::route_endpoints(const Target& t) {
  const auto& seg = t.segments;
  const auto method = req_.method();
  const unsigned v = req_.version();
  auto& state = svc_.state();
  if (!role_allowed({Role::kAdmin, Role::kEndpoint})) return;
  if (seg.size() == 2) {  // /v1/endpoints
    if (method != http::verb::post) return respond(method_not_allowed("POST"));
    auto body = parse_body(req_);
    if (!body.is_ok()) return respond(status_response(body.status(), v));
    std::string name;
    std::vector<std::string> functions;
    nlohmann::json meta = nlohmann::json::object();
    OptionReader reader(*body, "endpoint registration");
    reader.required("name", &name).optional("functions", &functions).optional("meta", &meta);
    if (reader.has("name") && name.empty()) reader.fail("name", "must not be empty");
    if (!meta.is_object()) reader.fail("meta", "expected an object");
    if (Status st = reader.finish(); !st.is_ok()) return respond(status_response(st, v));
    if (who_.role == Role::kEndpoint && name != who_.name) {
      return respond(error_response(
          http::status::forbidden,
          "this endpoint token may register only as '" + who_.name + "', not '" + name + "'"));
    }
    return respond(
        json_response(http::status::created, state.register_endpoint(name, functions, meta)));
  }
  const std::string& id = seg[2];
  if (seg.size() == 3) {  // /v1/endpoints/{id}
    if (method == http::verb::get) {
      auto e = state.get_endpoint(id, who_);
      if (!e.is_ok()) return respond(status_response(e.status(), v));
      return respond(json_response(http::status::ok, *e));
    }
    if (method == http::verb::delete_) {
      Status st = state.deregister_endpoint(id, who_);
      if (!st.is_ok()) return respond(status_response(st, v));
      return respond(json_response(http::status::ok, {{"deregistered", id}}));
    }
    return respond(method_not_allowed("GET, DELETE"));
  }
  if (seg.size() != 4)
    return respond(error_response(http::status::not_found, "no such endpoint route"));
  if (seg[3] == "tasks") {  // long-poll lease
    if (method != http::verb::get) return respond(method_not_allowed("GET"));
    auto wait = query_number(t, "wait", 0, 0, svc_.options().max_wait_s);
    auto max = query_number(t, "max", 1, 1, 10000);
    if (!wait.is_ok()) return respond(status_response(wait.status(), v));
    if (!max.is_ok()) return respond(status_response(max.status(), v));
    size_t n = static_cast<size_t>(*max);
    return long_poll(*wait, [this, id, n, v](const WaiterPtr& w) -> std::optional<Response> {
      auto r = svc_.state().lease_or_wait(id, n, w, who_);
      if (!r.is_ok()) return status_response(r.status(), v);
      if (!r->has_value()) return std::nullopt;
      leased_endpoint_ = id;
      leased_ids_.clear();
      for (const auto& t : (**r)["tasks"]) leased_ids_.push_back(t["id"].get<std::string>());
      return json_response(http::status::ok, **r);
    });
  }
  if (seg[3] == "heartbeat" || seg[3] == "release") {
    if (method != http::verb::post) return respond(method_not_allowed("POST"));
    auto body = parse_body(req_);
    if (!body.is_ok()) return respond(status_response(body.status(), v));
    std::vector<std::string> ids;
    OptionReader reader(*body, seg[3]);
    reader.required("task_ids", &ids);
    if (Status st = reader.finish(); !st.is_ok()) return respond(status_response(st, v));
    auto r = seg[3] == "heartbeat" ? state.heartbeat(id, ids, who_) : state.release(id, ids, who_);
    if (!r.is_ok()) return respond(status_response(r.status(), v));
    return respond(json_response(http::status::ok, *r));
  }
  respond(error_response(http::status::not_found, "no endpoint route '" + seg[3] + "'"));
}

void Session::route_tasks(const Target& t) {
  const auto& seg = t.segments;
  const auto method = req_.method();
  const unsigned v = req_.version();
  auto& state = svc_.state();
  if (seg.size() == 2) {  // POST /v1/tasks
    if (method != http::verb::post) return respond(method_not_allowed("POST"));
    if (!role_allowed({Role::kAdmin, Role::kClient})) return;
    auto body = parse_body(req_);
    if (!body.is_ok()) return respond(status_response(body.status(), v));
    OptionReader reader(*body, "request body");
    reader.known({"tasks", "shared"});  // read in place below: batches can be large
    auto it = body->find("tasks");
    if (it == body->end() || !it->is_array()) {
      reader.fail("tasks", "expected an array of task objects");
    }
    auto shared = read_shared(*body, reader);
    if (Status st = reader.finish(); !st.is_ok()) return respond(status_response(st, v));
    if (it->empty())
      return respond(error_response(http::status::bad_request, "request body.tasks is empty"));
    if (it->size() > svc_.options().max_batch) {
      return respond(error_response(http::status::payload_too_large,
                                    "too many tasks in one request: " + std::to_string(it->size()) +
                                        " > " + std::to_string(svc_.options().max_batch)));
    }
    std::vector<ServiceState::Submission> subs;
    subs.reserve(it->size());
    for (size_t i = 0; i < it->size(); ++i) {
      auto s = read_submission((*it)[i], "tasks[" + std::to_string(i) + "]", shared);
      if (!s.is_ok()) return respond(status_response(s.status(), v));
      subs.push_back(std::move(s).value());
    }
    std::string key, client;
    if (auto h = req_.find("Idempotency-Key"); h != req_.end()) key = std::string(h->value());
    if (auto h = req_.find("X-Flight-Client"); h != req_.end()) client = std::string(h->value());
    // A client's completion streams live in its own namespace.
    if (who_.role == Role::kClient && !client.empty()) client = who_.name + "/" + client;
    if (key.size() > 256)
      return respond(
          error_response(http::status::bad_request, "Idempotency-Key longer than 256 characters"));
    // Keys are per principal: one client cannot replay (or probe) another's.
    if (!key.empty() && !who_.admin()) key = who_.name + "/" + key;
    auto out = state.submit(std::move(subs), key, key.empty() ? "" : fnv1a_hex(req_.body()), client,
                            who_.owner());
    if (!out.is_ok()) return respond(status_response(out.status(), v));
    return respond(json_response(out->replayed ? http::status::ok : http::status::created,
                                 {{"task_ids", out->ids}, {"replayed", out->replayed}}));
  }
  if (seg.size() == 3 && seg[2] == "wait") {  // POST /v1/tasks/wait
    if (method != http::verb::post) return respond(method_not_allowed("POST"));
    auto body = parse_body(req_);
    if (!body.is_ok()) return respond(status_response(body.status(), v));
    std::vector<std::string> ids;
    double wait = 0;
    size_t max = 10000;
    OptionReader reader(*body, "wait request");
    reader.required("ids", &ids).at_least("wait", &wait, 0.0).optional("max", &max);
    if (ids.size() > 10000) reader.fail("ids", "at most 10000 ids");
    if (Status st = reader.finish(); !st.is_ok()) return respond(status_response(st, v));
    wait = std::min(wait, svc_.options().max_wait_s);
    return long_poll(
        wait, [this, ids = std::move(ids), max](const WaiterPtr& w) -> std::optional<Response> {
          auto r = svc_.state().wait_tasks_or_wait(ids, std::max<size_t>(max, 1), w, who_);
          if (!r) return std::nullopt;
          return json_response(http::status::ok, *r);
        });
  }
  const std::string& id = seg[2];
  if (seg.size() == 3) {  // GET /v1/tasks/{id}?wait=S
    if (method != http::verb::get) return respond(method_not_allowed("GET"));
    auto wait = query_number(t, "wait", 0, 0, svc_.options().max_wait_s);
    if (!wait.is_ok()) return respond(status_response(wait.status(), v));
    return long_poll(*wait, [this, id, v](const WaiterPtr& w) -> std::optional<Response> {
      auto r = svc_.state().task_or_wait(id, w, who_);
      if (!r.is_ok()) return status_response(r.status(), v);
      if (!r->has_value()) return std::nullopt;
      return json_response(http::status::ok, **r);
    });
  }
  if (seg.size() == 4 && seg[3] == "result") {
    if (method != http::verb::post) return respond(method_not_allowed("POST"));
    if (!role_allowed({Role::kAdmin, Role::kEndpoint})) return;
    auto body = parse_body(req_);
    if (!body.is_ok()) return respond(status_response(body.status(), v));
    ServiceState::ResultIn r;
    r.task_id = id;
    std::string state_name;
    OptionReader reader(*body, "result");
    reader.optional("state", &state_name)
        .optional("result", &r.result)
        .optional("error", &r.error)
        .optional("started_at", &r.started_at)
        .optional("finished_at", &r.finished_at);
    Status st = reader.finish();
    if (st.is_ok()) {
      if (state_name.empty()) state_name = body->contains("error") ? "failed" : "succeeded";
      auto s = parse_task_state(state_name);
      if (!s.is_ok()) {
        st = s.status().with_context("result.state");
      } else if (!is_terminal(*s)) {
        st = invalid_argument(std::string("result.state: must be a final state, not '") +
                              task_state_name(*s) + "'");
      } else {
        r.state = *s;
      }
    }
    if (!st.is_ok()) return respond(status_response(st, v));
    std::vector<ServiceState::ResultIn> one;
    one.push_back(std::move(r));
    auto outcomes = state.post_results(std::move(one), who_);
    if (!outcomes.is_ok()) return respond(status_response(outcomes.status(), v));
    const std::string outcome = outcomes->front();
    if (outcome == "unknown task") {
      return respond(
          error_response(http::status::not_found, "task '" + id + "' is unknown (or expired)"));
    }
    if (starts_with(outcome, "forbidden: ")) {
      return respond(error_response(http::status::forbidden, outcome.substr(11)));
    }
    return respond(json_response(http::status::ok,
                                 {{"accepted", outcome == "accepted"}, {"outcome", outcome}}));
  }
  if (seg.size() == 4 && seg[3] == "cancel") {
    if (method != http::verb::post) return respond(method_not_allowed("POST"));
    auto r = state.cancel(id, who_);
    if (!r.is_ok()) return respond(status_response(r.status(), v));
    return respond(json_response(http::status::ok, *r));
  }
  respond(error_response(http::status::not_found, "no task route " + std::string(req_.target())));
}

void Session::route_results() {
  const unsigned v = req_.version();
  if (req_.method() != http::verb::post) return respond(method_not_allowed("POST"));
  if (!role_allowed({Role::kAdmin, Role::kEndpoint})) return;
  auto body = parse_body(req_);
  if (!body.is_ok()) return respond(status_response(body.status(), v));
  OptionReader reader(*body, "request body");
  reader.known({"results", "shared"});  // read in place below: batches can be large
  auto it = body->find("results");
  if (it == body->end() || !it->is_array()) {
    reader.fail("results", "expected an array of result objects");
  }
  auto shared = read_shared(*body, reader);
  Status st = reader.finish();
  std::vector<ServiceState::ResultIn> results;
  for (size_t i = 0; st.is_ok() && i < it->size(); ++i) {
    auto& e = (*it)[i];
    std::string where = "results[" + std::to_string(i) + "]";
    ServiceState::ResultIn r;
    std::string state_name = "succeeded", shared_name;
    OptionReader item(e, where);
    item.required("task_id", &r.task_id)
        .required("state", &state_name)
        .known({"result"})  // moved out below, not copied
        .optional("error", &r.error)
        .optional("started_at", &r.started_at)
        .optional("finished_at", &r.finished_at)
        .optional("shared", &shared_name);
    if (item.has("shared")) r.shared = find_shared(shared, shared_name, item);
    st = item.finish();
    if (st.is_ok()) {
      auto s = parse_task_state(state_name);
      if (!s.is_ok() || !is_terminal(*s)) {
        st = invalid_argument(where + ".state: must be a final state (" + kFinalStates + ")");
      } else {
        r.state = *s;
      }
    }
    if (st.is_ok()) {
      if (auto res = e.find("result"); res != e.end()) r.result = std::move(*res);
    }
    results.push_back(std::move(r));
  }
  if (!st.is_ok()) return respond(status_response(st, v));
  auto outcomes = svc_.state().post_results(std::move(results), who_);
  if (!outcomes.is_ok()) return respond(status_response(outcomes.status(), v));
  respond(json_response(http::status::ok, {{"outcomes", *outcomes}}));
}

void Session::route_clients(const Target& t) {
  const auto& seg = t.segments;
  const unsigned v = req_.version();
  if (seg.size() != 4 || seg[3] != "completions") {
    return respond(
        error_response(http::status::not_found, "no client route " + std::string(req_.target())));
  }
  if (req_.method() != http::verb::get) return respond(method_not_allowed("GET"));
  if (!role_allowed({Role::kAdmin, Role::kClient})) return;
  auto wait = query_number(t, "wait", 0, 0, svc_.options().max_wait_s);
  auto max = query_number(t, "max", 1000, 1, 100000);
  if (!wait.is_ok()) return respond(status_response(wait.status(), v));
  if (!max.is_ok()) return respond(status_response(max.status(), v));
  std::string client = who_.role == Role::kClient ? who_.name + "/" + seg[2] : seg[2];
  size_t n = static_cast<size_t>(*max);
  long_poll(*wait, [this, client, n](const WaiterPtr& w) -> std::optional<Response> {
    auto r = svc_.state().completions_or_wait(client, n, w);
    if (!r) return std::nullopt;
    return json_response(http::status::ok, *r);
  });
}

// How bytes move for a session over `Stream`: a tcp_stream, or an ssl_stream
// over one (its lowest layer carries the timeouts).
template <class Stream>
class StreamSession : public Session {
 public:
  template <class... Extra>
  StreamSession(tcp::socket&& socket, ServiceCore& svc, Extra&... extra)
      : Session(socket.get_executor(), svc), stream_(std::move(socket), extra...) {}

 protected:
  beast::tcp_stream& tcp() override { return beast::get_lowest_layer(stream_); }
  void async_read_request(Handler h) override {
    http::async_read(stream_, buffer_, *parser_, std::move(h));
  }
  void async_write_response(Handler h) override { http::async_write(stream_, *res_, std::move(h)); }
  void async_read_some(net::mutable_buffer b, Handler h) override {
    stream_.async_read_some(b, std::move(h));
  }

  Stream stream_;
};

class PlainSession final : public StreamSession<beast::tcp_stream> {
 public:
  using StreamSession::StreamSession;

 protected:
  void start() override { do_read(); }
};

// HTTPS only: a client that does not complete a TLS handshake (e.g. one
// speaking plain HTTP) is disconnected without a response.
class TlsSession final : public StreamSession<beast::ssl_stream<beast::tcp_stream>> {
 public:
  using StreamSession::StreamSession;

 protected:
  void start() override {
    tcp().expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(svc_.options().read_timeout_s)));
    stream_.async_handshake(net::ssl::stream_base::server,
                            [self = self(), this](beast::error_code ec) {
                              if (ec) {
                                spdlog::debug("TLS handshake failed: {}", ec.message());
                                return close();
                              }
                              do_read();
                            });
  }
};

}  // namespace

// ---------------------------------------------------------------------------

Status ServiceCore::start() {
  FLIGHT_CHECK(!running_, "service already started");
  FLIGHT_RETURN_IF_ERROR(options_.validate());
  if (!options_.token.empty()) {
    tokens_ = TokenTable::single_admin(options_.token);
  } else {
    FLIGHT_ASSIGN_OR_RETURN(tokens_, TokenTable::load(options_.token_file));
  }
  if (!options_.tls_cert.empty()) {
    ssl_ = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
    beast::error_code ec;
    ssl_->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                          net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                          net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use,
                      ec);
    if (!ec) ssl_->use_certificate_chain_file(options_.tls_cert, ec);
    if (ec) {
      return invalid_argument("service: TLS certificate '" + options_.tls_cert +
                              "': " + ec.message());
    }
    ssl_->use_private_key_file(options_.tls_key, net::ssl::context::pem, ec);
    if (ec) {
      return invalid_argument("service: TLS key '" + options_.tls_key + "': " + ec.message());
    }
  }
  ioc_ = std::make_unique<net::io_context>(static_cast<int>(options_.threads));
  beast::error_code ec;
  auto address = net::ip::make_address(options_.host, ec);
  if (ec) return invalid_argument("service: host '" + options_.host + "' is not an IP address");
  tcp::endpoint ep(address, static_cast<unsigned short>(options_.port));
  acceptor_ = std::make_unique<tcp::acceptor>(net::make_strand(*ioc_));
  acceptor_->open(ep.protocol(), ec);
  if (!ec) acceptor_->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_->bind(ep, ec);
  if (!ec) acceptor_->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return unavailable("service: cannot listen on " + options_.host + ":" +
                       std::to_string(options_.port) + ": " + ec.message());
  }
  port_ = acceptor_->local_endpoint().port();
  // Bound before electing: a replica that cannot listen never takes the lead.
  FLIGHT_ASSIGN_OR_RETURN(auto backend, make_state_backend(options_.state, options_.state_prefix));
  if (backend->durable()) {
    // Replicas may share this state: serve only while leading.
    election_ = std::move(backend);
    holder_ = random_hex(16);
    elect();
  } else {
    FLIGHT_RETURN_IF_ERROR(promote());
  }
  do_accept();
  sweep_timer_ = std::make_unique<net::steady_timer>(net::make_strand(*ioc_));
  schedule_sweep();
  running_ = true;
  for (size_t i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { ioc_->run(); });
  if (election_) {
    elector_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(elector_mu_);
      while (!elector_stop_) {
        // A leader renews at a third of its TTL; a standby looks more often,
        // so that a lead handed over cleanly is taken at once.
        const double interval =
            leader_.load() ? options_.leader_ttl_s / 3 : std::min(0.25, options_.leader_ttl_s / 3);
        elector_cv_.wait_for(lock, std::chrono::duration<double>(interval),
                             [this] { return elector_stop_; });
        if (elector_stop_ || lost_lead_) break;
        lock.unlock();
        elect();
        lock.lock();
      }
    });
  }
  spdlog::info("flight service on {}:{} ({}, state {}, {}, {} threads, {} tokens)", options_.host,
               port_, ssl_ ? "TLS" : "plain HTTP",
               election_ ? election_->describe() : std::string("memory"), role(), options_.threads,
               tokens_.size());
  return Status::ok();
}

Status ServiceCore::promote() {
  FLIGHT_ASSIGN_OR_RETURN(auto backend, make_state_backend(options_.state, options_.state_prefix));
  if (!holder_.empty()) backend->fence(holder_);
  StateLimits limits;
  limits.lease_s = options_.lease_s;
  limits.max_attempts = options_.max_attempts;
  limits.max_queue_per_endpoint = options_.max_queue;
  limits.result_ttl_s = options_.result_ttl_s;
  auto state = std::make_unique<ServiceState>(limits, std::move(backend));
  FLIGHT_RETURN_IF_ERROR(state->load());
  state_ = std::move(state);
  leader_.store(true, std::memory_order_release);
  return Status::ok();
}

void ServiceCore::elect() {
  auto held = election_->hold_leadership(holder_, options_.leader_ttl_s);
  const double now =
      std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (leader_.load()) {
    if (held.is_ok() && *held) {
      last_renewal_ = now;
      return;
    }
    if (!held.is_ok() && now - last_renewal_ < options_.leader_ttl_s) {
      spdlog::warn("service replica {}: cannot renew the lead ({}); retrying", holder_,
                   held.status().to_string());
      return;
    }
    // Someone else may lead now: serving on would fork the state.
    lost_lead_ = true;
    leader_.store(false, std::memory_order_release);
    spdlog::error(
        "service replica {}: lost the lead ({}); no longer serving (restart it to "
        "rejoin as a standby)",
        holder_, held.is_ok() ? "another replica leads" : held.status().to_string());
    return;
  }
  if (!held.is_ok()) {
    spdlog::warn("service replica {}: election failed: {}", holder_, held.status().to_string());
    return;
  }
  if (!*held) return;  // a standby
  last_renewal_ = now;
  Status st = promote();
  if (!st.is_ok()) {
    spdlog::error("service replica {}: took the lead but cannot load the state: {}", holder_,
                  st.to_string());
    (void)election_->drop_leadership(holder_);
    return;
  }
  spdlog::info("service replica {} leads (state {})", holder_, election_->describe());
}

void ServiceCore::do_accept() {
  acceptor_->async_accept(
      net::make_strand(*ioc_), [this](beast::error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted) return;
        if (!ec) {
          beast::error_code ignored;
          socket.set_option(tcp::no_delay(true), ignored);
          if (ssl_) {
            std::make_shared<TlsSession>(std::move(socket), *this, *ssl_)->run();
          } else {
            std::make_shared<PlainSession>(std::move(socket), *this)->run();
          }
        } else {
          spdlog::warn("accept failed: {}", ec.message());
        }
        do_accept();
      });
}

void ServiceCore::schedule_sweep() {
  sweep_timer_->expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(options_.sweep_interval_s)));
  sweep_timer_->async_wait([this](beast::error_code ec) {
    if (ec) return;
    try {
      if (leader()) state_->sweep(wall_seconds());
    } catch (const std::exception& e) {
      spdlog::error("sweep failed: {}", e.what());
    }
    schedule_sweep();
  });
}

void ServiceCore::stop() {
  if (!running_) return;
  running_ = false;
  if (elector_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(elector_mu_);
      elector_stop_ = true;
    }
    elector_cv_.notify_all();
    elector_.join();
  }
  ioc_->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  // A clean stop hands the lead over at once instead of after its TTL.
  if (election_ && leader_.load()) (void)election_->drop_leadership(holder_);
  // Waiters hold executors of ioc_; drop them before it goes.
  if (state_) state_->clear_waiters();
  sweep_timer_.reset();
  acceptor_.reset();
  ioc_.reset();  // destroys the sessions
}

Service::Service(ServiceOptions options)
    : impl_(std::make_unique<ServiceCore>(std::move(options))) {}
Service::~Service() = default;
Status Service::start() { return impl_->start(); }
int Service::port() const { return impl_->port(); }
std::string Service::url() const {
  return std::string(impl_->tls() ? "https://" : "http://") + impl_->options().host + ":" +
         std::to_string(impl_->port());
}
void Service::stop() { impl_->stop(); }
std::string Service::role() const { return impl_->role(); }

}  // namespace flight::faas
