#include "transport/redis_connector.h"

#include <hiredis/hiredis.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <vector>

#include "flight/base/ids.h"
#include "flight/base/options.h"
#include "flight/base/redis_url.h"
#include "flight/base/strings.h"

namespace flight::transport {
namespace {

// RESP encoding of one command whose arguments are all small strings.
std::string resp(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) {
    out += "$" + std::to_string(a.size()) + "\r\n";
    out += a;
    out += "\r\n";
  }
  return out;
}

struct Meta {
  uint64_t size = 0;
  uint64_t chunk = 0;
  uint64_t count = 0;
};

std::string format_meta(uint64_t size, uint64_t chunk, uint64_t count) {
  return "flight1 " + std::to_string(size) + " " + std::to_string(chunk) + " " +
         std::to_string(count);
}

// An object of at most chunk_bytes lives whole in its meta key: this fixed
// header ("flight2 " + 20-digit size + "\n") followed by the bytes. One SET
// writes it (atomic for readers) and one GET reads it straight into the
// destination.
constexpr size_t kMagicBytes = 8;
constexpr size_t kInlineHeaderBytes = kMagicBytes + 20 + 1;

std::string inline_header(uint64_t size) {
  char h[kInlineHeaderBytes + 1];
  std::snprintf(h, sizeof h, "flight2 %020llu\n", static_cast<unsigned long long>(size));
  return std::string(h, kInlineHeaderBytes);
}

// One connection. hiredis connects, authenticates and runs the small commands;
// the bulk paths speak RESP on the same socket themselves so that values are
// gathered from the caller's memory on put and received straight into the
// destination on get (hiredis would copy each value twice). Both sides consume
// exactly the replies they asked for, so the stream stays in step between them.
class Conn {
 public:
  Conn(redisContext* ctx, std::string where, double timeout_s)
      : ctx_(ctx), where_(std::move(where)), timeout_s_(timeout_s), rbuf_(64 * 1024) {}
  ~Conn() { redisFree(ctx_); }

  redisContext* ctx() { return ctx_; }
  const std::string& where() const { return where_; }
  bool reused = false;
  bool broken = false;     // do not return to the pool
  bool io_failed = false;  // the socket failed (a retry on a fresh connection may help)

  Status send(std::vector<iovec> iov) {
    size_t i = 0;
    while (i < iov.size() && iov[i].iov_len == 0) ++i;
    while (i < iov.size()) {
      msghdr m{};
      m.msg_iov = &iov[i];
      m.msg_iovlen = std::min<size_t>(iov.size() - i, IOV_MAX);
      ssize_t n = ::sendmsg(ctx_->fd, &m, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return io_error("sending", errno);
      }
      size_t left = static_cast<size_t>(n);
      while (left > 0) {
        if (left >= iov[i].iov_len) {
          left -= iov[i].iov_len;
          ++i;
        } else {
          iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
          iov[i].iov_len -= left;
          left = 0;
        }
      }
      while (i < iov.size() && iov[i].iov_len == 0) ++i;
    }
    return Status::ok();
  }

  Status send(const std::string& s) { return send({iovec{const_cast<char*>(s.data()), s.size()}}); }

  // Reads one reply header line ("$5", "+OK", ...) without its CRLF.
  Status read_line(std::string* line) {
    for (;;) {
      const char* begin = rbuf_.data() + head_;
      const char* nl = static_cast<const char*>(std::memchr(begin, '\n', tail_ - head_));
      if (nl != nullptr) {
        size_t len = static_cast<size_t>(nl - begin);
        if (len > 0 && begin[len - 1] == '\r') --len;
        line->assign(begin, len);
        head_ += static_cast<size_t>(nl - begin) + 1;
        return Status::ok();
      }
      FLIGHT_RETURN_IF_ERROR(fill());
    }
  }

  Status read_exact(uint8_t* dst, size_t n) {
    size_t have = std::min(n, tail_ - head_);
    std::memcpy(dst, rbuf_.data() + head_, have);
    head_ += have;
    dst += have;
    n -= have;
    while (n > 0) {
      ssize_t r = ::recv(ctx_->fd, dst, n, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return r == 0 ? closed() : io_error("receiving", errno);
      dst += r;
      n -= static_cast<size_t>(r);
    }
    return Status::ok();
  }

  Status expect_crlf() {
    uint8_t crlf[2];
    FLIGHT_RETURN_IF_ERROR(read_exact(crlf, 2));
    if (crlf[0] != '\r' || crlf[1] != '\n') return protocol("bulk reply not followed by CRLF");
    return Status::ok();
  }

  // Reads a bulk header: its length, or -1 for a null reply. Error replies
  // become a Status (the stream stays in step).
  StatusOr<int64_t> read_bulk_len() {
    std::string line;
    FLIGHT_RETURN_IF_ERROR(read_line(&line));
    if (line.empty()) return protocol("empty reply line");
    if (line[0] == '-') return server_error(line.substr(1));
    if (line[0] != '$') return protocol("expected a bulk reply, got '" + line + "'");
    char* end = nullptr;
    long long len = std::strtoll(line.c_str() + 1, &end, 10);
    if (*end != '\0' || len < -1) return protocol("bad bulk length '" + line + "'");
    return static_cast<int64_t>(len);
  }

  StatusOr<std::optional<std::string>> read_bulk_string(size_t max) {
    FLIGHT_ASSIGN_OR_RETURN(int64_t len, read_bulk_len());
    if (len < 0) return std::optional<std::string>();
    if (static_cast<uint64_t>(len) > max) {
      broken = true;
      return data_loss(where_ + ": unexpected " + std::to_string(len) + "-byte reply");
    }
    std::string s(static_cast<size_t>(len), '\0');
    FLIGHT_RETURN_IF_ERROR(read_exact(reinterpret_cast<uint8_t*>(s.data()), s.size()));
    FLIGHT_RETURN_IF_ERROR(expect_crlf());
    return std::optional<std::string>(std::move(s));
  }

  Status expect_ok() {
    std::string line;
    FLIGHT_RETURN_IF_ERROR(read_line(&line));
    if (!line.empty() && line[0] == '-') return server_error(line.substr(1));
    if (line != "+OK") return protocol("expected +OK, got '" + line + "'");
    return Status::ok();
  }

  StatusOr<int64_t> read_integer() {
    std::string line;
    FLIGHT_RETURN_IF_ERROR(read_line(&line));
    if (!line.empty() && line[0] == '-') return server_error(line.substr(1));
    if (line.empty() || line[0] != ':') return protocol("expected an integer, got '" + line + "'");
    return static_cast<int64_t>(std::strtoll(line.c_str() + 1, nullptr, 10));
  }

  // True when no unread bytes remain (checked after each operation).
  bool drained() const { return head_ == tail_; }

 private:
  Status fill() {
    if (head_ == tail_) {
      head_ = tail_ = 0;
    } else if (head_ > 0) {
      std::memmove(rbuf_.data(), rbuf_.data() + head_, tail_ - head_);
      tail_ -= head_;
      head_ = 0;
    }
    if (tail_ == rbuf_.size()) return protocol("reply line longer than 64 KiB");
    for (;;) {
      ssize_t n = ::recv(ctx_->fd, rbuf_.data() + tail_, rbuf_.size() - tail_, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return n == 0 ? closed() : io_error("receiving", errno);
      tail_ += static_cast<size_t>(n);
      return Status::ok();
    }
  }

  Status io_error(const char* what, int err) {
    broken = true;
    io_failed = true;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      return deadline_exceeded(where_ + ": no progress for " + std::to_string(timeout_s_) +
                               " s while " + what);
    }
    return unavailable(where_ + ": " + what + ": " + std::strerror(err));
  }
  Status closed() {
    broken = true;
    io_failed = true;
    return unavailable(where_ + ": connection closed by the server");
  }
  Status protocol(const std::string& m) {
    broken = true;
    return internal_error(where_ + ": protocol error: " + m);
  }
  Status server_error(const std::string& m) {
    broken = true;  // the rest of a pipeline may still be in flight
    if (starts_with(m, "OOM")) return resource_exhausted(where_ + ": " + m);
    if (starts_with(m, "NOAUTH") || starts_with(m, "WRONGPASS")) {
      return unauthenticated(where_ + ": " + m);
    }
    return internal_error(where_ + ": server replied: " + m);
  }

  redisContext* ctx_;
  std::string where_;
  double timeout_s_;
  std::vector<char> rbuf_;
  size_t head_ = 0;
  size_t tail_ = 0;
};

class RedisConnector : public Connector {
 public:
  explicit RedisConnector(RedisConnectorOptions o)
      : options_(std::move(o)),
        where_("redis at " + options_.host + ":" + std::to_string(options_.port)) {}

  std::string kind() const override { return "redis"; }

  StatusOr<std::string> put(ByteView value, const PutHints& hints) override {
    std::vector<std::string> keys = {random_hex(24)};
    FLIGHT_RETURN_IF_ERROR(with_conn([&](Conn& c) { return put_on(c, keys, {value}, hints); }));
    return keys[0];
  }

  StatusOr<std::vector<std::string>> put_batch(const std::vector<ByteView>& values,
                                               const PutHints& hints) override {
    std::vector<std::string> keys;
    for (size_t i = 0; i < values.size(); ++i) keys.push_back(random_hex(24));
    if (values.empty()) return keys;
    FLIGHT_RETURN_IF_ERROR(with_conn([&](Conn& c) { return put_on(c, keys, values, hints); }));
    return keys;
  }

  StatusOr<std::optional<Bytes>> get(const std::string& key) override {
    FLIGHT_RETURN_IF_ERROR(check_key(key));
    std::optional<Bytes> out;
    FLIGHT_RETURN_IF_ERROR(with_conn([&](Conn& c) -> Status {
      FLIGHT_ASSIGN_OR_RETURN(out, get_on(c, key));
      return Status::ok();
    }));
    return out;
  }

  StatusOr<std::vector<std::optional<Bytes>>> get_batch(
      const std::vector<std::string>& keys) override {
    for (const auto& k : keys) FLIGHT_RETURN_IF_ERROR(check_key(k));
    std::vector<std::optional<Bytes>> out;
    if (keys.empty()) return out;
    FLIGHT_RETURN_IF_ERROR(with_conn([&](Conn& c) -> Status {
      FLIGHT_ASSIGN_OR_RETURN(out, get_batch_on(c, keys));
      return Status::ok();
    }));
    return out;
  }

  StatusOr<bool> exists(const std::string& key) override {
    FLIGHT_RETURN_IF_ERROR(check_key(key));
    bool found = false;
    FLIGHT_RETURN_IF_ERROR(with_conn([&](Conn& c) -> Status {
      std::string meta_key = options_.prefix + key;
      auto* reply = static_cast<redisReply*>(
          redisCommand(c.ctx(), "EXISTS %b", meta_key.data(), meta_key.size()));
      if (reply == nullptr) return hiredis_error(c);
      Status st = Status::ok();
      if (reply->type == REDIS_REPLY_INTEGER) {
        found = reply->integer > 0;
      } else {
        c.broken = true;
        st = internal_error(where_ + ": EXISTS: unexpected reply");
      }
      freeReplyObject(reply);
      return st;
    }));
    return found;
  }

  Status evict(const std::string& key) override {
    FLIGHT_RETURN_IF_ERROR(check_key(key));
    return with_conn([&](Conn& c) -> Status {
      // The head of the meta key says whether chunk keys exist (an inline
      // object's bytes are not worth fetching to delete them).
      FLIGHT_RETURN_IF_ERROR(c.send(resp({"GETRANGE", options_.prefix + key, "0", "127"})));
      FLIGHT_ASSIGN_OR_RETURN(auto head, c.read_bulk_string(128));
      if (!head || head->empty()) return Status::ok();
      std::vector<std::string> args = {"DEL", options_.prefix + key};
      if (!starts_with(*head, "flight2 ")) {
        FLIGHT_ASSIGN_OR_RETURN(Meta m, parse_meta(*head, key));
        for (uint64_t i = 0; i < m.count; ++i) args.push_back(chunk_key(key, i));
      }
      std::vector<const char*> argv;
      std::vector<size_t> lens;
      for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      auto* reply = static_cast<redisReply*>(
          redisCommandArgv(c.ctx(), static_cast<int>(argv.size()), argv.data(), lens.data()));
      if (reply == nullptr) return hiredis_error(c);
      Status st = reply->type == REDIS_REPLY_INTEGER
                      ? Status::ok()
                      : internal_error(where_ + ": DEL: unexpected reply");
      if (!st.is_ok()) c.broken = true;
      freeReplyObject(reply);
      return st;
    });
  }

  nlohmann::json config() const override { return options_.to_json(); }

 private:
  Status check_key(const std::string& key) const {
    if (key.empty() || key.size() > 512) {
      return invalid_argument("redis connector: bad key '" + key + "'");
    }
    return Status::ok();
  }

  std::string chunk_key(const std::string& key, uint64_t i) const {
    return options_.prefix + key + ":" + std::to_string(i);
  }

  StatusOr<Meta> parse_meta(const std::string& text, const std::string& key) const {
    std::vector<std::string> f = split(text, ' ');
    Meta m;
    bool ok = f.size() == 4 && f[0] == "flight1" && parse_u64(f[1], &m.size) &&
              parse_u64(f[2], &m.chunk) && parse_u64(f[3], &m.count);
    if (ok) {
      ok = m.chunk > 0 && m.size <= options_.max_object_bytes &&
           m.count == (m.size + m.chunk - 1) / m.chunk;
    }
    if (!ok) {
      return data_loss(where_ + ": object '" + key + "' has a corrupt meta record '" + text + "'");
    }
    return m;
  }

  static bool parse_u64(const std::string& s, uint64_t* out) {
    if (s.empty() || s.size() > 20) return false;
    for (char ch : s) {
      if (ch < '0' || ch > '9') return false;
    }
    *out = std::strtoull(s.c_str(), nullptr, 10);
    return true;
  }

  std::string px_suffix(const PutHints& hints) const {
    if (!hints.ttl_s) return "";
    long long ms = std::max<long long>(1, std::llround(*hints.ttl_s * 1000.0));
    std::string v = std::to_string(ms);
    return "$2\r\nPX\r\n$" + std::to_string(v.size()) + "\r\n" + v + "\r\n";
  }

  // Pipelines every chunk of every chunked value, then each meta record or
  // inline object, in one write.
  Status put_on(Conn& c, const std::vector<std::string>& keys, const std::vector<ByteView>& values,
                const PutHints& hints) {
    std::string px = px_suffix(hints);
    std::string argc = hints.ttl_s ? "*5\r\n" : "*3\r\n";
    std::string tail = "\r\n" + px;
    std::deque<std::string> heads;  // stable storage for the iovecs
    std::vector<iovec> iov;
    size_t replies = 0;
    // SET key (prefix + data) [PX ms]; the prefix travels in the command head.
    auto add = [&](const std::string& key, const std::string& prefix, const void* data,
                   size_t len) {
      heads.push_back(argc + "$3\r\nSET\r\n$" + std::to_string(key.size()) + "\r\n" + key +
                      "\r\n$" + std::to_string(prefix.size() + len) + "\r\n" + prefix);
      iov.push_back({heads.back().data(), heads.back().size()});
      iov.push_back({const_cast<void*>(data), len});
      iov.push_back({tail.data(), tail.size()});
      ++replies;
    };
    uint64_t chunk = options_.chunk_bytes;
    std::vector<std::string> metas;
    for (size_t v = 0; v < values.size(); ++v) {
      uint64_t size = values[v].size;
      if (size <= chunk) {
        metas.push_back(inline_header(size));
        continue;
      }
      uint64_t count = (size + chunk - 1) / chunk;
      for (uint64_t i = 0; i < count; ++i) {
        uint64_t off = i * chunk;
        add(chunk_key(keys[v], i), "", values[v].data + off, std::min(chunk, size - off));
      }
      metas.push_back(format_meta(size, chunk, count));
    }
    // Metas last: a reader that sees a meta record sees all of its chunks.
    for (size_t v = 0; v < values.size(); ++v) {
      const std::string& key = options_.prefix + keys[v];
      if (values[v].size <= chunk) {
        add(key, metas[v], values[v].data, values[v].size);
      } else {
        add(key, "", metas[v].data(), metas[v].size());
      }
    }
    FLIGHT_RETURN_IF_ERROR(c.send(std::move(iov)));
    Status first = Status::ok();
    for (size_t i = 0; i < replies; ++i) {
      Status st = c.expect_ok();
      if (!st.is_ok() && first.is_ok()) first = st;
      if (c.io_failed) return st;
    }
    return first;
  }

  struct ChunkTask {
    std::string key;
    uint8_t* dst;
    uint64_t len;
  };

  // Receives chunk replies in order, keeping up to `window` GETs in flight.
  // False when a chunk was missing (the object expired or was evicted
  // meanwhile).
  StatusOr<bool> fetch_chunks(Conn& c, const std::vector<ChunkTask>& tasks) {
    size_t sent = 0;
    size_t window = static_cast<size_t>(options_.window);
    for (size_t done = 0; done < tasks.size(); ++done) {
      if (sent < tasks.size() && sent - done < window) {
        std::string cmds;
        while (sent < tasks.size() && sent - done < window)
          cmds += resp({"GET", tasks[sent++].key});
        FLIGHT_RETURN_IF_ERROR(c.send(cmds));
      }
      FLIGHT_ASSIGN_OR_RETURN(int64_t len, c.read_bulk_len());
      if (len < 0) {
        c.broken = true;  // the rest of the pipeline is not worth draining
        return false;
      }
      if (static_cast<uint64_t>(len) != tasks[done].len) {
        c.broken = true;
        return data_loss(where_ + ": chunk " + tasks[done].key + " has " + std::to_string(len) +
                         " bytes, its meta record says " + std::to_string(tasks[done].len));
      }
      FLIGHT_RETURN_IF_ERROR(c.read_exact(tasks[done].dst, tasks[done].len));
      FLIGHT_RETURN_IF_ERROR(c.expect_crlf());
    }
    return true;
  }

  void add_tasks(const std::string& key, const Meta& m, uint8_t* dst,
                 std::vector<ChunkTask>* tasks) const {
    for (uint64_t i = 0; i < m.count; ++i) {
      uint64_t off = i * m.chunk;
      tasks->push_back({chunk_key(key, i), dst + off, std::min(m.chunk, m.size - off)});
    }
  }

  // What one GET of a meta key found: nothing, a whole inline object, or the
  // layout of a chunked one.
  struct Found {
    bool present = false;
    std::optional<Bytes> whole;
    Meta meta;
  };

  // Reads the reply to GET <meta key>; an inline object goes straight from the
  // socket into a fresh buffer.
  StatusOr<Found> read_meta_reply(Conn& c, const std::string& key) {
    FLIGHT_ASSIGN_OR_RETURN(int64_t len, c.read_bulk_len());
    Found f;
    if (len < 0) return f;
    f.present = true;
    auto corrupt = [&](const std::string& what) {
      c.broken = true;  // the rest of the reply is not worth draining
      return data_loss(where_ + ": object '" + key + "' has a corrupt meta record (" + what + ")");
    };
    if (static_cast<uint64_t>(len) < kMagicBytes) return corrupt(std::to_string(len) + " bytes");
    char head[kInlineHeaderBytes];
    FLIGHT_RETURN_IF_ERROR(c.read_exact(reinterpret_cast<uint8_t*>(head), kMagicBytes));
    if (std::memcmp(head, "flight2 ", kMagicBytes) == 0) {
      if (static_cast<uint64_t>(len) < kInlineHeaderBytes) return corrupt("short inline header");
      FLIGHT_RETURN_IF_ERROR(c.read_exact(reinterpret_cast<uint8_t*>(head) + kMagicBytes,
                                          kInlineHeaderBytes - kMagicBytes));
      uint64_t size = 0;
      std::string digits(head + kMagicBytes, kInlineHeaderBytes - kMagicBytes - 1);
      if (head[kInlineHeaderBytes - 1] != '\n' || !parse_u64(digits, &size) ||
          size > options_.max_object_bytes ||
          size != static_cast<uint64_t>(len) - kInlineHeaderBytes) {
        return corrupt("inline header '" + std::string(head, kInlineHeaderBytes - 1) + "' for a " +
                       std::to_string(len) + "-byte value");
      }
      auto buf = Buffer::allocate(size);
      if (!buf.is_ok()) {
        c.broken = true;
        return buf.status();
      }
      FLIGHT_RETURN_IF_ERROR(c.read_exact((*buf)->data(), size));
      FLIGHT_RETURN_IF_ERROR(c.expect_crlf());
      f.whole = Bytes(std::move(*buf));
      return f;
    }
    if (len > 1024) return corrupt(std::to_string(len) + " bytes");
    std::string text(static_cast<size_t>(len), '\0');
    std::memcpy(text.data(), head, kMagicBytes);
    FLIGHT_RETURN_IF_ERROR(c.read_exact(reinterpret_cast<uint8_t*>(text.data()) + kMagicBytes,
                                        text.size() - kMagicBytes));
    FLIGHT_RETURN_IF_ERROR(c.expect_crlf());
    FLIGHT_ASSIGN_OR_RETURN(f.meta, parse_meta(text, key));
    return f;
  }

  // One command for an inline object; a chunked one (larger than chunk_bytes)
  // costs a round trip for its meta record before the chunk GETs.
  StatusOr<std::optional<Bytes>> get_on(Conn& c, const std::string& key) {
    FLIGHT_RETURN_IF_ERROR(c.send(resp({"GET", options_.prefix + key})));
    FLIGHT_ASSIGN_OR_RETURN(Found f, read_meta_reply(c, key));
    if (!f.present) return std::optional<Bytes>();
    if (f.whole) return std::move(f.whole);
    auto buf = Buffer::allocate(f.meta.size);
    if (!buf.is_ok()) return buf.status();
    std::vector<ChunkTask> tasks;
    add_tasks(key, f.meta, (*buf)->data(), &tasks);
    FLIGHT_ASSIGN_OR_RETURN(bool complete, fetch_chunks(c, tasks));
    if (!complete) return std::optional<Bytes>();
    return std::optional<Bytes>(Bytes(std::move(*buf)));
  }

  StatusOr<std::vector<std::optional<Bytes>>> get_batch_on(Conn& c,
                                                           const std::vector<std::string>& keys) {
    std::string cmds;
    for (const auto& k : keys) cmds += resp({"GET", options_.prefix + k});
    FLIGHT_RETURN_IF_ERROR(c.send(cmds));
    std::vector<Found> found;
    for (const auto& k : keys) {
      FLIGHT_ASSIGN_OR_RETURN(Found f, read_meta_reply(c, k));
      found.push_back(std::move(f));
    }
    std::vector<std::optional<Bytes>> out(keys.size());
    std::vector<std::shared_ptr<Buffer>> bufs(keys.size());
    std::vector<ChunkTask> tasks;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (!found[i].present) continue;
      if (found[i].whole) {
        out[i] = std::move(found[i].whole);
        continue;
      }
      FLIGHT_ASSIGN_OR_RETURN(bufs[i], Buffer::allocate(found[i].meta.size));
      add_tasks(keys[i], found[i].meta, bufs[i]->data(), &tasks);
    }
    FLIGHT_ASSIGN_OR_RETURN(bool complete, fetch_chunks(c, tasks));
    if (!complete) {
      // Some chunked object vanished while reading; fall back to one get per
      // chunked key so that each answer is exact.
      for (size_t i = 0; i < keys.size(); ++i) {
        if (!bufs[i]) continue;
        FLIGHT_ASSIGN_OR_RETURN(out[i], get(keys[i]));
      }
      return out;
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      if (bufs[i]) out[i] = Bytes(std::move(bufs[i]));
    }
    return out;
  }

  Status hiredis_error(Conn& c) {
    c.broken = true;
    c.io_failed = true;
    std::string err = c.ctx()->errstr;
    if (c.ctx()->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return deadline_exceeded(where_ + ": no reply within " + std::to_string(options_.timeout_s) +
                               " s");
    }
    return unavailable(where_ + ": " + err);
  }

  StatusOr<std::unique_ptr<Conn>> connect() {
    timeval tv;
    tv.tv_sec = static_cast<time_t>(options_.timeout_s);
    tv.tv_usec = static_cast<suseconds_t>((options_.timeout_s - tv.tv_sec) * 1e6);
    redisContext* ctx = redisConnectWithTimeout(options_.host.c_str(), options_.port, tv);
    if (ctx == nullptr) return unavailable("cannot connect to " + where_ + ": out of memory");
    if (ctx->err) {
      std::string err = ctx->errstr;
      redisFree(ctx);
      return unavailable("cannot connect to " + where_ + ": " + err +
                         " (is redis-server running there?)");
    }
    redisSetTimeout(ctx, tv);
    auto conn = std::make_unique<Conn>(ctx, where_, options_.timeout_s);
    auto run = [&](const std::vector<std::string>& args) -> Status {
      FLIGHT_RETURN_IF_ERROR(conn->send(resp(args)));
      return conn->expect_ok();
    };
    if (!options_.password.empty()) FLIGHT_RETURN_IF_ERROR(run({"AUTH", options_.password}));
    if (options_.db != 0) FLIGHT_RETURN_IF_ERROR(run({"SELECT", std::to_string(options_.db)}));
    return conn;
  }

  StatusOr<std::unique_ptr<Conn>> acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        c->reused = true;
        return c;
      }
    }
    return connect();
  }

  void release(std::unique_ptr<Conn> c) {
    if (c->broken || !c->drained()) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < static_cast<size_t>(options_.pool_size)) idle_.push_back(std::move(c));
  }

  // Runs `fn` on a pooled connection. A reused connection whose socket fails
  // (the server restarted, an idle timeout) is replaced and `fn` retried once:
  // every operation here is idempotent (puts write fresh keys).
  template <typename Fn>
  Status with_conn(Fn&& fn) {
    for (int attempt = 0;; ++attempt) {
      FLIGHT_ASSIGN_OR_RETURN(std::unique_ptr<Conn> c, acquire());
      Status st = fn(*c);
      bool retry = !st.is_ok() && c->io_failed && c->reused && attempt == 0;
      release(std::move(c));
      if (!retry) return st;
    }
  }

  RedisConnectorOptions options_;
  std::string where_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Conn>> idle_;
};

}  // namespace

Status RedisConnectorOptions::validate() const {
  const std::string what = "redis connector: ";
  if (host.empty()) return invalid_argument(what + "'host' is empty");
  if (port <= 0 || port > 65535) return invalid_argument(what + "'port' must be in 1..65535");
  if (db < 0) return invalid_argument(what + "'db' must be >= 0");
  if (chunk_bytes < 1024 || chunk_bytes > (512ull << 20)) {
    return invalid_argument(what + "'chunk_bytes' must be in 1 KiB..512 MiB");
  }
  if (window < 1 || window > 1024) return invalid_argument(what + "'window' must be in 1..1024");
  if (!(timeout_s > 0)) return invalid_argument(what + "'timeout_s' must be > 0");
  if (pool_size < 0) return invalid_argument(what + "'pool_size' must be >= 0");
  if (max_object_bytes == 0) return invalid_argument(what + "'max_object_bytes' must be > 0");
  return Status::ok();
}

StatusOr<RedisConnectorOptions> RedisConnectorOptions::from_json(const nlohmann::json& j) {
  RedisConnectorOptions o;
  OptionReader r(j, "redis connector");
  std::string url;
  r.known({"kind"}).optional("url", &url);
  if (!url.empty()) {
    // The URL sets host, port, db and password; explicit keys below override it.
    auto parsed = parse_redis_url(url);
    if (!parsed.is_ok()) return parsed.status().with_context("redis connector");
    o.host = parsed->host;
    o.port = parsed->port;
    o.db = parsed->db;
    o.password = parsed->password;
  }
  r.optional("host", &o.host)
      .optional("port", &o.port)
      .optional("db", &o.db)
      .optional("password", &o.password)
      .optional("prefix", &o.prefix)
      .bytes("chunk_bytes", &o.chunk_bytes)
      .optional("window", &o.window)
      .optional("timeout_s", &o.timeout_s)
      .optional("pool_size", &o.pool_size)
      .bytes("max_object_bytes", &o.max_object_bytes);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

nlohmann::json RedisConnectorOptions::to_json() const {
  nlohmann::json j = {{"kind", "redis"},        {"host", host},
                      {"port", port},           {"db", db},
                      {"prefix", prefix},       {"chunk_bytes", chunk_bytes},
                      {"window", window},       {"timeout_s", timeout_s},
                      {"pool_size", pool_size}, {"max_object_bytes", max_object_bytes}};
  if (!password.empty()) j["password"] = password;
  return j;
}

StatusOr<std::unique_ptr<Connector>> make_redis_connector(const RedisConnectorOptions& options) {
  FLIGHT_RETURN_IF_ERROR(options.validate());
  return std::unique_ptr<Connector>(new RedisConnector(options));
}

}  // namespace flight::transport
