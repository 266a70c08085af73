#include "transport/codec.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "flight/params/param_ops.h"
#include "transport/checksum.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the ParamSet codec writes host-order tensor data and assumes little-endian");

namespace flight::transport {
namespace {

constexpr char kMagic[8] = {'F', 'L', 'T', 'P', 'A', 'R', 'A', 'M'};
constexpr size_t kChecksumOffset = 40;
constexpr size_t kRecordFixedBytes = 24;  // name_len, dtype, ndim, pad, offset, nbytes

constexpr size_t kStreamThreshold = 4 << 20;

uint64_t align_up(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

// Wire dtype codes are the format's own, so LibTorch renumbering its enum cannot
// change the format.
struct DtypeInfo {
  uint8_t code;
  c10::ScalarType type;
  const char* name;
};
constexpr DtypeInfo kDtypes[] = {
    {1, c10::ScalarType::Float, "float32"},
    {2, c10::ScalarType::Double, "float64"},
    {3, c10::ScalarType::Half, "float16"},
    {4, c10::ScalarType::BFloat16, "bfloat16"},
    {5, c10::ScalarType::Char, "int8"},
    {6, c10::ScalarType::Short, "int16"},
    {7, c10::ScalarType::Int, "int32"},
    {8, c10::ScalarType::Long, "int64"},
    {9, c10::ScalarType::Byte, "uint8"},
    {10, c10::ScalarType::Bool, "bool"},
    {11, c10::ScalarType::ComplexHalf, "complex32"},
    {12, c10::ScalarType::ComplexFloat, "complex64"},
    {13, c10::ScalarType::ComplexDouble, "complex128"},
};

const DtypeInfo* dtype_by_type(c10::ScalarType t) {
  for (const auto& d : kDtypes) {
    if (d.type == t) return &d;
  }
  return nullptr;
}

const DtypeInfo* dtype_by_code(uint8_t code) {
  for (const auto& d : kDtypes) {
    if (d.code == code) return &d;
  }
  return nullptr;
}

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

struct Layout {
  uint64_t table_size = 0;
  uint64_t data_offset = 0;
  uint64_t total_size = 0;
  std::vector<uint64_t> offsets;
  std::vector<uint64_t> nbytes;
  std::vector<uint8_t> codes;
  std::vector<Encoding> encodings;
  bool compressed = false;
  bool packed = false;  // a sparse_varint entry: version 3
};

// Where an entry's payload may start: sparse_varint payloads are read
// byte-wise, everything else may be wrapped as a tensor (64-byte aligned).
uint64_t payload_alignment(Encoding e) {
  return e == Encoding::kSparseVarint ? 8 : kBufferAlignment;
}

Status check_tensor(const ParamEntry& e, const DtypeInfo** info) {
  const at::Tensor& t = e.tensor;
  if (!t.defined()) return invalid_argument("tensor '" + e.name + "' is undefined");
  if (t.layout() != c10::kStrided) {
    return invalid_argument("tensor '" + e.name +
                            "' is not dense (sparse tensors cannot be encoded)");
  }
  *info = dtype_by_type(t.scalar_type());
  if (*info == nullptr) {
    return invalid_argument("tensor '" + e.name + "' has dtype " +
                            std::string(c10::toString(t.scalar_type())) +
                            ", which the ParamSet codec does not encode");
  }
  if (t.dim() > static_cast<int64_t>(kCodecMaxDims)) {
    return invalid_argument("tensor '" + e.name + "' has " + std::to_string(t.dim()) +
                            " dimensions (the codec allows " + std::to_string(kCodecMaxDims) + ")");
  }
  if (e.name.size() > kCodecMaxNameBytes) {
    return invalid_argument("a tensor name is " + std::to_string(e.name.size()) +
                            " bytes long (the codec allows " + std::to_string(kCodecMaxNameBytes) +
                            ")");
  }
  return Status::ok();
}

// Only float32 tensors are compressed; everything else travels raw. `c` is
// the entry's contiguous tensor (sparse decides by its nonzeros).
Encoding entry_encoding(const at::Tensor& c, const EncodeOptions* o) {
  if (o == nullptr || o->encoding == Encoding::kRaw) return Encoding::kRaw;
  if (c.scalar_type() != c10::ScalarType::Float) return Encoding::kRaw;
  return tensor_encoding(*o, c.data_ptr<float>(), static_cast<uint64_t>(c.numel()));
}

StatusOr<Layout> plan(const ParamSet& params, const EncodeOptions* o = nullptr) {
  if (o) FLIGHT_RETURN_IF_ERROR(o->validate());
  Layout l;
  l.table_size = 0;
  std::vector<at::Tensor> compressed(params.size());  // contiguous float32 inputs
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& e = params[i];
    const DtypeInfo* info = nullptr;
    FLIGHT_RETURN_IF_ERROR(check_tensor(e, &info));
    l.codes.push_back(info->code);
    Encoding enc = Encoding::kRaw;
    if (o != nullptr && o->encoding != Encoding::kRaw &&
        e.tensor.scalar_type() == c10::ScalarType::Float) {
      compressed[i] = e.tensor.contiguous();
      enc = entry_encoding(compressed[i], o);
    }
    l.encodings.push_back(enc);
    l.compressed |= enc != Encoding::kRaw;
    l.packed |= enc == Encoding::kSparseVarint;
    l.table_size += align_up(kRecordFixedBytes + 8 * e.tensor.dim() + e.name.size(), 8);
  }
  l.data_offset = align_up(kCodecPreambleBytes + l.table_size, kBufferAlignment);
  uint64_t cursor = l.data_offset;
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& e = params[i];
    const uint64_t numel = static_cast<uint64_t>(e.tensor.numel());
    uint64_t n = l.encodings[i] == Encoding::kRaw
                     ? numel * e.tensor.element_size()
                     : payload_size(*o, compressed[i].data_ptr<float>(), numel);
    cursor = align_up(cursor, payload_alignment(l.encodings[i]));
    l.offsets.push_back(cursor);
    l.nbytes.push_back(n);
    cursor += n;
  }
  l.total_size = cursor;
  return l;
}

// Copies a tensor's bytes and extends the checksum over them in one pass
// (crc32c_copy). Large tensors are copied with non-temporal stores: a cached
// store first reads the destination line from memory, which costs a third of
// the bandwidth (memcpy itself streams at these sizes); small ones stay in
// cache for a consumer that reads them soon.
uint32_t copy_and_checksum(uint8_t* dst, const uint8_t* src, size_t n, uint32_t crc) {
  return crc32c_copy(crc, dst, src, n, /*stream=*/n >= kStreamThreshold);
}

// Writes the preamble (checksum field zero) and the entry table of `l` for
// `params` into dest[0, l.data_offset) and returns their checksum, so far.
uint32_t write_head(const ParamSet& params, const Layout& l, uint8_t* dest) {
  // Preamble.
  std::memset(dest, 0, l.data_offset);
  std::memcpy(dest, kMagic, 8);
  put_le<uint32_t>(dest + 8, l.packed       ? kCodecVersionPacked
                             : l.compressed ? kCodecVersionCompressed
                                            : kCodecVersion);
  put_le<uint32_t>(dest + 12, static_cast<uint32_t>(params.size()));
  put_le<uint64_t>(dest + 16, l.total_size);
  put_le<uint64_t>(dest + 24, l.data_offset);
  put_le<uint64_t>(dest + 32, l.table_size);
  // Entry table.
  uint8_t* p = dest + kCodecPreambleBytes;
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& e = params[i];
    uint8_t* rec = p;
    put_le<uint32_t>(rec, static_cast<uint32_t>(e.name.size()));
    rec[4] = l.codes[i];
    rec[5] = static_cast<uint8_t>(e.tensor.dim());
    rec[6] = static_cast<uint8_t>(l.encodings[i]);
    put_le<uint64_t>(rec + 8, l.offsets[i]);
    put_le<uint64_t>(rec + 16, l.nbytes[i]);
    rec += kRecordFixedBytes;
    for (int64_t d = 0; d < e.tensor.dim(); ++d) {
      put_le<int64_t>(rec, e.tensor.size(d));
      rec += 8;
    }
    std::memcpy(rec, e.name.data(), e.name.size());
    p += align_up(kRecordFixedBytes + 8 * e.tensor.dim() + e.name.size(), 8);
  }
  uint32_t crc = crc32c_extend(0, dest, kChecksumOffset);
  return crc32c_extend(crc, dest + kChecksumOffset + 4, l.data_offset - kChecksumOffset - 4);
}

StatusOr<uint32_t> encode_with(const ParamSet& params, const EncodeOptions* o, uint8_t* dest,
                               size_t size) {
  FLIGHT_ASSIGN_OR_RETURN(Layout l, plan(params, o));
  if (size != l.total_size) {
    return invalid_argument("encode_into: destination is " + std::to_string(size) +
                            " bytes, the encoding needs " + std::to_string(l.total_size));
  }
  uint32_t crc = write_head(params, l, dest);
  // Data, in offset order, with the zero padding between tensors.
  uint64_t cursor = l.data_offset;
  for (size_t i = 0; i < params.size(); ++i) {
    uint64_t off = l.offsets[i];
    if (off > cursor) {
      std::memset(dest + cursor, 0, off - cursor);
      crc = crc32c_extend(crc, dest + cursor, off - cursor);
    }
    const at::Tensor& t = params[i].tensor;
    uint64_t n = l.nbytes[i];
    if (n > 0 && l.encodings[i] != Encoding::kRaw) {
      const at::Tensor c = t.contiguous();
      encode_payload(*o, c.data_ptr<float>(), static_cast<uint64_t>(c.numel()), i, dest + off);
      crc = crc32c_extend(crc, dest + off, n);
    } else if (n > 0) {
      if (t.is_contiguous() && t.device().is_cpu()) {
        crc = copy_and_checksum(dest + off, static_cast<const uint8_t*>(t.data_ptr()), n, crc);
      } else {
        // Strided or off-CPU: let ATen gather it straight into place.
        at::from_blob(dest + off, t.sizes(), t.options().device(c10::kCPU)).copy_(t);
        crc = crc32c_extend(crc, dest + off, n);
      }
    }
    cursor = off + n;
  }
  put_le<uint32_t>(dest + kChecksumOffset, crc);
  return crc;
}

}  // namespace

StatusOr<uint64_t> encoded_size(const ParamSet& params) {
  FLIGHT_ASSIGN_OR_RETURN(Layout l, plan(params));
  return l.total_size;
}

StatusOr<uint64_t> encoded_size(const ParamSet& params, const EncodeOptions& options) {
  FLIGHT_ASSIGN_OR_RETURN(Layout l, plan(params, &options));
  return l.total_size;
}

StatusOr<uint32_t> encode_into(const ParamSet& params, uint8_t* dest, size_t size) {
  return encode_with(params, nullptr, dest, size);
}

StatusOr<Bytes> encode(const ParamSet& params, const EncodeOptions& options) {
  FLIGHT_ASSIGN_OR_RETURN(uint64_t total, encoded_size(params, options));
  FLIGHT_ASSIGN_OR_RETURN(auto buf, Buffer::allocate(total));
  FLIGHT_RETURN_IF_ERROR(encode_with(params, &options, buf->data(), buf->size()).status());
  return Bytes(std::move(buf));
}

StatusOr<Bytes> encode(const ParamSet& params) {
  FLIGHT_ASSIGN_OR_RETURN(uint64_t total, encoded_size(params));
  FLIGHT_ASSIGN_OR_RETURN(auto buf, Buffer::allocate(total));
  FLIGHT_RETURN_IF_ERROR(encode_into(params, buf->data(), buf->size()).status());
  return Bytes(std::move(buf));
}

StatusOr<EncodingWriter> EncodingWriter::begin(const ParamSet& like) {
  FLIGHT_ASSIGN_OR_RETURN(Layout l, plan(like));
  EncodingWriter w;
  FLIGHT_ASSIGN_OR_RETURN(w.buffer_, Buffer::allocate(l.total_size));
  w.crc_ = write_head(like, l, w.buffer_->data());
  w.cursor_ = l.data_offset;
  w.offsets_ = std::move(l.offsets);
  w.nbytes_ = std::move(l.nbytes);
  return w;
}

Status EncodingWriter::write(size_t index, const Producer& produce) {
  if (index != next_ || index >= offsets_.size()) {
    return failed_precondition("EncodingWriter: entry " + std::to_string(index) +
                               " written out of order (next is " + std::to_string(next_) + " of " +
                               std::to_string(offsets_.size()) + ")");
  }
  uint8_t* dest = buffer_->data();
  const uint64_t off = offsets_[index];
  const uint64_t n = nbytes_[index];
  if (off > cursor_) {
    std::memset(dest + cursor_, 0, off - cursor_);
    crc_ = crc32c_extend(crc_, dest + cursor_, off - cursor_);
  }
  alignas(kBufferAlignment) thread_local uint8_t chunk[kChunkBytes];
  const bool stream = n >= kStreamThreshold;
  for (uint64_t begin = 0; begin < n; begin += kChunkBytes) {
    const uint64_t len = std::min<uint64_t>(kChunkBytes, n - begin);
    produce(chunk, begin, len);
    crc_ = crc32c_copy(crc_, dest + off + begin, chunk, len, stream);
  }
  cursor_ = off + n;
  ++next_;
  return Status::ok();
}

StatusOr<SealedBytes> EncodingWriter::seal() && {
  if (next_ != offsets_.size()) {
    return failed_precondition("EncodingWriter: sealed after " + std::to_string(next_) + " of " +
                               std::to_string(offsets_.size()) + " entries");
  }
  put_le<uint32_t>(buffer_->data() + kChecksumOffset, crc_);
  return SealedBytes{Bytes(std::move(buffer_)), crc_};
}

StatusOr<CodecHeader> peek_header(ByteView bytes) {
  if (bytes.size < kCodecPreambleBytes) {
    return data_loss("truncated ParamSet encoding: " + std::to_string(bytes.size) +
                     " bytes, shorter than the " + std::to_string(kCodecPreambleBytes) +
                     "-byte preamble");
  }
  const uint8_t* b = bytes.data;
  if (std::memcmp(b, kMagic, 8) != 0) {
    return invalid_argument("not a Flight ParamSet encoding (bad magic in the first 8 bytes)");
  }
  CodecHeader h;
  h.version = get_le<uint32_t>(b + 8);
  h.entry_count = get_le<uint32_t>(b + 12);
  h.total_size = get_le<uint64_t>(b + 16);
  h.data_offset = get_le<uint64_t>(b + 24);
  h.table_size = get_le<uint64_t>(b + 32);
  h.checksum = get_le<uint32_t>(b + kChecksumOffset);
  if (h.version < kCodecVersion || h.version > kCodecVersionPacked) {
    return invalid_argument("unsupported ParamSet format version " + std::to_string(h.version) +
                            " (this build reads versions " + std::to_string(kCodecVersion) +
                            " to " + std::to_string(kCodecVersionPacked) + ")");
  }
  if (h.total_size > bytes.size) {
    return data_loss("truncated ParamSet encoding: the header says " +
                     std::to_string(h.total_size) + " bytes, only " + std::to_string(bytes.size) +
                     " are present");
  }
  if (h.total_size < bytes.size) {
    return data_loss("ParamSet encoding has " + std::to_string(bytes.size - h.total_size) +
                     " unexpected trailing bytes (header says " + std::to_string(h.total_size) +
                     ")");
  }
  // From here every size is bounded by the real input size.
  if (h.table_size > h.total_size || h.data_offset > h.total_size ||
      kCodecPreambleBytes + h.table_size > h.data_offset || h.data_offset % kBufferAlignment != 0) {
    return data_loss("corrupt ParamSet preamble: table of " + std::to_string(h.table_size) +
                     " bytes and data offset " + std::to_string(h.data_offset) +
                     " do not fit an encoding of " + std::to_string(h.total_size) + " bytes");
  }
  if (static_cast<uint64_t>(h.entry_count) * kRecordFixedBytes > h.table_size) {
    return data_loss("corrupt ParamSet preamble: " + std::to_string(h.entry_count) +
                     " entries cannot fit a " + std::to_string(h.table_size) + "-byte table");
  }
  return h;
}

namespace {

struct EntryView {
  std::string name;
  const DtypeInfo* info;
  Encoding encoding;
  std::vector<int64_t> dims;
  uint64_t numel;
  uint64_t offset;
  uint64_t nbytes;
};

// Verifies (optionally) the checksum and parses the table as untrusted input:
// a well-formed checksum over a malicious table must not crash either.
StatusOr<std::vector<EntryView>> parse_entries(const Bytes& bytes, bool verify) {
  if (!bytes) return invalid_argument("decode: null buffer");
  const uint8_t* b = bytes->data();
  FLIGHT_ASSIGN_OR_RETURN(CodecHeader h, peek_header(ByteView(*bytes)));
  if (verify) {
    uint32_t crc = crc32c_extend(0, b, kChecksumOffset);
    crc = crc32c_extend(crc, b + kChecksumOffset + 4, h.total_size - kChecksumOffset - 4);
    if (crc != h.checksum) {
      char msg[128];
      std::snprintf(msg, sizeof msg,
                    "ParamSet checksum mismatch: header says %08x, the %llu bytes hash to %08x",
                    h.checksum, static_cast<unsigned long long>(h.total_size), crc);
      return data_loss(msg);
    }
  }
  const uint8_t* p = b + kCodecPreambleBytes;
  const uint8_t* table_end = p + h.table_size;
  std::unordered_set<std::string> names;
  std::vector<EntryView> out;
  uint64_t prev_end = h.data_offset;
  for (uint32_t i = 0; i < h.entry_count; ++i) {
    std::string where = "ParamSet entry " + std::to_string(i);
    if (static_cast<size_t>(table_end - p) < kRecordFixedBytes) {
      return data_loss(where + ": entry table ends early");
    }
    uint32_t name_len = get_le<uint32_t>(p);
    uint8_t code = p[4];
    uint8_t ndim = p[5];
    uint8_t enc_code = p[6];
    uint64_t offset = get_le<uint64_t>(p + 8);
    uint64_t nbytes = get_le<uint64_t>(p + 16);
    if (ndim > kCodecMaxDims) return data_loss(where + ": " + std::to_string(ndim) + " dimensions");
    if (name_len > kCodecMaxNameBytes) {
      return data_loss(where + ": name length " + std::to_string(name_len));
    }
    uint64_t rec = align_up(kRecordFixedBytes + 8ull * ndim + name_len, 8);
    if (rec > static_cast<uint64_t>(table_end - p)) {
      return data_loss(where + ": record overruns the entry table");
    }
    const DtypeInfo* info = dtype_by_code(code);
    if (info == nullptr) return data_loss(where + ": unknown dtype code " + std::to_string(code));
    if (!valid_encoding_code(enc_code)) {
      return data_loss(where + ": unknown encoding code " + std::to_string(enc_code));
    }
    const auto encoding = static_cast<Encoding>(enc_code);
    std::vector<int64_t> dims(ndim);
    uint64_t numel = 1;
    bool overflow = false;
    for (uint8_t d = 0; d < ndim; ++d) {
      dims[d] = get_le<int64_t>(p + kRecordFixedBytes + 8 * d);
      if (dims[d] < 0) return data_loss(where + ": negative dimension");
      if (dims[d] != 0 && numel > (UINT64_MAX / static_cast<uint64_t>(dims[d]))) overflow = true;
      numel *= static_cast<uint64_t>(dims[d]);
    }
    std::string name(reinterpret_cast<const char*>(p + kRecordFixedBytes + 8 * ndim), name_len);
    where = "ParamSet entry " + std::to_string(i) + " ('" + name + "')";
    uint64_t elem = c10::elementSize(info->type);
    if (encoding != Encoding::kRaw &&
        (h.version < kCodecVersionCompressed || info->type != c10::ScalarType::Float)) {
      return data_loss(where + ": encoding " + encoding_name(encoding) +
                       " on a non-float32 tensor or in a version-1 encoding");
    }
    if (encoding == Encoding::kSparseVarint && h.version < kCodecVersionPacked) {
      return data_loss(where + ": encoding sparse_varint in a version-" +
                       std::to_string(h.version) + " encoding (it needs version 3)");
    }
    if (overflow ||
        (encoding == Encoding::kRaw && (numel > h.total_size || numel * elem != nbytes))) {
      return data_loss(where + ": shape and byte count disagree");
    }
    if (offset % payload_alignment(encoding) != 0 || offset < prev_end || offset > h.total_size ||
        nbytes > h.total_size - offset) {
      return data_loss(where + ": data offset " + std::to_string(offset) + " (+" +
                       std::to_string(nbytes) + " bytes) is outside the data region");
    }
    if (encoding != Encoding::kRaw) {
      // Compressed payloads hold at least a byte per element, except top-k,
      // which check_payload bounds by its own count.
      if (!is_sparse_encoding(encoding) && numel > nbytes) {
        return data_loss(where + ": shape and byte count disagree");
      }
      Status st = check_payload(encoding, b + offset, nbytes, numel);
      if (!st.is_ok()) return st.with_context(where);
    }
    if (!names.insert(name).second) return data_loss(where + ": duplicate name");
    prev_end = offset + nbytes;
    out.push_back({std::move(name), info, encoding, std::move(dims), numel, offset, nbytes});
    p += rec;
  }
  return out;
}

StatusOr<ParamSet> decode_impl(Bytes bytes, bool verify) {
  FLIGHT_ASSIGN_OR_RETURN(auto entries, parse_entries(bytes, verify));
  const uint8_t* b = bytes->data();
  ParamSet out;
  for (auto& e : entries) {
    at::Tensor t;
    if (e.encoding == Encoding::kRaw) {
      Bytes keep = bytes;
      t = at::from_blob(
          const_cast<uint8_t*>(b + e.offset), e.dims, [keep](void*) mutable { keep.reset(); },
          at::TensorOptions().dtype(e.info->type));
    } else {
      t = at::empty(e.dims, at::TensorOptions().dtype(at::kFloat));
      decode_payload(e.encoding, b + e.offset, e.numel, t.data_ptr<float>());
    }
    out.add(std::move(e.name), std::move(t));
  }
  return out;
}

}  // namespace

StatusOr<std::vector<EncodedEntry>> inspect_encoded(const Bytes& bytes, bool verify_checksum) {
  FLIGHT_ASSIGN_OR_RETURN(auto entries, parse_entries(bytes, verify_checksum));
  std::vector<EncodedEntry> out;
  out.reserve(entries.size());
  for (auto& e : entries) {
    out.push_back({std::move(e.name), e.info->type, std::move(e.dims), e.encoding, e.nbytes});
  }
  return out;
}

Status accumulate_encoded(ParamSet& acc, const Bytes& bytes, double w,
                          const AccumulateOptions& options) {
  return accumulate_encoded(acc, std::vector<const Bytes*>{&bytes}, std::vector<double>{w},
                            options);
}

Status accumulate_encoded(ParamSet& acc, const std::vector<const Bytes*>& batch,
                          const std::vector<double>& weights, const AccumulateOptions& options) {
  if (batch.size() != weights.size()) {
    return invalid_argument("accumulate_encoded: " + std::to_string(batch.size()) + " encodings, " +
                            std::to_string(weights.size()) + " weights");
  }
  // Every encoding is checked against acc before anything is added.
  const size_t m = batch.size();
  std::vector<std::vector<EntryView>> entries(m);
  for (size_t j = 0; j < m; ++j) {
    FLIGHT_ASSIGN_OR_RETURN(entries[j], parse_entries(*batch[j], options.verify_checksum));
  }
  // by_acc[j][i]: encoding j's entry for the tensor entries[0][i] names (the
  // same position when the producers share a layout, as a fold's do).
  std::vector<at::Tensor*> dst;
  std::vector<std::vector<const EntryView*>> by_acc(m);
  for (size_t j = 0; j < m; ++j) {
    const auto& ej = entries[j];
    if (ej.size() != acc.size()) {
      return invalid_argument("accumulate_encoded: the encoding has " + std::to_string(ej.size()) +
                              " tensors, the accumulator " + std::to_string(acc.size()));
    }
    for (size_t i = 0; i < ej.size(); ++i) {
      const std::string& name = entries[0][i].name;
      const EntryView* e = &ej[i];
      if (e->name != name) {
        auto it =
            std::find_if(ej.begin(), ej.end(), [&](const EntryView& x) { return x.name == name; });
        if (it == ej.end()) {
          return invalid_argument("accumulate_encoded: no tensor '" + name + "' in encoding " +
                                  std::to_string(j) + " of the batch");
        }
        e = &*it;
      }
      at::Tensor* t = j == 0 ? acc.find(name) : dst[i];
      if (t == nullptr)
        return invalid_argument("accumulate_encoded: no tensor '" + name + "' in the accumulator");
      if (static_cast<uint64_t>(t->numel()) != e->numel || !t->is_contiguous()) {
        return invalid_argument("accumulate_encoded: '" + name + "' is " + describe_tensor(*t) +
                                " in the accumulator, " + std::to_string(e->numel) +
                                " elements in the encoding (or not contiguous)");
      }
      if (e->encoding != Encoding::kRaw && t->scalar_type() != at::kFloat) {
        return invalid_argument("accumulate_encoded: compressed '" + name +
                                "' needs a float32 accumulator");
      }
      if (j == 0) dst.push_back(t);
      by_acc[j].push_back(e);
    }
  }
  // A dense entry folded straight from its payload into a float32 accumulator.
  auto in_place = [](const EntryView& e, const at::Tensor& t) {
    return t.scalar_type() == at::kFloat &&
           (e.encoding != Encoding::kRaw || e.info->type == c10::ScalarType::Float);
  };
  for (size_t i = 0; i < dst.size(); ++i) {
    at::Tensor& t = *dst[i];
    // Updates j in order, so every element sees the same sequence of
    // additions as one accumulate_encoded per update: the bits do not depend
    // on the batching. A run of dense entries is folded chunk by chunk, each
    // chunk of acc staying in cache while the whole run is added to it.
    size_t j = 0;
    while (j < m) {
      const EntryView& e = *by_acc[j][i];
      const bool assign = options.assign && j == 0;
      const uint8_t* payload = (*batch[j])->data() + e.offset;
      if (!in_place(e, t)) {
        // Other dtypes: the param_ops kernels on a zero-copy view.
        at::Tensor x = at::from_blob(const_cast<uint8_t*>(payload), e.dims,
                                     at::TensorOptions().dtype(e.info->type));
        if (assign) {
          assign_scaled_(t, x, weights[j]);
        } else {
          add_scaled_(t, x, weights[j]);
        }
        ++j;
        continue;
      }
      float* a = t.data_ptr<float>();
      if (is_sparse_encoding(e.encoding)) {
        accumulate_payload(e.encoding, payload, e.numel, weights[j], a, assign);
        ++j;
        continue;
      }
      size_t end = j + 1;
      while (end < m && in_place(*by_acc[end][i], t) &&
             !is_sparse_encoding(by_acc[end][i]->encoding)) {
        ++end;
      }
      // Split across param_ops' threads (elementwise: the split changes no
      // bit). A single int8 update splits on whole blocks; a run on chunks
      // small enough for acc to stay in L1 between updates.
      const auto n = static_cast<int64_t>(e.numel);
      const int64_t unit = end - j == 1 && e.encoding == Encoding::kInt8
                               ? static_cast<int64_t>(int8_block_size(payload))
                               : int64_t{1};
      const int64_t units = (n + unit - 1) / unit;
      constexpr int64_t kChunk = 4096;  // 16 KiB of acc
      parallel_chunks(units, std::max<int64_t>(1, (int64_t{1} << 16) / unit),
                      [&](int64_t lo, int64_t hi) {
                        const int64_t from = lo * unit, to = std::min(n, hi * unit);
                        for (int64_t c = from; c < to; c += kChunk) {
                          const auto c_hi = static_cast<uint64_t>(std::min(to, c + kChunk));
                          for (size_t r = j; r < end; ++r) {
                            const EntryView& er = *by_acc[r][i];
                            accumulate_payload(er.encoding, (*batch[r])->data() + er.offset,
                                               er.numel, weights[r], a, options.assign && r == 0,
                                               static_cast<uint64_t>(c), c_hi);
                          }
                        }
                      });
      j = end;
    }
  }
  return Status::ok();
}

StatusOr<ParamSet> decode(Bytes bytes) { return decode_impl(std::move(bytes), true); }

StatusOr<ParamSet> decode_trusted(Bytes bytes) { return decode_impl(std::move(bytes), false); }

}  // namespace flight::transport

namespace flight::transport {

StatusOr<ParamSet> ErrorFeedback::split(const ParamSet& update, const EncodeOptions& options,
                                        Bytes* bytes) {
  ParamSet corrected = update.clone();
  if (!residual_.empty()) FLIGHT_RETURN_IF_ERROR(add_scaled(corrected, residual_, 1.0));
  FLIGHT_ASSIGN_OR_RETURN(*bytes, transport::encode(corrected, options));
  FLIGHT_ASSIGN_OR_RETURN(ParamSet sent, decode_trusted(*bytes));
  FLIGHT_ASSIGN_OR_RETURN(residual_, subtract(corrected, sent));
  return sent;
}

StatusOr<Bytes> ErrorFeedback::encode(const ParamSet& update, const EncodeOptions& options) {
  Bytes bytes;
  FLIGHT_RETURN_IF_ERROR(split(update, options, &bytes).status());
  return bytes;
}

StatusOr<ParamSet> ErrorFeedback::sparsify(const ParamSet& update, const EncodeOptions& options) {
  Bytes bytes;
  return split(update, options, &bytes);
}

}  // namespace flight::transport
