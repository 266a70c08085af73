#include "flight/engine/checkpoint.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "transport/buffer.h"
#include "transport/codec.h"

namespace flight::engine {
namespace {

namespace fs = std::filesystem;

Status write_file_atomic(const std::string& path, const void* data, size_t size) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    out.flush();
    if (!out) return unavailable("cannot write '" + tmp + "'");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return unavailable("cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
  return Status::ok();
}

StatusOr<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open '" + path + "'");
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::string params_file(const fs::path& dir, const std::string& name) {
  return (dir / ("params-" + name + ".params")).string();
}

std::string round_dir_name(int64_t round) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "round-%06lld", static_cast<long long>(round));
  return buf;
}

}  // namespace

Status write_params_file(const std::string& path, const ParamSet& params) {
  FLIGHT_ASSIGN_OR_RETURN(transport::Bytes bytes, transport::encode(params));
  return write_file_atomic(path, bytes->data(), bytes->size());
}

StatusOr<ParamSet> read_params_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return not_found("cannot open '" + path + "'");
  const auto size = static_cast<size_t>(in.tellg());
  in.seekg(0);
  FLIGHT_ASSIGN_OR_RETURN(auto buf, transport::Buffer::allocate(size));
  in.read(reinterpret_cast<char*>(buf->data()), static_cast<std::streamsize>(size));
  if (!in) return data_loss("short read of '" + path + "'");
  auto params = transport::decode(std::move(buf));
  if (!params.is_ok()) return params.status().with_context(path);
  return params;
}

Status save_checkpoint(const std::string& output_dir, const Checkpoint& c) {
  const fs::path root = fs::path(output_dir) / "checkpoints";
  // A second checkpoint of the same round (a stop right after one) gets a new
  // name: replacing the directory LATEST points at would leave a moment with
  // no complete checkpoint.
  std::string name = round_dir_name(c.round);
  for (int n = 1; fs::exists(root / name); ++n)
    name = round_dir_name(c.round) + "." + std::to_string(n);
  const fs::path tmp = root / (name + ".tmp");
  const fs::path final_dir = root / name;
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return unavailable("cannot create '" + tmp.string() + "': " + ec.message());

  FLIGHT_RETURN_IF_ERROR(write_params_file((tmp / "global.params").string(), c.global));
  FLIGHT_RETURN_IF_ERROR(write_params_file((tmp / "strategy.params").string(), c.strategy_tensors));
  nlohmann::json names = nlohmann::json::array();
  for (const auto& [name, params] : c.params) {
    const bool safe = !name.empty() && std::all_of(name.begin(), name.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '-';
    });
    if (!safe) return invalid_argument("checkpoint tensors '" + name + "': bad name");
    FLIGHT_RETURN_IF_ERROR(write_params_file(params_file(tmp, name), params));
    names.push_back(name);
  }
  nlohmann::json meta = {
      {"round", c.round},         {"params", names},          {"strategy_state", c.strategy_state},
      {"rng_state", c.rng_state}, {"elapsed_s", c.elapsed_s}, {"extra", c.extra}};
  const std::string text = meta.dump(2);
  FLIGHT_RETURN_IF_ERROR(
      write_file_atomic((tmp / "state.json").string(), text.data(), text.size()));

  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  if (ec)
    return unavailable("cannot publish checkpoint '" + final_dir.string() + "': " + ec.message());
  FLIGHT_RETURN_IF_ERROR(write_file_atomic((root / "LATEST").string(), name.data(), name.size()));

  // Older checkpoints are only removed once LATEST points past them.
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string n = entry.path().filename().string();
    if (entry.is_directory() && n != name && n.rfind("round-", 0) == 0) {
      fs::remove_all(entry.path(), ec);
    }
  }
  return Status::ok();
}

StatusOr<std::optional<Checkpoint>> load_latest_checkpoint(const std::string& output_dir) {
  const fs::path root = fs::path(output_dir) / "checkpoints";
  if (!fs::exists(root / "LATEST")) return std::optional<Checkpoint>();
  FLIGHT_ASSIGN_OR_RETURN(std::string name, read_text((root / "LATEST").string()));
  const fs::path dir = root / name;
  FLIGHT_ASSIGN_OR_RETURN(std::string text, read_text((dir / "state.json").string()));
  Checkpoint c;
  try {
    auto meta = nlohmann::json::parse(text);
    c.round = meta.at("round").get<int64_t>();
    c.strategy_state = meta.at("strategy_state");
    c.rng_state = meta.at("rng_state").get<std::string>();
    c.elapsed_s = meta.value("elapsed_s", 0.0);
    c.extra = meta.value("extra", nlohmann::json::object());
    for (const auto& name : meta.value("params", nlohmann::json::array())) {
      c.params[name.get<std::string>()] = ParamSet();
    }
  } catch (const nlohmann::json::exception& e) {
    return data_loss("checkpoint '" + (dir / "state.json").string() + "' is corrupt: " + e.what());
  }
  FLIGHT_ASSIGN_OR_RETURN(c.global, read_params_file((dir / "global.params").string()));
  FLIGHT_ASSIGN_OR_RETURN(c.strategy_tensors, read_params_file((dir / "strategy.params").string()));
  for (auto& [name, params] : c.params) {
    FLIGHT_ASSIGN_OR_RETURN(params, read_params_file(params_file(dir, name)));
  }
  return std::optional<Checkpoint>(std::move(c));
}

}  // namespace flight::engine
