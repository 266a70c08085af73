#include "transport/connector.h"

namespace flight::transport {

StatusOr<std::string> Connector::put_shared(Bytes value, const PutHints& hints) {
  if (!value) return invalid_argument(kind() + " connector: put_shared of a null buffer");
  return put(ByteView(*value), hints);
}

StatusOr<std::vector<std::string>> Connector::put_batch(const std::vector<ByteView>& values,
                                                        const PutHints& hints) {
  std::vector<std::string> keys;
  keys.reserve(values.size());
  for (const auto& v : values) {
    FLIGHT_ASSIGN_OR_RETURN(std::string key, put(v, hints));
    keys.push_back(std::move(key));
  }
  return keys;
}

StatusOr<std::vector<std::optional<Bytes>>> Connector::get_batch(
    const std::vector<std::string>& keys) {
  std::vector<std::optional<Bytes>> out;
  out.reserve(keys.size());
  for (const auto& k : keys) {
    FLIGHT_ASSIGN_OR_RETURN(std::optional<Bytes> v, get(k));
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace flight::transport
