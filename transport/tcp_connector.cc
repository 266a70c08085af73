#include "transport/tcp_connector.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "flight/base/ids.h"
#include "flight/base/logging.h"
#include "flight/base/options.h"
#include "transport/object_table.h"

namespace flight::transport {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

constexpr uint32_t kRequestMagic = 0x51544c46;   // "FLTQ"
constexpr uint32_t kResponseMagic = 0x52544c46;  // "FLTR"
constexpr size_t kFrameHeader = 16;
constexpr uint32_t kMaxKeyBytes = 4096;
constexpr uint64_t kMaxErrorBytes = 64 * 1024;

enum Op : uint8_t { kGet = 1, kExists = 2, kEvict = 3 };
enum Reply : uint8_t { kOk = 0, kNotFound = 1, kError = 2 };

template <typename T>
void put_le(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}
template <typename T>
T get_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// ---------------------------------------------------------------- server

// Serves the objects of this process. A strand (the socket's executor) owns each
// session's state; handlers never throw (error_code overloads only).
class TcpServer {
 public:
  struct Config {
    std::string host;
    int port = 0;
    std::string advertise_host;
    double timeout_s = 30;
    double idle_timeout_s = 300;
    int io_threads = 2;
    int max_connections = 1024;
  };

  static StatusOr<std::shared_ptr<TcpServer>> start(const Config& config) {
    std::shared_ptr<TcpServer> s(new TcpServer(config));
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(config.host, ec);
    if (ec) {
      // A host name: resolve it to the first address.
      tcp::resolver resolver(s->io_);
      auto results = resolver.resolve(config.host, std::to_string(config.port), ec);
      if (ec || results.empty()) {
        return invalid_argument("tcp connector: cannot resolve host '" + config.host +
                                "': " + ec.message());
      }
      addr = results.begin()->endpoint().address();
    }
    tcp::endpoint ep(addr, static_cast<uint16_t>(config.port));
    s->acceptor_.open(ep.protocol(), ec);
    if (!ec) s->acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) s->acceptor_.bind(ep, ec);
    if (!ec) s->acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return unavailable("tcp connector: cannot listen on " + config.host + ":" +
                         std::to_string(config.port) + ": " + ec.message());
    }
    s->port_ = s->acceptor_.local_endpoint().port();
    s->accept();
    for (int i = 0; i < config.io_threads; ++i) {
      s->threads_.emplace_back([io = &s->io_] { io->run(); });
    }
    return s;
  }

  ~TcpServer() {
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  int port() const { return port_; }
  const Config& config() const { return config_; }
  ObjectTable& table() { return table_; }

 private:
  class Session : public std::enable_shared_from_this<Session> {
   public:
    // `server` outlives every session: its destructor joins the I/O threads
    // before the io_context (which owns pending handlers) is destroyed.
    Session(tcp::socket socket, TcpServer* server)
        : socket_(std::move(socket)), timer_(socket_.get_executor()), server_(server) {}
    ~Session() { --server_->connections_; }

    tcp::socket::executor_type executor() { return socket_.get_executor(); }

    void start() {
      boost::system::error_code ec;
      socket_.set_option(tcp::no_delay(true), ec);
      read_header();
    }

   private:
    // Ends the session: the pending timer wait is the last owner, so cancel it.
    void stop() {
      boost::system::error_code ignored;
      timer_.cancel();
      socket_.close(ignored);
    }

    void arm(double seconds) {
      uint64_t gen = ++gen_;
      timer_.expires_after(std::chrono::duration_cast<asio::steady_timer::duration>(
          std::chrono::duration<double>(seconds)));
      timer_.async_wait([self = shared_from_this(), gen](const boost::system::error_code& ec) {
        if (!ec && gen == self->gen_) {
          boost::system::error_code ignored;
          self->socket_.close(ignored);
        }
      });
    }
    void read_header() {
      arm(server_->config_.idle_timeout_s);
      asio::async_read(socket_, asio::buffer(header_),
                       [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                         if (ec) return self->stop();
                         self->on_header();
                       });
    }

    void on_header() {
      if (get_le<uint32_t>(header_.data()) != kRequestMagic) return stop();  // not our protocol
      uint32_t key_len = get_le<uint32_t>(header_.data() + 8);
      if (key_len == 0 || key_len > kMaxKeyBytes) return stop();
      op_ = header_[4];
      key_.resize(key_len);
      arm(server_->config_.timeout_s);  // mid-frame: the short timeout applies
      asio::async_read(socket_, asio::buffer(key_),
                       [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                         if (ec) return self->stop();
                         self->on_key();
                       });
    }

    void on_key() {
      ObjectTable& table = server_->table_;
      uint8_t status = kOk;
      payload_.reset();
      message_.clear();
      switch (op_) {
        case kGet: {
          auto v = table.get(key_);
          if (v) {
            payload_ = std::move(*v);
          } else {
            status = kNotFound;
          }
          break;
        }
        case kExists:
          status = table.exists(key_) ? kOk : kNotFound;
          break;
        case kEvict:
          table.erase(key_);
          break;
        default:
          status = kError;
          message_ = "unknown op " + std::to_string(op_);
      }
      uint64_t len = payload_ ? payload_->size() : message_.size();
      response_.fill(0);
      put_le<uint32_t>(response_.data(), kResponseMagic);
      response_[4] = status;
      put_le<uint64_t>(response_.data() + 8, len);
      std::array<asio::const_buffer, 2> bufs = {
          asio::buffer(response_), payload_ ? asio::const_buffer(payload_->data(), payload_->size())
                                            : asio::const_buffer(message_.data(), message_.size())};
      // The whole write must finish within timeout_s plus time for the bytes at
      // a pessimistic 50 MB/s, so a stalled reader cannot pin the buffer forever.
      double budget = server_->config_.timeout_s + static_cast<double>(len) / 50e6;
      arm(budget);
      asio::async_write(socket_, bufs,
                        [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                          self->payload_.reset();
                          if (ec) return self->stop();
                          self->read_header();
                        });
    }

    tcp::socket socket_;
    asio::steady_timer timer_;
    TcpServer* server_;
    uint64_t gen_ = 0;
    std::array<uint8_t, kFrameHeader> header_{};
    std::array<uint8_t, kFrameHeader> response_{};
    uint8_t op_ = 0;
    std::string key_;
    Bytes payload_;
    std::string message_;
  };

  explicit TcpServer(Config config)
      : config_(std::move(config)), work_(asio::make_work_guard(io_)), acceptor_(io_) {}

  void accept() {
    acceptor_.async_accept(asio::make_strand(io_),
                           [this](const boost::system::error_code& ec, tcp::socket socket) {
                             TcpServer* self = this;
                             if (ec == asio::error::operation_aborted) return;
                             if (!ec) {
                               if (self->connections_.load() >= self->config_.max_connections) {
                                 boost::system::error_code ignored;
                                 socket.close(ignored);  // over the bound: refuse rather than queue
                               } else {
                                 ++self->connections_;
                                 auto session = std::make_shared<Session>(std::move(socket), self);
                                 asio::post(session->executor(), [session] { session->start(); });
                               }
                             }
                             self->accept();
                           });
  }

  // Declaration order matters: io_ (and the sessions its pending handlers own)
  // is destroyed before the table and the counter they use.
  Config config_;
  std::atomic<int> connections_{0};
  ObjectTable table_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  int port_ = 0;
};

// Servers of this process: shared by every connector with the same bind
// address (one port per node), and findable by advertised address for the
// local shortcut. Held weakly: a server lives while a connector uses it.
struct ServerRegistry {
  std::mutex mu;
  std::map<std::string, std::weak_ptr<TcpServer>> by_bind;     // "host|port" as configured
  std::map<std::string, std::weak_ptr<TcpServer>> by_address;  // "advertise_host:port"
};

ServerRegistry& servers() {
  static auto* r = new ServerRegistry();
  return *r;
}

std::shared_ptr<TcpServer> local_server(const std::string& host, int port) {
  auto& r = servers();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.by_address.find(host + ":" + std::to_string(port));
  return it == r.by_address.end() ? nullptr : it->second.lock();
}

// ---------------------------------------------------------------- client

class ClientSocket {
 public:
  explicit ClientSocket(int fd) : fd_(fd) {}
  ~ClientSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  ClientSocket(const ClientSocket&) = delete;
  ClientSocket& operator=(const ClientSocket&) = delete;
  int fd() const { return fd_; }
  bool reused = false;

 private:
  int fd_;
};

class TcpConnector : public Connector {
 public:
  explicit TcpConnector(TcpConnectorOptions o) : options_(std::move(o)) {}

  std::string kind() const override { return "tcp"; }

  StatusOr<std::string> put(ByteView value, const PutHints& hints) override {
    FLIGHT_ASSIGN_OR_RETURN(auto copy, Buffer::copy_of(value.data, value.size));
    return put_shared(std::move(copy), hints);
  }

  StatusOr<std::string> put_shared(Bytes value, const PutHints& hints) override {
    if (!value) return invalid_argument("tcp connector: put_shared of a null buffer");
    FLIGHT_ASSIGN_OR_RETURN(std::shared_ptr<TcpServer> server, ensure_server());
    std::string id = random_hex(24);
    std::string key = server->config().advertise_host + ":" + std::to_string(server->port()) + "/" +
                      std::to_string(value->size()) + "/" + id;
    server->table().put(id, std::move(value), hints.ttl_s);
    return key;
  }

  StatusOr<std::optional<Bytes>> get(const std::string& key) override {
    FLIGHT_ASSIGN_OR_RETURN(TcpKey k, parse_tcp_key(key));
    if (auto local = shortcut(k)) return local->table().get(k.id);
    if (k.size > options_.max_object_bytes) {
      return invalid_argument("tcp connector: key " + key + " names a " + std::to_string(k.size) +
                              "-byte object, above max_object_bytes");
    }
    std::optional<Bytes> out;
    FLIGHT_RETURN_IF_ERROR(request(k, kGet, [&](int fd, uint8_t status, uint64_t len) -> Status {
      if (status == kNotFound) return Status::ok();
      if (len != k.size) {
        return data_loss("tcp connector: " + peer(k) + " sent " + std::to_string(len) +
                         " bytes for key " + key + ", which names " + std::to_string(k.size));
      }
      FLIGHT_ASSIGN_OR_RETURN(auto buf, Buffer::allocate(len));
      FLIGHT_RETURN_IF_ERROR(recv_all(fd, buf->data(), len, k));
      out = Bytes(std::move(buf));
      return Status::ok();
    }));
    return out;
  }

  StatusOr<bool> exists(const std::string& key) override {
    FLIGHT_ASSIGN_OR_RETURN(TcpKey k, parse_tcp_key(key));
    if (auto local = shortcut(k)) return local->table().exists(k.id);
    bool found = false;
    FLIGHT_RETURN_IF_ERROR(request(k, kExists, [&](int, uint8_t status, uint64_t) {
      found = status == kOk;
      return Status::ok();
    }));
    return found;
  }

  Status evict(const std::string& key) override {
    FLIGHT_ASSIGN_OR_RETURN(TcpKey k, parse_tcp_key(key));
    if (auto local = shortcut(k)) {
      local->table().erase(k.id);
      return Status::ok();
    }
    // Evicting from a producer that is gone is vacuously done.
    Status st = request(k, kEvict, [](int, uint8_t, uint64_t) { return Status::ok(); });
    if (st.code() == StatusCode::kUnavailable) return Status::ok();
    return st;
  }

  nlohmann::json config() const override { return options_.to_json(); }

 private:
  std::shared_ptr<TcpServer> shortcut(const TcpKey& k) const {
    if (!options_.local_shortcut) return nullptr;
    return local_server(k.host, k.port);
  }

  StatusOr<std::shared_ptr<TcpServer>> ensure_server() {
    std::lock_guard<std::mutex> lock(server_mu_);
    if (server_) return server_;
    auto& r = servers();
    std::lock_guard<std::mutex> rlock(r.mu);
    std::string bind = options_.host + "|" + std::to_string(options_.port);
    if (auto s = r.by_bind[bind].lock()) {
      server_ = s;
      return server_;
    }
    TcpServer::Config c;
    c.host = options_.host;
    c.port = options_.port;
    c.advertise_host = options_.advertise_host;
    if (c.advertise_host.empty()) {
      c.advertise_host = options_.host;
      if (c.advertise_host == "0.0.0.0" || c.advertise_host == "::") {
        char name[256] = {0};
        if (::gethostname(name, sizeof name - 1) == 0) c.advertise_host = name;
      }
    }
    c.timeout_s = options_.timeout_s;
    c.idle_timeout_s = options_.idle_timeout_s;
    c.io_threads = options_.io_threads;
    c.max_connections = options_.max_connections;
    FLIGHT_ASSIGN_OR_RETURN(server_, TcpServer::start(c));
    r.by_bind[bind] = server_;
    r.by_address[c.advertise_host + ":" + std::to_string(server_->port())] = server_;
    spdlog::debug("tcp connector serving on {}:{}", c.advertise_host, server_->port());
    return server_;
  }

  static std::string peer(const TcpKey& k) { return k.host + ":" + std::to_string(k.port); }

  Status io_error(const TcpKey& k, const char* what, int err) const {
    if (err == EAGAIN || err == EWOULDBLOCK) {
      return deadline_exceeded("tcp connector: " + peer(k) + ": no progress for " +
                               std::to_string(options_.timeout_s) + " s while " + what);
    }
    return unavailable("tcp connector: " + peer(k) + ": " + what + ": " + std::strerror(err));
  }

  Status send_all(int fd, const uint8_t* p, size_t n, const TcpKey& k) const {
    while (n > 0) {
      ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return io_error(k, "sending", errno);
      p += r;
      n -= static_cast<size_t>(r);
    }
    return Status::ok();
  }

  Status recv_all(int fd, uint8_t* p, size_t n, const TcpKey& k) const {
    while (n > 0) {
      ssize_t r = ::recv(fd, p, n, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) return unavailable("tcp connector: " + peer(k) + " closed the connection");
      if (r < 0) return io_error(k, "receiving", errno);
      p += r;
      n -= static_cast<size_t>(r);
    }
    return Status::ok();
  }

  StatusOr<std::unique_ptr<ClientSocket>> connect(const TcpKey& k) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(k.host.c_str(), std::to_string(k.port).c_str(), &hints, &res);
    if (rc != 0) {
      return unavailable("tcp connector: cannot resolve " + k.host + ": " + gai_strerror(rc));
    }
    std::string last_error = "no address";
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      int fd =
          ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
      if (fd < 0) continue;
      auto sock = std::make_unique<ClientSocket>(fd);
      int r = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
      if (r != 0 && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int waited = ::poll(&p, 1, static_cast<int>(options_.timeout_s * 1000));
        int err = 0;
        socklen_t len = sizeof err;
        if (waited == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
          r = 0;
        } else {
          errno = waited == 0 ? ETIMEDOUT : err;
        }
      }
      if (r != 0) {
        last_error = std::strerror(errno);
        continue;
      }
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      timeval tv;
      tv.tv_sec = static_cast<time_t>(options_.timeout_s);
      tv.tv_usec = static_cast<suseconds_t>((options_.timeout_s - tv.tv_sec) * 1e6);
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      ::freeaddrinfo(res);
      return sock;
    }
    ::freeaddrinfo(res);
    return unavailable("tcp connector: cannot connect to " + peer(k) + ": " + last_error +
                       " (has the producer exited?)");
  }

  StatusOr<std::unique_ptr<ClientSocket>> acquire(const TcpKey& k) {
    {
      std::lock_guard<std::mutex> lock(pool_mu_);
      auto& idle = pool_[peer(k)];
      if (!idle.empty()) {
        auto s = std::move(idle.back());
        idle.pop_back();
        s->reused = true;
        return s;
      }
    }
    return connect(k);
  }

  void release(const TcpKey& k, std::unique_ptr<ClientSocket> s) {
    std::lock_guard<std::mutex> lock(pool_mu_);
    auto& idle = pool_[peer(k)];
    if (idle.size() < static_cast<size_t>(options_.pool_size)) idle.push_back(std::move(s));
  }

  // Sends one request and hands the response header to `on_reply`, which reads
  // any payload. A reused connection that fails before a reply arrives (the
  // server closed it while idle) is replaced and the request sent once more.
  template <typename OnReply>
  Status request(const TcpKey& k, uint8_t op, OnReply&& on_reply) {
    std::vector<uint8_t> frame(kFrameHeader + k.id.size(), 0);
    put_le<uint32_t>(frame.data(), kRequestMagic);
    frame[4] = op;
    put_le<uint32_t>(frame.data() + 8, static_cast<uint32_t>(k.id.size()));
    std::memcpy(frame.data() + kFrameHeader, k.id.data(), k.id.size());
    for (int attempt = 0;; ++attempt) {
      FLIGHT_ASSIGN_OR_RETURN(std::unique_ptr<ClientSocket> s, acquire(k));
      int fd = s->fd();
      Status st = send_all(fd, frame.data(), frame.size(), k);
      std::array<uint8_t, kFrameHeader> head{};
      if (st.is_ok()) st = recv_all(fd, head.data(), head.size(), k);
      if (!st.is_ok()) {
        if (s->reused && attempt == 0 && st.code() == StatusCode::kUnavailable) continue;
        return st;
      }
      if (get_le<uint32_t>(head.data()) != kResponseMagic) {
        return data_loss("tcp connector: " + peer(k) +
                         " is not a Flight tcp connector (bad reply magic)");
      }
      uint8_t status = head[4];
      uint64_t len = get_le<uint64_t>(head.data() + 8);
      if (status == kError) {
        if (len > kMaxErrorBytes)
          return data_loss("tcp connector: oversized error from " + peer(k));
        std::string msg(len, '\0');
        FLIGHT_RETURN_IF_ERROR(recv_all(fd, reinterpret_cast<uint8_t*>(msg.data()), len, k));
        release(k, std::move(s));
        return internal_error("tcp connector: " + peer(k) + " replied: " + msg);
      }
      if (status != kOk && status != kNotFound) {
        return data_loss("tcp connector: " + peer(k) + " sent unknown status " +
                         std::to_string(status));
      }
      if (status == kNotFound && len != 0) {
        return data_loss("tcp connector: " + peer(k) + " sent a payload with 'not found'");
      }
      if (op != kGet && len != 0) {
        return data_loss("tcp connector: " + peer(k) + " sent an unexpected payload");
      }
      FLIGHT_RETURN_IF_ERROR(on_reply(fd, status, len));
      release(k, std::move(s));
      return Status::ok();
    }
  }

  TcpConnectorOptions options_;
  std::mutex server_mu_;
  std::shared_ptr<TcpServer> server_;
  std::mutex pool_mu_;
  std::map<std::string, std::vector<std::unique_ptr<ClientSocket>>> pool_;
};

}  // namespace

StatusOr<TcpKey> parse_tcp_key(const std::string& key) {
  auto bad = [&](const char* why) {
    return invalid_argument("tcp connector: bad key '" + key + "' (" + why +
                            "; expected host:port/size/id)");
  };
  std::vector<std::string> parts;
  size_t start = 0;
  for (int i = 0; i < 2; ++i) {
    size_t slash = key.find('/', start);
    if (slash == std::string::npos) return bad("missing '/'");
    parts.push_back(key.substr(start, slash - start));
    start = slash + 1;
  }
  parts.push_back(key.substr(start));
  TcpKey k;
  size_t colon = parts[0].rfind(':');
  if (colon == std::string::npos || colon == 0) return bad("missing host:port");
  k.host = parts[0].substr(0, colon);
  if (k.host.size() > 2 && k.host.front() == '[' && k.host.back() == ']') {
    k.host = k.host.substr(1, k.host.size() - 2);
  }
  std::string port = parts[0].substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos) {
    return bad("bad port");
  }
  k.port = std::stoi(port);
  if (k.port <= 0 || k.port > 65535) return bad("port out of range");
  if (parts[1].empty() || parts[1].size() > 20 ||
      parts[1].find_first_not_of("0123456789") != std::string::npos) {
    return bad("bad size");
  }
  k.size = std::stoull(parts[1]);
  k.id = parts[2];
  if (k.id.empty() || k.id.size() > kMaxKeyBytes) return bad("bad id");
  return k;
}

Status TcpConnectorOptions::validate() const {
  const std::string what = "tcp connector: ";
  if (host.empty()) return invalid_argument(what + "'host' is empty");
  if (port < 0 || port > 65535) return invalid_argument(what + "'port' must be in 0..65535");
  if (!(timeout_s > 0)) return invalid_argument(what + "'timeout_s' must be > 0");
  if (!(idle_timeout_s > 0)) return invalid_argument(what + "'idle_timeout_s' must be > 0");
  if (io_threads < 1 || io_threads > 64)
    return invalid_argument(what + "'io_threads' must be in 1..64");
  if (max_connections < 1) return invalid_argument(what + "'max_connections' must be >= 1");
  if (pool_size < 0) return invalid_argument(what + "'pool_size' must be >= 0");
  if (max_object_bytes == 0) return invalid_argument(what + "'max_object_bytes' must be > 0");
  return Status::ok();
}

StatusOr<TcpConnectorOptions> TcpConnectorOptions::from_json(const nlohmann::json& j) {
  TcpConnectorOptions o;
  OptionReader r(j, "tcp connector");
  r.known({"kind"})
      .optional("host", &o.host)
      .optional("port", &o.port)
      .optional("advertise_host", &o.advertise_host)
      .optional("timeout_s", &o.timeout_s)
      .optional("idle_timeout_s", &o.idle_timeout_s)
      .optional("io_threads", &o.io_threads)
      .optional("max_connections", &o.max_connections)
      .optional("pool_size", &o.pool_size)
      .optional("local_shortcut", &o.local_shortcut)
      .bytes("max_object_bytes", &o.max_object_bytes);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

nlohmann::json TcpConnectorOptions::to_json() const {
  return {{"kind", "tcp"},
          {"host", host},
          {"port", port},
          {"advertise_host", advertise_host},
          {"timeout_s", timeout_s},
          {"idle_timeout_s", idle_timeout_s},
          {"io_threads", io_threads},
          {"max_connections", max_connections},
          {"pool_size", pool_size},
          {"local_shortcut", local_shortcut},
          {"max_object_bytes", max_object_bytes}};
}

StatusOr<std::unique_ptr<Connector>> make_tcp_connector(const TcpConnectorOptions& options) {
  FLIGHT_RETURN_IF_ERROR(options.validate());
  return std::unique_ptr<Connector>(new TcpConnector(options));
}

}  // namespace flight::transport
