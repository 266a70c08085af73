// Lossy update encodings for the ParamSet codec (codec.h): the per-tensor
// payload formats and their kernels. The codec records the encoding in each
// entry of its table; this file knows what the payload bytes mean.
//
// Only float32 tensors are compressed; every other dtype stays raw.
//   fp16   IEEE half, round to nearest even                     2 bytes/element
//   bf16   bfloat16, round to nearest even                      2 bytes/element
//   int8   blocks of `block_size` elements, one float32 scale per block
//          (max |x| / 127), values rounded stochastically (unbiased)
//          payload: u32 block_size, u32 0, f32 scales[ceil(n / B)], pad to 8,
//                   i8 values[n]                                ~1 + 4/B bytes/element
//   topk   the k = ceil(fraction * n) largest |x| (at least 1), indices ascending
//          payload: u64 k, u32 indices[k], pad to 8, f32 values[k]   8 bytes/kept element
//   sparse lossless: every nonzero element (k = their count), in topk's payload
//          format; a tensor whose nonzeros would not take fewer bytes than raw
//          float32 travels raw instead. For updates that are already sparse: a
//          worker's top-k delta after error feedback, and sums of such deltas
//          (an aggregator's partial), which top-k would truncate.
//   sparse_varint  sparse's content (lossless, raw where not smaller) in a compact
//          form: indices as LEB128 varints of the gaps (first index, then
//          i[j] - i[j-1] - 1: one byte while gaps stay under 128), values float32
//          payload: u32 k, u32 index_bytes, varints[index_bytes], pad to 4,
//                   f32 values[k]        ~5 bytes/nonzero at 1 % (sparse: 8)
//          Only in codec version 3 (codec.h), at 8-byte alignment; the engine's
//          top-k deltas and partials travel this way. `sparse` still decodes.
// Decoding is folded into aggregation (accumulate_payload): acc += w * x is
// computed straight from the payload, with no full-size float copy, and gives
// the same bits as decoding first (decode_payload) and folding the result.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "flight/base/status.h"

namespace flight::transport {

enum class Encoding : uint8_t {
  kRaw = 0,
  kFp16 = 1,
  kBf16 = 2,
  kInt8 = 3,
  kTopK = 4,
  kSparse = 5,
  kSparseVarint = 6
};

// "raw" (also "float32", "none"), "fp16", "bf16", "int8", "topk", "sparse",
// "sparse_varint".
StatusOr<Encoding> parse_encoding(const std::string& name);
const char* encoding_name(Encoding e);
bool valid_encoding_code(uint8_t code);

struct EncodeOptions {
  Encoding encoding = Encoding::kRaw;  // default: no compression
  int64_t block_size = 256;            // int8: elements per scale, in [8, 2^20]
  double topk_fraction = 0.01;         // topk: fraction of elements kept, in (0, 1]
  bool stochastic_rounding = true;     // int8: unbiased rounding (else nearest)
  uint64_t seed = 0;                   // int8 stochastic rounding stream

  Status validate() const;
};

// Whether e lists (index, value) pairs of the nonzeros: topk, sparse, sparse_varint.
bool is_sparse_encoding(Encoding e);

// Payload bytes of the float32 tensor x[0, n) (only the sparse forms read x).
uint64_t payload_size(const EncodeOptions& o, const float* x, uint64_t n);

// Encoding `o.encoding` applies to the float32 tensor x[0, n): itself, or raw
// for sparse / sparse_varint when the nonzeros would not be smaller.
Encoding tensor_encoding(const EncodeOptions& o, const float* x, uint64_t n);

// Writes the payload of x[0, n) to dest (payload_size bytes). `salt` makes
// the stochastic rounding of different tensors independent.
void encode_payload(const EncodeOptions& o, const float* x, uint64_t n, uint64_t salt,
                    uint8_t* dest);

// Checks that a payload of `nbytes` can hold n elements of encoding e
// (sizes, block size, index order and range): DataLoss naming what is wrong.
Status check_payload(Encoding e, const uint8_t* p, uint64_t nbytes, uint64_t n);

// out[0, n) = decoded payload (a checked payload).
void decode_payload(Encoding e, const uint8_t* p, uint64_t n, float* out);

// acc[i] += w * decoded payload[i] (assign: acc[i] = w * decoded[i]) for i in
// [lo, min(hi, n)) of a checked payload, without a decoded copy; acc points at
// element 0. Bit-identical to decode_payload() followed by acc += w * out
// (assign: acc = w * out) in float32, so a fold may decode while it folds.
// int8: `lo` should be a multiple of the block size (int8_block_size) for
// ranges to split the work evenly; any range is correct.
void accumulate_payload(Encoding e, const uint8_t* p, uint64_t n, double w, float* acc,
                        bool assign = false, uint64_t lo = 0, uint64_t hi = UINT64_MAX);

// The block size recorded in a checked int8 payload.
uint64_t int8_block_size(const uint8_t* p);

}  // namespace flight::transport
