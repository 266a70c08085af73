// libFuzzer target: ParamSet decoding of hostile bytes. decode() (checksummed)
// and decode_trusted() (structure only, which the fuzzer can reach past the
// checksum) must return a ParamSet or a Status, never read out of bounds; a
// ParamSet that decodes must encode and decode back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "flight/base/check.h"
#include "transport/buffer.h"
#include "transport/codec.h"

using flight::transport::Buffer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto buf = Buffer::copy_of(data, size);
  if (!buf.is_ok()) return 0;
  flight::transport::Bytes bytes = std::move(buf).value();
  (void)flight::transport::peek_header(flight::transport::ByteView(*bytes));
  (void)flight::transport::decode(bytes);
  auto p = flight::transport::decode_trusted(bytes);
  if (p.is_ok()) {
    auto again = flight::transport::encode(*p);
    FLIGHT_CHECK(again.is_ok(),
                 "a decoded ParamSet does not encode: " + again.status().to_string());
    auto back = flight::transport::decode(*again);
    FLIGHT_CHECK(back.is_ok(), "re-encoded ParamSet does not decode: " + back.status().to_string());
  }
  return 0;
}
