// `flight bench transport`: the data plane against its physical limits, each
// baseline measured in the same run (DESIGN.md, "Benchmarks").
//
//   codec_encode   ParamSet -> bytes          vs a copy of the tensor bytes (the
//                                             faster of memcpy and streaming stores)
//   codec_decode   bytes -> ParamSet (checksum verified, zero-copy)
//                                             vs a read-only pass over the bytes
//                                             (the faster of one stream and four;
//                                             the copy as an extra column)
//   tcp_put_get    put in a producer process, get in this one
//                                             vs a raw loopback socket pull of the same bytes
//   redis_put_get  connector put + get        vs pipelined raw RESP on one socket,
//                                             chunked like the connector, into
//                                             preallocated memory (hiredis's
//                                             SET + GET as an extra column)
//   file_put_get   connector put + get        (no baseline)
//
// Values are GB/s (1e9 bytes/s) over the object size, from the median of the
// repetitions; ratio = value / baseline_value.
#include <hiredis/hiredis.h>
#include <immintrin.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "flight/base/ids.h"
#include "flight/base/process.h"
#include "flight/base/redis_server.h"
#include "flight/base/strings.h"
#include "flight/base/time.h"
#include "flight/bench/record.h"
#include "flight/bench/registry.h"
#include "flight/bench/sample_params.h"
#include "transport/buffer.h"
#include "transport/codec.h"
#include "transport/registry.h"

namespace flight::bench {
namespace {

using transport::Buffer;
using transport::Bytes;
using transport::ByteView;
using transport::Connector;

struct Args {
  std::string sizes = "1KB,1MB,64MB,256MB";
  std::string cases = "codec_encode,codec_decode,tcp_put_get,redis_put_get,file_put_get";
  bool quick = false;
  std::string redis;      // redis://host:port; empty = start a private redis-server
  double budget_s = 1.0;  // rough time per measurement
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double gbps(uint64_t bytes, double seconds) { return seconds > 0 ? bytes / seconds / 1e9 : 0; }

// Repetitions for one measurement: enough for a stable median, bounded by a
// byte budget so that 256 MiB cases stay short.
int reps_for(uint64_t size, double budget_s, double est_gbps) {
  double per = std::max(1e-7, size / (est_gbps * 1e9));
  int n = static_cast<int>(budget_s / per);
  return std::clamp(n, 3, 2000);
}

BenchRecord record(const std::string& name, uint64_t size, double value) {
  BenchRecord r;
  r.bench = "transport";
  r.case_name = name;
  r.params = {{"size", size}};
  r.value = value;
  r.unit = "GB/s";
  return r;
}

void fill(uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i += 4096) p[i] = static_cast<uint8_t>(i / 4096);
  if (n) std::memset(p, 'x', std::min<size_t>(n, 64));
}

// Pre-touched memory of the kind the connectors use (huge-page backed when large).
std::shared_ptr<Buffer> touched(uint64_t n, int value) {
  auto b = Buffer::allocate(n);
  if (!b.is_ok()) throw std::runtime_error(b.status().to_string());
  std::memset((*b)->data(), value, n);
  return std::move(*b);
}

// A copy with non-temporal (streaming) stores: no read-for-ownership of the
// destination, as the codec's large encodes do.
__attribute__((target("avx2"))) void stream_copy_avx2(uint8_t* d, const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n && (reinterpret_cast<uintptr_t>(d + i) & 31) != 0) {
    d[i] = s[i];
    ++i;
  }
  for (; i + 32 <= n; i += 32) {
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
  }
  for (; i < n; ++i) d[i] = s[i];
  _mm_sfence();
}

// The codec's physical limit: the faster of glibc's memcpy and a streaming-
// store copy of the same bytes from where they live (the tensors' own memory
// for encode, the received buffer for decode) into pre-touched memory.
double memcpy_gbps(const std::vector<std::pair<const void*, size_t>>& pieces, int reps) {
  uint64_t n = 0;
  for (const auto& p : pieces) n += p.second;
  auto dst = touched(n, 2);
  static const bool avx2 = __builtin_cpu_supports("avx2");
  double best = 0;
  for (bool stream : {false, true}) {
    if (stream && !avx2) continue;
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
      Stopwatch sw;
      uint8_t* d = dst->data();
      for (const auto& p : pieces) {
        if (stream) {
          stream_copy_avx2(d, static_cast<const uint8_t*>(p.first), p.second);
        } else {
          std::memcpy(d, p.first, p.second);
        }
        d += p.second;
      }
      asm volatile("" ::: "memory");
      t.push_back(sw.seconds());
    }
    best = std::max(best, gbps(n, median(t)));
  }
  return best;
}

// A read-only streaming pass over the bytes (XOR of 32-byte words, four
// independent accumulators): what any decoder that looks at every byte once
// must at least cost.
__attribute__((target("avx2"))) uint64_t xor_pass_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    a0 = _mm256_xor_si256(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_xor_si256(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_xor_si256(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_xor_si256(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), a);
  uint64_t x = lanes[0] ^ lanes[1] ^ lanes[2] ^ lanes[3];
  for (; i < n; ++i) x ^= p[i];
  return x;
}

// Four quarters of [p, p + 3 * part + last) XORed side by side.
__attribute__((target("avx2"))) uint64_t xor_pass4(const uint8_t* p, size_t part, size_t last) {
  const uint8_t* q[4] = {p, p + part, p + 2 * part, p + 3 * part};
  __m256i a[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                  _mm256_setzero_si256()};
  size_t i = 0;
  for (; i + 32 <= part; i += 32) {
    for (int k = 0; k < 4; ++k) {
      a[k] = _mm256_xor_si256(a[k], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[k] + i)));
    }
  }
  __m256i x = _mm256_xor_si256(_mm256_xor_si256(a[0], a[1]), _mm256_xor_si256(a[2], a[3]));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), x);
  uint64_t r = lanes[0] ^ lanes[1] ^ lanes[2] ^ lanes[3];
  for (int k = 0; k < 3; ++k) {
    for (size_t j = i; j < part; ++j) r ^= q[k][j];
  }
  for (size_t j = i; j < last; ++j) r ^= q[3][j];
  return r;
}

uint64_t xor_pass(const uint8_t* p, size_t n) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return xor_pass_avx2(p, n);
  uint64_t x = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    x ^= v;
  }
  for (; i < n; ++i) x ^= p[i];
  return x;
}

// The faster of one sequential stream and four (the buffer's quarters read
// side by side, as the CRC32C kernel reads its parts: from memory, more
// streams in flight get more of the bandwidth).
double read_pass_gbps(const uint8_t* p, size_t n, int reps) {
  double best = 0;
  uint64_t sink = 0;
  static const bool avx2 = __builtin_cpu_supports("avx2");
  for (int streams : {1, 4}) {
    if (streams == 4 && !avx2) continue;
    const size_t part = n / streams;
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
      Stopwatch sw;
      if (streams == 1) {
        sink ^= xor_pass(p, n);
      } else {
        sink ^= xor_pass4(p, part, n - 3 * part);
      }
      asm volatile("" : : "r"(sink) : "memory");
      t.push_back(sw.seconds());
    }
    best = std::max(best, gbps(n, median(t)));
  }
  return best;
}

// Medians of put, get and put + get over `reps` rounds; the caller times each
// put and get (its put may run in another process).
struct PutGetTimes {
  std::vector<double> put, get, total;
  void add(double put_s, double get_s) {
    put.push_back(put_s);
    get.push_back(get_s);
    total.push_back(put_s + get_s);
  }
  nlohmann::json extra(int reps) const {
    return {{"reps", reps}, {"put_s", median(put)}, {"get_s", median(get)}};
  }
};

// Times `reps` puts of `src` and gets back through `conn` in this process;
// every get is checked for its size and released before the next put.
PutGetTimes time_put_get(transport::Connector& conn, const Buffer& src, int reps,
                         const char* what) {
  PutGetTimes t;
  for (int i = 0; i < reps; ++i) {
    Stopwatch sw;
    auto k = conn.put(ByteView(src));
    double put_s = sw.seconds();
    if (!k.is_ok()) throw std::runtime_error(std::string(what) + " put: " + k.status().to_string());
    Stopwatch sw2;
    auto v = conn.get(*k);
    double get_s = sw2.seconds();
    if (!v.is_ok() || !v->has_value() || (**v)->size() != src.size()) {
      throw std::runtime_error(std::string(what) + " get failed: " + v.status().to_string());
    }
    v = std::optional<Bytes>();  // back to the pool before the next round
    (void)conn.evict(*k);
    t.add(put_s, get_s);
  }
  return t;
}

void bench_codec(uint64_t size, const Args& a, bool encode_case, bool decode_case) {
  ParamSet params = sample_params(size, 1);
  uint64_t n = params.nbytes();
  int reps = reps_for(n, a.budget_s, 5);
  Bytes bytes = *transport::encode(params);
  if (encode_case) {
    std::vector<std::pair<const void*, size_t>> tensors;
    for (const auto& e : params) tensors.emplace_back(e.tensor.data_ptr(), e.tensor.nbytes());
    double base = memcpy_gbps(tensors, reps);
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
      Stopwatch sw;
      auto b = transport::encode(params);
      t.push_back(sw.seconds());
      if (!b.is_ok()) throw std::runtime_error(b.status().to_string());
    }
    BenchRecord r = record("codec_encode", size, gbps(n, median(t)));
    r.baseline = "memcpy";
    r.baseline_value = base;
    r.extra = {{"tensor_bytes", n}, {"encoded_bytes", bytes->size()}, {"reps", reps}};
    emit_bench(r);
  }
  if (decode_case) {
    const double read_base = read_pass_gbps(bytes->data(), bytes->size(), reps);
    const double copy_base = memcpy_gbps({{bytes->data(), bytes->size()}}, reps);
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
      Stopwatch sw;
      auto p = transport::decode(bytes);
      double s = sw.seconds();
      if (!p.is_ok()) throw std::runtime_error(p.status().to_string());
      t.push_back(s);
    }
    // Both rates over the encoded bytes, which the decoder reads in full.
    const double value = gbps(bytes->size(), median(t));
    BenchRecord r = record("codec_decode", size, value);
    // Decode reads n bytes and writes none (zero-copy): its limit is a
    // read-only pass, not memcpy (which also writes n). memcpy stays as a
    // second reference column.
    r.baseline = "read_pass";
    r.baseline_value = read_base;
    r.extra = {{"encoded_bytes", bytes->size()},
               {"reps", reps},
               {"verified", "crc32c over all bytes"},
               {"memcpy_gbps", copy_base},
               {"memcpy_ratio", copy_base > 0 ? value / copy_base : 0.0}};
    emit_bench(r);
  }
}

// The peer process of the tcp case: this binary's `transport-peer`, driven
// one line at a time over its stdin/stdout.
class Peer {
 public:
  explicit Peer(std::vector<std::string> args) {
    ProcessOptions o;
    o.argv = std::move(args);
    o.argv.insert(o.argv.begin(), self_executable());
    o.in = Redirect::pipe();
    o.out = Redirect::pipe();
    auto p = Process::spawn(std::move(o));
    if (!p.is_ok()) throw std::runtime_error(p.status().to_string());
    process_ = std::move(*p);
  }
  void tell(const std::string& line) {
    Status st = process_->write_line(line);
    if (!st.is_ok()) throw std::runtime_error(st.to_string());
  }
  std::string ask(const std::string& line) {
    tell(line);
    auto reply = process_->read_line(std::chrono::minutes(5));
    if (!reply.is_ok()) throw std::runtime_error("helper process: " + reply.status().to_string());
    return *reply;
  }

 private:
  std::unique_ptr<Process> process_;
};

void bench_tcp(const std::vector<uint64_t>& sizes, const Args& a) {
  Peer peer({"transport-peer", "--mode", "bench", "--connector", R"({"kind":"tcp"})"});
  int raw_port = std::stoi(peer.ask("raw"));
  int raw = connect_loopback(raw_port);
  if (raw < 0) throw std::runtime_error("cannot reach the helper's raw socket");
  auto conn = transport::make_connector({{"kind", "tcp"}});
  if (!conn.is_ok()) throw std::runtime_error(conn.status().to_string());
  for (uint64_t size : sizes) {
    int reps = reps_for(size, a.budget_s, 1.5);
    // Baseline: request n bytes, receive them into a pre-touched buffer.
    auto dst = touched(size, 1);
    std::vector<double> base;
    for (int i = 0; i < reps; ++i) {
      Stopwatch sw;
      uint64_t n = size;
      if (::send(raw, &n, 8, 0) != 8) throw std::runtime_error("raw send failed");
      size_t got = 0;
      while (got < size) {
        ssize_t r = ::recv(raw, dst->data() + got, size - got, 0);
        if (r <= 0) throw std::runtime_error("raw recv failed");
        got += static_cast<size_t>(r);
      }
      base.push_back(sw.seconds());
    }
    dst.reset();  // back to the pool for our gets
    PutGetTimes t;
    for (int i = 0; i < reps; ++i) {
      std::string line = peer.ask("put " + std::to_string(size));
      auto sp = line.find(' ');
      if (sp == std::string::npos) throw std::runtime_error("helper: " + line);
      std::string key = line.substr(0, sp);
      double put_s = std::stod(line.substr(sp + 1));
      Stopwatch sw;
      auto v = (*conn)->get(key);
      double get_s = sw.seconds();
      if (!v.is_ok() || !v->has_value() || (**v)->size() != size) {
        throw std::runtime_error("tcp get failed: " + v.status().to_string());
      }
      v = std::optional<Bytes>();  // release before the next get (the pool reuses it)
      peer.ask("evict " + key);
      t.add(put_s, get_s);
    }
    BenchRecord r = record("tcp_put_get", size, gbps(size, median(t.total)));
    r.baseline = "raw_loopback_socket";
    r.baseline_value = gbps(size, median(base));
    r.extra = t.extra(reps);
    r.extra["processes"] = 2;
    emit_bench(r);
  }
  ::close(raw);
  peer.tell("quit");
}

// The strongest hand-written Redis client for the same job: one socket, every
// chunk's SET in one writev straight from the source buffer, chunk GETs
// pipelined with the connector's window (all at once is slower: redis then
// copies the whole object into its reply buffers before the client drains
// them) and each bulk reply received straight into preallocated memory. Same
// chunk size as the connector; no meta record or header (what the connector
// adds for self-description is part of what the ratio measures).
class RawResp {
 public:
  explicit RawResp(int port) : fd_(connect_loopback(port)) {
    if (fd_ < 0)
      throw std::runtime_error("raw RESP: cannot connect to port " + std::to_string(port));
  }
  ~RawResp() { ::close(fd_); }
  RawResp(const RawResp&) = delete;
  RawResp& operator=(const RawResp&) = delete;

  void set_chunks(const std::string& key, const uint8_t* src, uint64_t size, uint64_t chunk) {
    std::vector<std::string> heads;
    std::vector<iovec> iov;
    const uint64_t count = (size + chunk - 1) / chunk;
    heads.reserve(count);
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t off = i * chunk, len = std::min(chunk, size - off);
      const std::string k = key + ":" + std::to_string(i);
      heads.push_back("*3\r\n$3\r\nSET\r\n$" + std::to_string(k.size()) + "\r\n" + k + "\r\n$" +
                      std::to_string(len) + "\r\n");
      iov.push_back({heads.back().data(), heads.back().size()});
      iov.push_back({const_cast<uint8_t*>(src + off), len});
      iov.push_back({const_cast<char*>("\r\n"), 2});
    }
    send_all(iov);
    for (uint64_t i = 0; i < count; ++i) {
      if (line() != "+OK") throw std::runtime_error("raw RESP: SET failed");
    }
  }

  // Keeps `window` GETs in flight, topping up before each reply is read, as
  // the connector does: the server then buffers at most `window` chunks of
  // reply instead of the whole object.
  void get_chunks(const std::string& key, uint8_t* dst, uint64_t size, uint64_t chunk,
                  uint64_t window) {
    const uint64_t count = (size + chunk - 1) / chunk;
    uint64_t sent = 0;
    std::string cmds;
    for (uint64_t done = 0; done < count; ++done) {
      cmds.clear();
      for (; sent < count && sent - done < window; ++sent) {
        const std::string k = key + ":" + std::to_string(sent);
        cmds += "*2\r\n$3\r\nGET\r\n$" + std::to_string(k.size()) + "\r\n" + k + "\r\n";
      }
      if (!cmds.empty()) send_all({{cmds.data(), cmds.size()}});
      const uint64_t off = done * chunk, len = std::min(chunk, size - off);
      std::string head = line();
      if (head != "$" + std::to_string(len)) throw std::runtime_error("raw RESP: GET got " + head);
      read_exact(dst + off, len);
      char crlf[2];
      read_exact(reinterpret_cast<uint8_t*>(crlf), 2);
    }
  }

  void del_chunks(const std::string& key, uint64_t size, uint64_t chunk) {
    const uint64_t count = (size + chunk - 1) / chunk;
    std::string cmds;
    for (uint64_t i = 0; i < count; ++i) {
      const std::string k = key + ":" + std::to_string(i);
      cmds += "*2\r\n$3\r\nDEL\r\n$" + std::to_string(k.size()) + "\r\n" + k + "\r\n";
    }
    send_all({{cmds.data(), cmds.size()}});
    for (uint64_t i = 0; i < count; ++i) line();
  }

 private:
  void send_all(std::vector<iovec> iov) {
    size_t first = 0;
    while (first < iov.size()) {
      const int n_iov = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
      ssize_t n = ::writev(fd_, iov.data() + first, n_iov);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error("raw RESP: write failed");
      }
      auto left = static_cast<size_t>(n);
      while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
      if (first < iov.size()) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }
  }
  void fill() {
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
    char tmp[16384];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) throw std::runtime_error("raw RESP: connection closed");
    buf_.append(tmp, static_cast<size_t>(n));
  }
  std::string line() {
    while (true) {
      auto nl = buf_.find("\r\n", pos_);
      if (nl != std::string::npos) {
        std::string l = buf_.substr(pos_, nl - pos_);
        pos_ = nl + 2;
        return l;
      }
      fill();
    }
  }
  void read_exact(uint8_t* dst, uint64_t n) {
    const uint64_t have = std::min<uint64_t>(n, buf_.size() - pos_);
    std::memcpy(dst, buf_.data() + pos_, have);
    pos_ += have;
    uint64_t got = have;
    while (got < n) {  // the rest straight from the socket into dst
      ssize_t r = ::recv(fd_, dst + got, n - got, 0);
      if (r <= 0) throw std::runtime_error("raw RESP: connection closed");
      got += static_cast<uint64_t>(r);
    }
  }

  int fd_;
  std::string buf_;
  size_t pos_ = 0;
};

void bench_redis(const std::vector<uint64_t>& sizes, const Args& a) {
  std::unique_ptr<RedisServer> own;
  std::string url = a.redis;
  if (url.empty()) {
    auto started = RedisServer::start();
    if (!started.is_ok()) throw std::runtime_error(started.status().to_string());
    own = std::move(*started);
    url = own->url();
  }
  auto conn = transport::make_connector({{"kind", "redis"}, {"url", url}});
  if (!conn.is_ok()) throw std::runtime_error(conn.status().to_string());
  nlohmann::json cfg = (*conn)->config();
  std::string host = cfg["host"];
  int port = cfg["port"];
  redisContext* raw = redisConnect(host.c_str(), port);
  if (raw == nullptr || raw->err) throw std::runtime_error("cannot connect to " + url);
  RawResp resp(port);
  const uint64_t chunk = cfg["chunk_bytes"].get<uint64_t>();
  const uint64_t window = cfg["window"].get<uint64_t>();
  for (uint64_t size : sizes) {
    int reps = reps_for(size, a.budget_s, 0.8);
    auto src = *Buffer::allocate(size);
    fill(src->data(), size);
    std::string key = "flight-bench-raw-" + random_hex(8);
    // The baseline: pipelined raw RESP on the same buffers, chunked and
    // windowed like the connector, received into preallocated (pre-touched)
    // memory. Baseline, connector and hiredis repetitions interleave (baseline
    // and connector swapping order each time) so that load from elsewhere on
    // the machine hits all three alike.
    auto dst = touched(size, 3);
    PutGetTimes base, t;
    std::vector<double> hiredis_t;
    auto connector_rep = [&] {
      PutGetTimes one = time_put_get(**conn, *src, 1, "redis");
      t.add(one.put[0], one.get[0]);
    };
    for (int i = 0; i < reps; ++i) {
      if (i % 2 == 1) connector_rep();  // alternate who goes first
      Stopwatch sw;
      resp.set_chunks(key, src->data(), size, chunk);
      double put_s = sw.seconds();
      Stopwatch sw2;
      resp.get_chunks(key, dst->data(), size, chunk, window);
      base.add(put_s, sw2.seconds());
      resp.del_chunks(key, size, chunk);
      if (i == 0 && std::memcmp(dst->data(), src->data(), size) != 0) {
        throw std::runtime_error("raw RESP baseline read back different bytes");
      }
      if (i % 2 == 0) connector_rep();
      // For reference: hiredis's convenience path (formats the value into a
      // command buffer, copies the reply into fresh memory), one SET + one GET.
      Stopwatch sw3;
      auto* r1 = static_cast<redisReply*>(
          redisCommand(raw, "SET %b %b", key.data(), key.size(), src->data(), size));
      auto* r2 = static_cast<redisReply*>(redisCommand(raw, "GET %b", key.data(), key.size()));
      double s = sw3.seconds();
      if (!r1 || !r2 || r2->type != REDIS_REPLY_STRING || r2->len != size) {
        throw std::runtime_error("raw hiredis SET/GET failed");
      }
      freeReplyObject(r1);
      freeReplyObject(r2);
      freeReplyObject(redisCommand(raw, "DEL %b", key.data(), key.size()));
      hiredis_t.push_back(s);
    }
    BenchRecord r = record("redis_put_get", size, gbps(size, median(t.total)));
    r.baseline = "raw_resp_pipelined";
    r.baseline_value = gbps(size, median(base.total));
    r.extra = t.extra(reps);
    r.extra["baseline_put_s"] = median(base.put);
    r.extra["baseline_get_s"] = median(base.get);
    r.extra["chunk_bytes"] = cfg["chunk_bytes"];
    r.extra["window"] = window;
    r.extra["hiredis_set_get_gbps"] = gbps(size, median(hiredis_t));
    r.extra["target_ratio"] = 0.9;
    emit_bench(r);
  }
  redisFree(raw);
}

void bench_file(const std::vector<uint64_t>& sizes, const Args& a) {
  std::string dir =
      (std::filesystem::temp_directory_path() / ("flight-bench-file-" + random_hex(8))).string();
  auto conn = transport::make_connector({{"kind", "file"}, {"dir", dir}});
  if (!conn.is_ok()) throw std::runtime_error(conn.status().to_string());
  for (uint64_t size : sizes) {
    int reps = reps_for(size, a.budget_s, 1.0);
    auto src = *Buffer::allocate(size);
    fill(src->data(), size);
    PutGetTimes t = time_put_get(**conn, *src, reps, "file");
    BenchRecord r = record("file_put_get", size, gbps(size, median(t.total)));
    r.extra = t.extra(reps);
    r.extra["dir"] = dir;
    emit_bench(r);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

int run(const Args& a) {
  std::vector<uint64_t> sizes;
  for (const auto& s : split(a.sizes, ',')) {
    uint64_t n = 0;
    if (!parse_bytes(trim(s), &n) || n == 0) return usage_error("--sizes: bad size '" + s + "'");
    if (a.quick && n > (64ull << 20)) continue;
    sizes.push_back(n);
  }
  std::vector<std::string> cases = split(a.cases, ',');
  const std::vector<std::string> known = {"codec_encode", "codec_decode", "tcp_put_get",
                                          "redis_put_get", "file_put_get"};
  for (auto& c : cases) {
    c = trim(c);
    if (std::find(known.begin(), known.end(), c) == known.end()) {
      return usage_error("--cases: unknown case '" + c + "'" + did_you_mean(c, known));
    }
  }
  auto want = [&](const char* c) {
    return std::find(cases.begin(), cases.end(), c) != cases.end();
  };
  try {
    if (want("codec_encode") || want("codec_decode")) {
      for (uint64_t size : sizes) bench_codec(size, a, want("codec_encode"), want("codec_decode"));
    }
    if (want("tcp_put_get")) bench_tcp(sizes, a);
    if (want("redis_put_get")) bench_redis(sizes, a);
    if (want("file_put_get")) bench_file(sizes, a);
  } catch (const std::exception& e) {
    return fail(std::string("bench transport: ") + e.what());
  }
  return kExitOk;
}

FLIGHT_BENCH(
    bench_transport,
    {"transport", "Codec, tcp, redis and file connectors against memcpy / raw socket / raw hiredis",
     [](CLI::App* app) {
       auto a = std::make_shared<Args>();
       app->add_option("--sizes", a->sizes, "comma-separated object sizes")->capture_default_str();
       app->add_option("--cases", a->cases, "comma-separated cases")->capture_default_str();
       app->add_flag("--quick", a->quick, "only sizes <= 64 MiB");
       app->add_option("--redis", a->redis,
                       "redis://host:port to use (default: start a private redis-server)");
       app->add_option("--budget", a->budget_s, "rough seconds per measurement")
           ->capture_default_str();
       return [a] { return run(*a); };
     }});

}  // namespace
}  // namespace flight::bench
