#include "flight/faas/state_backend.h"

#include <hiredis/hiredis.h>

#include <atomic>

#include "flight/base/logging.h"
#include "flight/base/redis_url.h"
#include "flight/base/registry.h"
#include "flight/base/strings.h"

namespace flight::faas {

StateBackend::~StateBackend() = default;

namespace {

class MemoryBackend final : public StateBackend {
 public:
  Status put_tasks(const std::vector<std::pair<std::string, std::string>>&) override {
    return Status::ok();
  }
  Status erase_tasks(const std::vector<std::string>&) override { return Status::ok(); }
  Status put_endpoint(const std::string&, const std::string&) override { return Status::ok(); }
  Status erase_endpoint(const std::string&) override { return Status::ok(); }
  Status put_idempotency(const std::string&, const std::string&) override { return Status::ok(); }
  Status erase_idempotency(const std::vector<std::string>&) override { return Status::ok(); }
  StatusOr<Snapshot> load() override { return Snapshot{}; }
  std::string describe() const override { return "memory"; }
  bool durable() const override { return false; }
  StatusOr<bool> hold_leadership(const std::string&, double) override { return true; }
  Status drop_leadership(const std::string&) override { return Status::ok(); }
  void fence(const std::string&) override {}
  bool fenced_out() const override { return false; }
};

// Synchronous hiredis; reconnects once per call when the connection broke.
class RedisBackend final : public StateBackend {
 public:
  RedisBackend(std::string spec, std::string host, int port, int db, std::string password,
               std::string prefix)
      : spec_(std::move(spec)),
        host_(std::move(host)),
        port_(port),
        db_(db),
        password_(std::move(password)),
        prefix_(std::move(prefix)) {}
  ~RedisBackend() override {
    if (ctx_) redisFree(ctx_);
  }

  Status connect() {
    if (ctx_) {
      redisFree(ctx_);
      ctx_ = nullptr;
    }
    timeval tv{5, 0};
    ctx_ = redisConnectWithTimeout(host_.c_str(), port_, tv);
    if (!ctx_ || ctx_->err) {
      std::string why = ctx_ ? ctx_->errstr : "out of memory";
      if (ctx_) redisFree(ctx_);
      ctx_ = nullptr;
      return unavailable("state backend " + spec_ + ": cannot connect: " + why);
    }
    redisSetTimeout(ctx_, tv);
    if (!password_.empty()) {
      std::vector<std::string> cmd = {"AUTH", password_};
      FLIGHT_RETURN_IF_ERROR(run_once({cmd}).status());
    }
    if (db_ != 0) {
      std::vector<std::string> cmd = {"SELECT", std::to_string(db_)};
      FLIGHT_RETURN_IF_ERROR(run_once({cmd}).status());
    }
    return Status::ok();
  }

  Status put_tasks(const std::vector<std::pair<std::string, std::string>>& docs) override {
    if (docs.empty()) return Status::ok();
    std::vector<std::string> cmd = {"HSET", prefix_ + "tasks"};
    for (const auto& [id, doc] : docs) {
      cmd.push_back(id);
      cmd.push_back(doc);
    }
    return run({cmd});
  }
  Status erase_tasks(const std::vector<std::string>& ids) override {
    return erase_fields(prefix_ + "tasks", ids);
  }
  Status put_endpoint(const std::string& id, const std::string& doc) override {
    return run({{"HSET", prefix_ + "endpoints", id, doc}});
  }
  Status erase_endpoint(const std::string& id) override {
    return erase_fields(prefix_ + "endpoints", {id});
  }
  Status put_idempotency(const std::string& key, const std::string& doc) override {
    return run({{"HSET", prefix_ + "idempotency", key, doc}});
  }
  Status erase_idempotency(const std::vector<std::string>& keys) override {
    return erase_fields(prefix_ + "idempotency", keys);
  }

  StatusOr<Snapshot> load() override {
    Snapshot snap;
    FLIGHT_ASSIGN_OR_RETURN(auto tasks, hgetall(prefix_ + "tasks"));
    for (auto& kv : tasks) snap.tasks.push_back(std::move(kv.second));
    FLIGHT_ASSIGN_OR_RETURN(auto eps, hgetall(prefix_ + "endpoints"));
    for (auto& kv : eps) snap.endpoints.push_back(std::move(kv.second));
    FLIGHT_ASSIGN_OR_RETURN(snap.idempotency, hgetall(prefix_ + "idempotency"));
    return snap;
  }

  std::string describe() const override { return spec_; }
  bool durable() const override { return true; }

  StatusOr<bool> hold_leadership(const std::string& holder, double ttl_s) override {
    // Renew if ours, take it if free; atomic in Redis.
    static const char* kScript =
        "local v = redis.call('GET', KEYS[1]) "
        "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
        "if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end "
        "return 0";
    const std::string ms = std::to_string(std::max<int64_t>(1, static_cast<int64_t>(ttl_s * 1000)));
    FLIGHT_ASSIGN_OR_RETURN(auto replies,
                            run_with_retry({{"EVAL", kScript, "1", leader_key(), holder, ms}}));
    const redisReply* r = replies.front().get();
    return r->type == REDIS_REPLY_INTEGER && r->integer == 1;
  }

  Status drop_leadership(const std::string& holder) override {
    static const char* kScript =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
        "return 0";
    return run_with_retry({{"EVAL", kScript, "1", leader_key(), holder}}).status();
  }

  void fence(const std::string& holder) override { fence_holder_ = holder; }
  bool fenced_out() const override { return fenced_out_.load(); }

 private:
  using Command = std::vector<std::string>;

  std::string leader_key() const { return prefix_ + "leader"; }

  // All `cmds` as one script that first checks the leader key: atomic, and
  // refused ("FENCED") when another replica leads. Commands are flattened as
  // (argc, argv...) after the holder.
  Command fenced(const std::vector<Command>& cmds) const {
    static const char* kScript =
        "if redis.call('GET', KEYS[1]) ~= ARGV[1] then "
        "  return redis.error_reply('FENCED another service replica leads') end "
        "local i = 2 "
        "while i <= #ARGV do "
        "  local n = tonumber(ARGV[i]) "
        "  redis.call(unpack(ARGV, i + 1, i + n)) "
        "  i = i + n + 1 "
        "end "
        "return 1";
    Command out = {"EVAL", kScript, "1", leader_key(), fence_holder_};
    for (const auto& c : cmds) {
      out.push_back(std::to_string(c.size()));
      out.insert(out.end(), c.begin(), c.end());
    }
    return out;
  }

  // Splits HSET/HDEL with many fields: Lua's unpack() has a stack limit.
  static std::vector<Command> chunked(const Command& cmd, size_t per) {
    const size_t head = 2;  // command, key
    if (cmd.size() <= head + per) return {cmd};
    std::vector<Command> out;
    for (size_t i = head; i < cmd.size(); i += per) {
      Command c(cmd.begin(), cmd.begin() + head);
      c.insert(c.end(), cmd.begin() + i, cmd.begin() + std::min(cmd.size(), i + per));
      out.push_back(std::move(c));
    }
    return out;
  }

  Status erase_fields(const std::string& key, const std::vector<std::string>& fields) {
    if (fields.empty()) return Status::ok();
    Command cmd = {"HDEL", key};
    cmd.insert(cmd.end(), fields.begin(), fields.end());
    return run({cmd});
  }

  StatusOr<std::vector<std::pair<std::string, std::string>>> hgetall(const std::string& key) {
    FLIGHT_ASSIGN_OR_RETURN(auto replies, run_with_retry({{"HGETALL", key}}));
    std::vector<std::pair<std::string, std::string>> out;
    redisReply* r = replies.front().get();
    if (r->type != REDIS_REPLY_ARRAY)
      return data_loss("state backend: HGETALL " + key + ": not an array");
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
      out.emplace_back(std::string(r->element[i]->str, r->element[i]->len),
                       std::string(r->element[i + 1]->str, r->element[i + 1]->len));
    }
    return out;
  }

  struct ReplyDeleter {
    void operator()(redisReply* r) const { freeReplyObject(r); }
  };
  using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

  // Writes: fenced once fence() was called.
  Status run(const std::vector<Command>& cmds) {
    if (fence_holder_.empty()) return run_with_retry(cmds).status();
    std::vector<Command> parts;
    for (const auto& c : cmds) {
      // HSET fields come in pairs; HDEL's singly: 2000 arguments either way.
      for (auto& p : chunked(c, 2000)) parts.push_back(std::move(p));
    }
    return run_with_retry({fenced(parts)}).status();
  }

  StatusOr<std::vector<Reply>> run_with_retry(const std::vector<Command>& cmds) {
    auto first = run_once(cmds);
    if (first.is_ok() || first.status().code() != StatusCode::kUnavailable || fenced_out_) {
      return first;
    }
    FLIGHT_RETURN_IF_ERROR(connect());
    return run_once(cmds);
  }

  // Pipelines the commands; any error reply is an error.
  StatusOr<std::vector<Reply>> run_once(const std::vector<Command>& cmds) {
    if (!ctx_) return unavailable("state backend " + spec_ + ": not connected");
    for (const auto& cmd : cmds) {
      std::vector<const char*> argv;
      std::vector<size_t> lens;
      for (const auto& a : cmd) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      if (redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
          REDIS_OK) {
        return unavailable("state backend " + spec_ + ": " + ctx_->errstr);
      }
    }
    std::vector<Reply> replies;
    for (size_t i = 0; i < cmds.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
        std::string why = ctx_->errstr;
        redisFree(ctx_);
        ctx_ = nullptr;
        return unavailable("state backend " + spec_ + ": " + why);
      }
      Reply r(static_cast<redisReply*>(raw));
      if (r->type == REDIS_REPLY_ERROR) {
        std::string e(r->str, r->len);
        if (e.find("FENCED") != std::string::npos) {
          fenced_out_ = true;
          return unavailable("state backend " + spec_ + ": this replica no longer leads: " + e);
        }
        return internal_error("state backend " + spec_ + ": " + cmds[i][0] + ": " +
                              std::string(r->str, r->len));
      }
      replies.push_back(std::move(r));
    }
    return replies;
  }

  std::string spec_, host_;
  int port_, db_;
  std::string password_;
  std::string prefix_;
  std::string fence_holder_;
  std::atomic<bool> fenced_out_{false};
  redisContext* ctx_ = nullptr;
};

using BackendRegistry = Registry<StateBackend, const std::string&, const std::string&>;

BackendRegistry& backends() {
  static BackendRegistry* r = [] {
    auto* reg = new BackendRegistry("state backend");
    reg->add("memory",
             [](const std::string&, const std::string&) -> StatusOr<std::unique_ptr<StateBackend>> {
               return std::unique_ptr<StateBackend>(std::make_unique<MemoryBackend>());
             });
    reg->add("redis",
             [](const std::string& spec,
                const std::string& prefix) -> StatusOr<std::unique_ptr<StateBackend>> {
               FLIGHT_ASSIGN_OR_RETURN(RedisUrl url, parse_redis_url(spec));
               auto b = std::make_unique<RedisBackend>(redact_redis_url(spec), url.host, url.port,
                                                       url.db, url.password, prefix);
               FLIGHT_RETURN_IF_ERROR(b->connect());
               return std::unique_ptr<StateBackend>(std::move(b));
             });
    return reg;
  }();
  return *r;
}

}  // namespace

std::vector<std::string> state_backend_names() { return backends().names(); }

StatusOr<std::unique_ptr<StateBackend>> make_state_backend(const std::string& spec,
                                                           const std::string& key_prefix) {
  std::string scheme = spec;
  auto pos = spec.find("://");
  if (pos != std::string::npos) scheme = spec.substr(0, pos);
  if (scheme == "memory" && spec != "memory") {
    return invalid_argument("state '" + spec + "': use 'memory' or 'redis://host:port'");
  }
  if (scheme != "memory" && pos == std::string::npos) {
    return invalid_argument("state '" + spec + "': expected 'memory' or 'redis://host:port[/db]'");
  }
  auto made = backends().create(scheme, spec, key_prefix);
  if (!made.is_ok()) return made.status().with_context("--state");
  return made;
}

}  // namespace flight::faas
