#include "transport/file_connector.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "flight/base/ids.h"
#include "flight/base/options.h"

namespace flight::transport {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

// Keys are file names: only what this connector makes (and nothing that could
// climb out of the directory).
Status check_key(const std::string& key) {
  if (key.empty() || key.size() > 128)
    return invalid_argument("file connector: bad key '" + key + "'");
  for (char c : key) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_';
    if (!ok) return invalid_argument("file connector: bad key '" + key + "'");
  }
  return Status::ok();
}

class FileConnector : public Connector {
 public:
  explicit FileConnector(FileConnectorOptions options) : options_(std::move(options)) {}

  std::string kind() const override { return "file"; }

  StatusOr<std::string> put(ByteView value, const PutHints&) override {
    std::string key = random_hex(24);
    std::string path = path_of(key);
    std::string tmp = options_.dir + "/." + key + ".tmp-" + random_hex(8);
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
      return unavailable("file connector: cannot create " + tmp + ": " + errno_text(errno));
    Status st = write_all(fd, value, tmp);
    if (st.is_ok() && options_.fsync && ::fsync(fd) != 0) {
      st = unavailable("file connector: fsync " + tmp + ": " + errno_text(errno));
    }
    if (::close(fd) != 0 && st.is_ok()) {
      st = unavailable("file connector: close " + tmp + ": " + errno_text(errno));
    }
    if (st.is_ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
      st = unavailable("file connector: rename to " + path + ": " + errno_text(errno));
    }
    if (!st.is_ok()) {
      ::unlink(tmp.c_str());
      return st;
    }
    return key;
  }

  StatusOr<std::optional<Bytes>> get(const std::string& key) override {
    FLIGHT_RETURN_IF_ERROR(check_key(key));
    std::string path = path_of(key);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return std::optional<Bytes>();
      return unavailable("file connector: open " + path + ": " + errno_text(errno));
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return unavailable("file connector: stat " + path + ": " + errno_text(err));
    }
    auto buf = Buffer::allocate(static_cast<size_t>(st.st_size));
    if (!buf.is_ok()) {
      ::close(fd);
      return buf.status();
    }
    uint8_t* dst = (*buf)->data();
    size_t want = (*buf)->size();
    size_t got = 0;
    while (got < want) {
      ssize_t n = ::pread(fd, dst + got, want - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int err = errno;
        ::close(fd);
        if (n == 0) {
          return data_loss("file connector: " + path + " ended after " + std::to_string(got) +
                           " of " + std::to_string(want) + " bytes");
        }
        return unavailable("file connector: read " + path + ": " + errno_text(err));
      }
      got += static_cast<size_t>(n);
    }
    ::close(fd);
    return std::optional<Bytes>(Bytes(std::move(*buf)));
  }

  StatusOr<bool> exists(const std::string& key) override {
    FLIGHT_RETURN_IF_ERROR(check_key(key));
    struct stat st;
    if (::stat(path_of(key).c_str(), &st) == 0) return true;
    if (errno == ENOENT) return false;
    return unavailable("file connector: stat " + path_of(key) + ": " + errno_text(errno));
  }

  Status evict(const std::string& key) override {
    FLIGHT_RETURN_IF_ERROR(check_key(key));
    if (::unlink(path_of(key).c_str()) == 0 || errno == ENOENT) return Status::ok();
    return unavailable("file connector: unlink " + path_of(key) + ": " + errno_text(errno));
  }

  nlohmann::json config() const override { return options_.to_json(); }

 private:
  std::string path_of(const std::string& key) const { return options_.dir + "/" + key; }

  static Status write_all(int fd, ByteView value, const std::string& path) {
    size_t done = 0;
    while (done < value.size) {
      ssize_t n = ::write(fd, value.data + done, value.size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return unavailable("file connector: write " + path + ": " + errno_text(errno));
      done += static_cast<size_t>(n);
    }
    return Status::ok();
  }

  FileConnectorOptions options_;
};

}  // namespace

Status FileConnectorOptions::validate() const {
  if (dir.empty()) return invalid_argument("file connector: 'dir' is required");
  return Status::ok();
}

StatusOr<FileConnectorOptions> FileConnectorOptions::from_json(const nlohmann::json& j) {
  FileConnectorOptions o;
  OptionReader r(j, "file connector");
  r.known({"kind"}).optional("dir", &o.dir).optional("fsync", &o.fsync);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

nlohmann::json FileConnectorOptions::to_json() const {
  return {{"kind", "file"}, {"dir", dir}, {"fsync", fsync}};
}

StatusOr<std::unique_ptr<Connector>> make_file_connector(const FileConnectorOptions& options) {
  FLIGHT_RETURN_IF_ERROR(options.validate());
  FileConnectorOptions o = options;
  std::error_code ec;
  std::filesystem::create_directories(o.dir, ec);
  if (ec)
    return unavailable("file connector: cannot create directory " + o.dir + ": " + ec.message());
  // Absolute, so a config handed to another process means the same directory.
  o.dir = std::filesystem::absolute(o.dir, ec).lexically_normal().string();
  while (o.dir.size() > 1 && o.dir.back() == '/') o.dir.pop_back();
  if (!std::filesystem::is_directory(o.dir)) {
    return invalid_argument("file connector: " + o.dir + " is not a directory");
  }
  return std::unique_ptr<Connector>(new FileConnector(std::move(o)));
}

}  // namespace flight::transport
