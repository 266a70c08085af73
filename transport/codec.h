// The ParamSet wire codec.
//
// Layout (all integers little-endian; tensor data in host byte order, and the
// codec only builds on little-endian hosts):
//
//   [0, 64)         preamble: magic "FLTPARAM", u32 version, u32 entry_count,
//                   u64 total_size, u64 data_offset, u64 table_size,
//                   u32 checksum, 20 reserved zero bytes
//   [64, 64+table)  entry table, one record per tensor in ParamSet order:
//                   u32 name_len, u8 dtype, u8 ndim, u8 encoding, u8 0, u64 offset,
//                   u64 nbytes, i64 dims[ndim], name bytes, zero padding to 8
//   [data_offset, total_size)
//                   raw tensor bytes, each tensor at a 64-byte-aligned offset,
//                   zero padding between them
//
// The checksum is CRC32C over every byte of the encoding except the checksum
// field itself (preamble, table, padding and data), so any flipped bit is caught.
//
// Decoding verifies the checksum and every size and offset, then wraps the
// buffer with at::from_blob: no tensor data is copied, and each tensor keeps the
// buffer alive (a decoded ParamSet stays valid after the Store's cache or the
// connector drops the buffer). Decoded tensors alias a buffer that other readers
// may share (the Store's cache): treat them as read-only and clone() before
// modifying in place.
//
// Compressed updates (version 2): encode(params, EncodeOptions) stores float32
// tensors as fp16, bf16, block-scaled int8 or top-k (update_encoding.h); the
// record keeps the logical dtype and shape and names the encoding, and nbytes
// is the payload's size. The checksum covers the compressed bytes. decode()
// returns float32 tensors for compressed entries (a copy: the payload is not
// float32); accumulate_encoded() folds an encoding straight into an
// accumulator without that copy. Encodings without compression write version
// 1, byte for byte what earlier builds wrote.
//
// Version 3 (an encoding with a sparse_varint entry): as version 2, except
// that sparse_varint payloads start at 8-byte (not 64-byte) aligned offsets
// (they are read byte-wise, never wrapped as tensors), which saves up to 56
// bytes per tensor of a payload that is itself a few hundred bytes. This build
// reads versions 1 to 3; earlier builds reject version 3 by its number.
//
// Dtypes: float32, float64, float16, bfloat16, int8, int16, int32, int64, uint8,
// bool, complex32, complex64, complex128; any shape, including 0-dim and empty.
// Non-contiguous inputs are encoded in contiguous (row-major) order.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "flight/base/status.h"
#include "flight/params/param_set.h"
#include "transport/buffer.h"
#include "transport/update_encoding.h"

namespace flight::transport {

constexpr uint32_t kCodecVersion = 1;            // raw tensors only
constexpr uint32_t kCodecVersionCompressed = 2;  // some entries carry an Encoding
constexpr uint32_t kCodecVersionPacked = 3;      // some are sparse_varint, 8-byte aligned
constexpr size_t kCodecPreambleBytes = 64;
// Limits that bound what a (possibly hostile) header can ask the decoder to believe.
constexpr uint32_t kCodecMaxDims = 32;
constexpr uint32_t kCodecMaxNameBytes = 64 * 1024;

// What the preamble says, read without verifying the checksum.
struct CodecHeader {
  uint32_t version = 0;
  uint32_t entry_count = 0;
  uint64_t total_size = 0;
  uint64_t data_offset = 0;
  uint64_t table_size = 0;
  uint32_t checksum = 0;
};

// Exact size of encode(params); InvalidArgument for an unsupported tensor
// (sparse, quantized, undefined dtype), naming the entry.
StatusOr<uint64_t> encoded_size(const ParamSet& params);

// Encodes into one new aligned buffer: a single pass that copies each tensor and
// extends the checksum over the bytes while they are still in cache.
StatusOr<Bytes> encode(const ParamSet& params);

// As encode(), into caller memory of exactly encoded_size(params) bytes; returns
// the checksum written into the preamble.
StatusOr<uint32_t> encode_into(const ParamSet& params, uint8_t* dest, size_t size);

// Bytes encoded and sealed by this process, with the checksum their preamble
// holds (what a Ref records): Store::put_encoded takes them as they are.
struct SealedBytes {
  Bytes bytes;
  uint32_t checksum = 0;
};

// The raw encoding of a ParamSet whose tensor data its producer computes
// straight into the encoded buffer (no tensor to copy from: a debug worker's
// perturbed model is one read of the global model and one write of the
// update). begin() lays out the preamble and table for tensors shaped and
// typed as `like`'s (their values are not read); write() has each tensor's
// data produced, in order, through a small staging chunk that stays in L1:
// the writer checksums it and copies it into place in one pass (streaming
// stores for large tensors, as encode() does); seal() writes the checksum.
// The result is byte for byte encode(p) for the ParamSet p that holds what
// was produced. Not thread-safe; one writer per encoding.
class EncodingWriter {
 public:
  // Staging chunk: a multiple of every element size, small enough for L1.
  static constexpr uint64_t kChunkBytes = 16 << 10;
  // Produces bytes [begin, begin + n) of an entry's row-major data into
  // `chunk` (n <= kChunkBytes; begin is a multiple of kChunkBytes).
  using Producer = std::function<void(uint8_t* chunk, uint64_t begin, uint64_t n)>;

  // InvalidArgument for a tensor the codec does not encode, as encode().
  static StatusOr<EncodingWriter> begin(const ParamSet& like);
  // Produces entry `index`'s data; entries are written in order, each once.
  Status write(size_t index, const Producer& produce);
  // After every entry is written: the checksum into the preamble.
  StatusOr<SealedBytes> seal() &&;
  uint64_t size() const { return buffer_->size(); }

 private:
  EncodingWriter() = default;

  std::shared_ptr<Buffer> buffer_;
  std::vector<uint64_t> offsets_;
  std::vector<uint64_t> nbytes_;
  size_t next_ = 0;      // the entry write() expects
  uint64_t cursor_ = 0;  // end of the bytes checksummed so far
  uint32_t crc_ = 0;
};

// As encode() with float32 tensors compressed per `options` (validated first).
StatusOr<uint64_t> encoded_size(const ParamSet& params, const EncodeOptions& options);
StatusOr<Bytes> encode(const ParamSet& params, const EncodeOptions& options);

struct AccumulateOptions {
  // Verify the CRC32C over the bytes first (false: the caller verified them,
  // e.g. Store::get_bytes; structure is still checked).
  bool verify_checksum = true;
  // acc = w * decode(bytes) instead of acc += ...: the first update of a fold
  // (no zero-fill pass; same bits as assign_scaled_ on the decoded tensors).
  bool assign = false;
};

// acc += w * decode(bytes), entry by entry by name, straight from the buffer:
// compressed entries are dequantised inside the fold (no decoded copy), with
// the same bits as decode() followed by param_ops' add_scaled_ (assign:
// assign_scaled_). One exception: where acc holds -0.0, a sparse/top-k entry
// that sends nothing there leaves it -0.0 (adding the decoded +0.0 would make
// it +0.0; the values compare equal). The checksum (unless the caller verified
// it) and structure are verified first, and nothing is added unless the whole
// encoding is valid and matches acc (same names, element counts; compressed
// entries need a contiguous float32 accumulator). Non-floating raw entries
// combine by maximum, as in param_ops.
Status accumulate_encoded(ParamSet& acc, const Bytes& bytes, double w,
                          const AccumulateOptions& options = {});
// The same for a batch, in order: bit-identical to one accumulate_encoded
// per (batch[j], weights[j]) (options.assign applies to batch[0] only), but
// dense entries are folded in one pass over acc — each cache-sized chunk of
// acc takes every update's contribution before the next chunk — so k updates
// cost k reads of an update and one read and write of acc, not k of each.
// Every encoding is checked first: nothing is added unless all are valid.
Status accumulate_encoded(ParamSet& acc, const std::vector<const Bytes*>& batch,
                          const std::vector<double>& weights,
                          const AccumulateOptions& options = {});

// One tensor of an encoding, as its table records it.
struct EncodedEntry {
  std::string name;
  c10::ScalarType dtype;       // the logical dtype (float32 for compressed entries)
  std::vector<int64_t> sizes;  // the logical shape
  Encoding encoding;
  uint64_t nbytes;  // payload bytes
};
// Verifies the encoding as decode() does (checksum unless !verify_checksum,
// every size and offset) and lists its tensors in order, without decoding.
StatusOr<std::vector<EncodedEntry>> inspect_encoded(const Bytes& bytes,
                                                    bool verify_checksum = true);

// Error feedback for lossy encodings (top-k above all; Seide et al. 2014,
// Karimireddy et al. 2019): one per worker, kept across rounds. encode() adds
// what earlier rounds dropped to `update`, encodes the sum, and keeps the new
// remainder, so every coordinate is eventually sent. sparsify() does the same
// and returns what the encoding keeps, decoded (dense tensors: zeros where
// nothing is sent). For top-k the split is exact: sent + residual() equals
// update + the previous residual bit for bit (each element is in one of the
// two, unchanged). Not thread-safe.
class ErrorFeedback {
 public:
  // `residual`: what earlier rounds dropped (empty: nothing yet).
  explicit ErrorFeedback(ParamSet residual = ParamSet()) : residual_(std::move(residual)) {}
  StatusOr<Bytes> encode(const ParamSet& update, const EncodeOptions& options);
  StatusOr<ParamSet> sparsify(const ParamSet& update, const EncodeOptions& options);
  const ParamSet& residual() const { return residual_; }

 private:
  StatusOr<ParamSet> split(const ParamSet& update, const EncodeOptions& options, Bytes* bytes);

  ParamSet residual_;
};

// Decodes without copying tensor data (see above). Errors:
//   DataLoss        truncated input, trailing bytes, checksum mismatch, or a
//                   table that contradicts the sizes
//   InvalidArgument not a ParamSet encoding (magic) or an unsupported version
StatusOr<ParamSet> decode(Bytes bytes);

// As decode() without the checksum pass, for a buffer this process encoded
// itself (the Store caches its own puts this way). Structure is still checked.
StatusOr<ParamSet> decode_trusted(Bytes bytes);

// Reads and sanity-checks the preamble only (magic, version, sizes vs `bytes`).
StatusOr<CodecHeader> peek_header(ByteView bytes);

}  // namespace flight::transport
