// DecodeOptions.step = "fused": one decode step of the GPT (engine/model.py) in one C++ call.
//
// The same ATen operations, in the same order, as the module path (GPT.forward with a static KV cache, one new
// token per row), so the outputs match it; what goes is the Python between them (module calls, argument
// parsing, views), about half of a batch-1 step on a small model. engine/decoding/fused.py builds this file
// with torch.utils.cpp_extension on first use and prepares the weights it reads.
#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

using at::Tensor;

namespace {

// linear "tiled": y = x W^T + b for a few rows (batch-1 greedy, a beam of one problem) by a hand-written AVX2
// kernel. W is stored as ceil(N / 16) tiles of (K, 16) floats, so a decode step reads every weight once, in
// order; each output is summed over k in order, then the bias is added: the same order for any number of rows,
// so a row's logits do not depend on the rows beside it. Where the CPU lacks AVX2 and FMA, tiled_supported()
// is false and decoding/precision.py does not use it.
namespace tiled {
constexpr int64_t NR = 16;  // output columns per tile: two AVX registers

// R rows times TN tiles: 2 R TN accumulators, each output summed over k in order, then the bias added (the
// same order for every R and TN, so a row's result does not depend on the rows beside it).
template <int R, int TN>
__attribute__((target("avx2,fma"))) void block(const float* x, int64_t K, const float* w, const float* bias,
                                               float* y, int64_t ldy, int64_t n_left) {
  __m256 acc[R][TN][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < TN; ++j) acc[r][j][0] = acc[r][j][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 xb = _mm256_broadcast_ss(x + r * K + k);
#pragma GCC unroll 8
      for (int j = 0; j < TN; ++j) {
        const float* wk = w + (j * K + k) * NR;
        acc[r][j][0] = _mm256_fmadd_ps(xb, _mm256_loadu_ps(wk), acc[r][j][0]);
        acc[r][j][1] = _mm256_fmadd_ps(xb, _mm256_loadu_ps(wk + 8), acc[r][j][1]);
      }
    }
  }
  alignas(32) float out[R][TN][NR];  // the sums leave the registers once, after the k loop
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < TN; ++j) {
      _mm256_store_ps(out[r][j], acc[r][j][0]);
      _mm256_store_ps(out[r][j] + 8, acc[r][j][1]);
    }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < TN; ++j)
      for (int64_t n = 0; n < NR && j * NR + n < n_left; ++n)
        y[r * ldy + j * NR + n] = bias ? out[r][j][n] + bias[j * NR + n] : out[r][j][n];
}

// The columns [0, n) of y (row stride ldy) in chunks of CHUNK tiles; each chunk serves every row, in passes of up
// to 6 rows, while it is in the core's cache, so the weights come from memory once whatever the row count (a beam
// of 10 is two passes). Fewer rows take several tiles at once, so that 8 to 12 sums are in flight. tiles, bias
// and y start at the range's first column.
constexpr int64_t CHUNK = 4;  // 4 tiles (K = 1024: 256 KB, within a core's L2); measured best of 1, 2, 4, 8, all
__attribute__((target("avx2,fma"))) void gemm_range(const float* x, int64_t M, int64_t K, const float* tiles,
                                                      const float* bias, int64_t n, float* y, int64_t ldy) {
  const int64_t T = (n + NR - 1) / NR;
  for (int64_t c0 = 0; c0 < T; c0 += CHUNK) {
    const int64_t c1 = std::min(T, c0 + CHUNK);
    for (int64_t m0 = 0; m0 < M; m0 += 6) {
      const int64_t r = std::min<int64_t>(6, M - m0);
      const int64_t tn = r == 1 ? 4 : r == 2 ? 3 : r == 3 ? 2 : 1;  // 2 r tn accumulators: 8 to 12
      const float* xm = x + m0 * K;
      for (int64_t t = c0; t < c1; t += tn) {
        const int64_t n0 = t * NR, left = n - n0;
        const float* w = tiles + t * K * NR;
        const float* b = bias ? bias + n0 : nullptr;
        float* ym = y + m0 * ldy + n0;
        switch (r * 8 + std::min<int64_t>(tn, c1 - t)) {
          case 1 * 8 + 4: block<1, 4>(xm, K, w, b, ym, ldy, left); break;
          case 1 * 8 + 3: block<1, 3>(xm, K, w, b, ym, ldy, left); break;
          case 1 * 8 + 2: block<1, 2>(xm, K, w, b, ym, ldy, left); break;
          case 1 * 8 + 1: block<1, 1>(xm, K, w, b, ym, ldy, left); break;
          case 2 * 8 + 3: block<2, 3>(xm, K, w, b, ym, ldy, left); break;
          case 2 * 8 + 2: block<2, 2>(xm, K, w, b, ym, ldy, left); break;
          case 2 * 8 + 1: block<2, 1>(xm, K, w, b, ym, ldy, left); break;
          case 3 * 8 + 2: block<3, 2>(xm, K, w, b, ym, ldy, left); break;
          case 3 * 8 + 1: block<3, 1>(xm, K, w, b, ym, ldy, left); break;
          case 4 * 8 + 1: block<4, 1>(xm, K, w, b, ym, ldy, left); break;
          case 5 * 8 + 1: block<5, 1>(xm, K, w, b, ym, ldy, left); break;
          default: block<6, 1>(xm, K, w, b, ym, ldy, left); break;
        }
      }
    }
  }
}

// y (M, N) for all rows, the tiles split among torch's threads (each output is computed by one thread, in the
// same order whatever the split).
void gemm(const float* x, int64_t M, int64_t K, const float* tiles, const float* bias_padded, int64_t N, float* y) {
  const int64_t T = (N + NR - 1) / NR;
  const int64_t grain = std::max<int64_t>(4, 65536 / std::max<int64_t>(1, K * NR * M));
  at::parallel_for(0, T, grain, [&](int64_t t0, int64_t t1) {
    gemm_range(x, M, K, tiles + t0 * K * NR, bias_padded ? bias_padded + t0 * NR : nullptr,
               std::min(N, t1 * NR) - t0 * NR, y + t0 * NR, N);
  });
}
}  // namespace tiled

bool tiled_supported() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

// (N, K) weight -> its tiles (ceil(N / 16), K, 16), zero-padded past N.
Tensor tile_weight(const Tensor& w) {
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == at::kFloat && w.device().is_cpu(), "a 2-d float32 CPU weight");
  const int64_t N = w.size(0), K = w.size(1), T = (N + tiled::NR - 1) / tiled::NR;
  Tensor p = at::zeros({T * tiled::NR, K}, w.options());
  p.narrow(0, 0, N).copy_(w);
  return p.view({T, tiled::NR, K}).transpose(1, 2).contiguous();
}

// x (M, K) float32 -> (M, N); tiles from tile_weight, bias_padded (ceil(N / 16) * 16) or None.
Tensor tiled_linear(const Tensor& x_in, const Tensor& tiles, const std::optional<Tensor>& bias_padded, int64_t N) {
  TORCH_CHECK(tiled_supported(), "linear=tiled needs a CPU with AVX2 and FMA");
  TORCH_CHECK(x_in.dim() == 2 && x_in.scalar_type() == at::kFloat && x_in.device().is_cpu(), "x: (rows, in) float32");
  TORCH_CHECK(tiles.dim() == 3 && tiles.size(1) == x_in.size(1) && tiles.size(0) * tiled::NR >= N, "tiles fit x, N");
  const Tensor x = x_in.contiguous();
  Tensor y = at::empty({x.size(0), N}, x.options());
  if (x.size(0) > 0) {
    tiled::gemm(x.data_ptr<float>(), x.size(0), x.size(1), tiles.data_ptr<float>(),
                bias_padded.has_value() ? bias_padded->data_ptr<float>() : nullptr, N, y.data_ptr<float>());
  }
  return y;
}


// One linear layer: y = x W^T + b. `one` is used below `packed_min_rows` rows (W^T, contiguous or a view),
// `many` from there on: W^T again (aten) or a oneDNN-packed weight (linear "packed"), as the module path would.
struct Linear {
  Tensor one, many, bias;
  int64_t packed_min_rows = 0;  // 0: never packed
  Tensor tiles, tiles_bias;     // linear "tiled": used instead of `one` below packed_min_rows rows
  int64_t out = 0;
};

Tensor linear_pointwise(const Tensor& x, const Tensor& w, const Tensor& b) {  // PackedLinear's oneDNN GEMM
  static const c10::OperatorHandle op =
      c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_linear_pointwise", "");
  torch::jit::Stack stack;
  stack.emplace_back(x);
  stack.emplace_back(w);
  stack.emplace_back(b.defined() ? c10::IValue(b) : c10::IValue());
  stack.emplace_back(std::string("none"));
  stack.emplace_back(c10::List<std::optional<c10::Scalar>>());
  stack.emplace_back(std::string(""));
  op.callBoxed(&stack);
  return stack[0].toTensor();
}

Tensor apply(const Linear& l, const Tensor& x) {  // x (R, in) -> (R, out)
  if (l.packed_min_rows > 0 && x.size(0) >= l.packed_min_rows) {
    return linear_pointwise(x, l.many, l.bias);
  }
  if (l.tiles.defined()) {
    return tiled_linear(x, l.tiles, l.tiles_bias.defined() ? std::optional<Tensor>(l.tiles_bias) : std::nullopt, l.out);
  }
  const Tensor& w = l.packed_min_rows > 0 || x.size(0) == 1 ? l.one : l.many;
  return l.bias.defined() ? at::addmm(l.bias, x, w) : at::mm(x, w);
}

// softmax(q k^T / sqrt(D)) v, the model's attend(): q (R, H, T, D), k, v (R, H, S, D), mask (R, 1, T, S) or
// undefined: then causal over T = S positions (nothing to mask for one query).
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, bool sdpa) {
  const int64_t T = q.size(2);
  if (sdpa) {
    return at::scaled_dot_product_attention(q, k, v, mask.defined() ? std::optional<Tensor>(mask) : std::nullopt,
                                            0.0, !mask.defined() && T > 1);
  }
  Tensor att = at::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(k.size(-1))));
  if (mask.defined()) {
    att = att.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
  } else if (T > 1) {
    att = att.masked_fill(at::ones({T, T}, q.options().dtype(at::kBool)).tril().logical_not(),
                          -std::numeric_limits<double>::infinity());
  }
  return at::matmul(at::softmax(att, -1), v);
}

// The model's attend_shared(): rows grouped by problem attend their problem's prompt (pk, pv: G, H, P, D,
// pmask G, 1, 1, P or undefined) and their own generated keys (gk, gv: N, H, S, D).
Tensor attend_shared(const Tensor& q, const Tensor& pk, const Tensor& pv, const Tensor& pmask, const Tensor& gk,
                     const Tensor& gv) {
  const int64_t N = q.size(0), H = q.size(1), D = q.size(3), G = pk.size(0), P = pk.size(2), K = N / G;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  Tensor qg = q.view({G, K, H, D}).transpose(1, 2);
  Tensor sp = at::matmul(qg, pk.transpose(-2, -1)) * scale;
  if (pmask.defined()) {
    sp = sp.masked_fill(pmask.logical_not(), -std::numeric_limits<double>::infinity());
  }
  Tensor sg = at::matmul(q, gk.transpose(-2, -1)) * scale;
  Tensor att = at::cat({sp.transpose(1, 2).reshape({N, H, 1, P}), sg}, -1).softmax(-1);
  auto parts = att.split_with_sizes({P, att.size(-1) - P}, -1);
  Tensor yp = at::matmul(parts[0].view({G, K, H, P}).transpose(1, 2), pv);
  return yp.transpose(1, 2).reshape({N, H, 1, D}) + at::matmul(parts[1], gv);
}


// step="native": a decode step's attention for its one new token per row, in a loop per row and head (AVX2),
// instead of the ATen operations (SDPA, or attend_shared's matmuls, cat, softmax and split), whose fixed cost per
// call outweighs the arithmetic at these sizes. Keys are the shared prompt's (pk, pv: G, H, P, D with pmask G, 1,
// 1, P; G = 0 when not shared) then the row's own (gk, gv: R, H, S, D views with gmask R, 1, 1, >= S, or
// undefined: every key). Scores, softmax and the weighted sum are those of the model's attend(), summed in
// another order (exact like every option: same tokens, scores within 1e-4). Returns (R, H * D).
namespace native {
__attribute__((target("avx2,fma"))) inline float dot(const float* a, const float* b, int64_t D) {
  __m256 acc = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + 8 <= D; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), acc);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  float s = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
  for (; d < D; ++d) s += a[d] * b[d];
  return s;
}

struct Keys {  // one (B, H, L, D) float tensor with a contiguous last dimension, and its (B, 1, 1, >= L) mask
  const float *k = nullptr, *v = nullptr;
  int64_t k0 = 0, k1 = 0, k2 = 0, v0 = 0, v1 = 0, v2 = 0, len = 0;
  const bool* m = nullptr;
  int64_t m0 = 0, m3 = 0;
  const int64_t* slot = nullptr;  // (rows, >= L) or none: row b's position j is stored in buffer row slot[b][j]
  int64_t s0 = 0;
  Keys(const Tensor& k_, const Tensor& v_, const Tensor& mask, const Tensor& slots = Tensor()) {
    if (!k_.defined()) return;
    k = k_.data_ptr<float>(), v = v_.data_ptr<float>(), len = k_.size(2);
    k0 = k_.stride(0), k1 = k_.stride(1), k2 = k_.stride(2), v0 = v_.stride(0), v1 = v_.stride(1), v2 = v_.stride(2);
    if (mask.defined()) m = mask.data_ptr<bool>(), m0 = mask.stride(0), m3 = mask.stride(3);
    if (slots.defined()) slot = slots.data_ptr<int64_t>(), s0 = slots.stride(0);
  }
  int64_t row(int64_t b, int64_t j) const { return slot ? slot[b * s0 + j] : b; }
};

__attribute__((target("avx2,fma"))) inline __m128 half(__m256 c) {
  return _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1));
}

// The dot products of one query with four keys, each summed as dot() sums it (8 lanes over D in order, the same
// lane reduction, then the scalar tail): four independent chains instead of one, so the FMAs overlap.
__attribute__((target("avx2,fma"))) inline void dot4(const float* a, const float* const* b, int64_t D, float* out) {
  __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
  int64_t d = 0;
  for (; d + 8 <= D; d += 8) {
    const __m256 x = _mm256_loadu_ps(a + d);
    c0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b[0] + d), c0);
    c1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b[1] + d), c1);
    c2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b[2] + d), c2);
    c3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b[3] + d), c3);
  }
  // half(): lanes (l0 + l4, l1 + l5, l2 + l6, l3 + l7); hadd twice: ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7))
  const __m128 s = _mm_hadd_ps(_mm_hadd_ps(half(c0), half(c1)), _mm_hadd_ps(half(c2), half(c3)));
  _mm_storeu_ps(out, s);
  for (int k = 0; k < 4; ++k) {
    for (int64_t e = d; e < D; ++e) out[k] += a[e] * b[k][e];
  }
}

// One query's scaled scores against a key segment's keys (its batch row b, head h) into s, masked keys -inf;
// returns their max (-inf for an empty segment). Four keys at a time (dot4), the rest one by one (dot): the same
// sums either way.
__attribute__((target("avx2,fma"))) float scores(const float* qi, const Keys& keys, int64_t b, int64_t h,
                                                 int64_t D, float scale, float* s) {
  const float inf = std::numeric_limits<float>::infinity();
  auto on = [&](int64_t j) { return keys.m == nullptr || keys.m[b * keys.m0 + j * keys.m3]; };
  auto key = [&](int64_t j) { return keys.k + keys.row(b, j) * keys.k0 + h * keys.k1 + j * keys.k2; };
  float top = -inf;
  int64_t j = 0;
  for (; j + 4 <= keys.len; j += 4) {
    const float* kp[4];
    for (int u = 0; u < 4; ++u) kp[u] = on(j + u) ? key(j + u) : qi;  // a masked key's slot may hold anything
    dot4(qi, kp, D, s + j);
    for (int u = 0; u < 4; ++u) {
      s[j + u] = on(j + u) ? s[j + u] * scale : -inf;
      top = std::max(top, s[j + u]);
    }
  }
  for (; j < keys.len; ++j) {
    s[j] = on(j) ? dot(qi, key(j), D) * scale : -inf;
    top = std::max(top, s[j]);
  }
  return top;
}

// o += sum_j p[j] * inv * v_j over a key segment's values (batch row b, head h): each output summed over j in
// order (as one axpy per key would), 32 of them at a time held in registers across the keys.
__attribute__((target("avx2,fma"))) void mix(const Keys& keys, int64_t b, int64_t h, const float* p, float inv,
                                             float* o, int64_t D) {
  auto val = [&](int64_t j) { return keys.v + keys.row(b, j) * keys.v0 + h * keys.v1 + j * keys.v2; };
  int64_t d = 0;
  for (; d + 32 <= D; d += 32) {
    __m256 a0 = _mm256_loadu_ps(o + d), a1 = _mm256_loadu_ps(o + d + 8), a2 = _mm256_loadu_ps(o + d + 16),
           a3 = _mm256_loadu_ps(o + d + 24);
    for (int64_t j = 0; j < keys.len; ++j) {
      const __m256 w = _mm256_set1_ps(p[j] * inv);
      const float* v = val(j) + d;
      a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(v), a0);
      a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(v + 8), a1);
      a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(v + 16), a2);
      a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(v + 24), a3);
    }
    _mm256_storeu_ps(o + d, a0), _mm256_storeu_ps(o + d + 8, a1), _mm256_storeu_ps(o + d + 16, a2);
    _mm256_storeu_ps(o + d + 24, a3);
  }
  for (; d + 8 <= D; d += 8) {
    __m256 a = _mm256_loadu_ps(o + d);
    for (int64_t j = 0; j < keys.len; ++j) a = _mm256_fmadd_ps(_mm256_set1_ps(p[j] * inv), _mm256_loadu_ps(val(j) + d), a);
    _mm256_storeu_ps(o + d, a);
  }
  for (; d < D; ++d) {
    for (int64_t j = 0; j < keys.len; ++j) o[d] += p[j] * inv * val(j)[d];
  }
}

__attribute__((target("avx2,fma"))) void rows(const float* q, const Keys& pre, const Keys& own, int64_t H,
                                              int64_t D, int64_t K, float scale, float* out, int64_t b, int64_t e) {
  std::vector<float> s(pre.len + own.len);
  for (int64_t i = b; i < e; ++i) {
    const int64_t r = i / H, h = i % H, g = r / K;  // the prompt's keys are per problem (g), the rest per row
    const float* qi = q + i * D;
    const float top = std::max(scores(qi, pre, g, h, D, scale, s.data()),
                               scores(qi, own, r, h, D, scale, s.data() + pre.len));
    float total = 0.f;
    for (float& sj : s) total += (sj = std::exp(sj - top));
    float* o = out + i * D;
    std::fill(o, o + D, 0.f);
    mix(pre, g, h, s.data(), 1.f / total, o, D);
    mix(own, r, h, s.data() + pre.len, 1.f / total, o, D);
  }
}

bool runs(const Tensor& q, const Tensor& k) {  // float32 on the CPU with AVX2 and FMA, unit-stride head dimension
  return tiled_supported() && q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat && q.device().is_cpu() &&
         k.stride(3) == 1;
}

Tensor attend_one(const Tensor& q_in, const Tensor& pk, const Tensor& pv, const Tensor& pmask, const Tensor& gk,
                  const Tensor& gv, const Tensor& gmask, const Tensor& slots = Tensor()) {
  const int64_t R = q_in.size(0), H = q_in.size(1), D = q_in.size(3);
  const int64_t K = pk.defined() ? R / pk.size(0) : 1;
  const Tensor q = q_in.contiguous(), pm = pmask.defined() ? pmask.contiguous() : pmask;
  TORCH_CHECK(!pk.defined() || (pk.stride(3) == 1 && pv.stride(3) == 1), "prompt keys with a unit-stride head dim");
  TORCH_CHECK(gv.stride(3) == 1, "values with a unit-stride head dimension");
  Tensor out = at::empty({R, H * D}, q.options());
  TORCH_CHECK(!slots.defined() || (slots.scalar_type() == at::kLong && slots.stride(1) == 1 && slots.size(0) >= R &&
                                   slots.size(1) >= gk.size(2)), "slots: (rows, >= keys) int64, unit column stride");
  const Keys pre(pk, pv, pm), own(gk, gv, gmask, slots);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  const float* qd = q.data_ptr<float>();
  float* od = out.data_ptr<float>();
  at::parallel_for(0, R * H, 16, [&](int64_t b, int64_t e) { rows(qd, pre, own, H, D, K, scale, od, b, e); });
  return out;
}
}  // namespace native
}  // namespace

// The weights of one model as the step reads them, converted from Python once (decoding/fused.py).
// lin: 3 entries per linear (qkv, proj, fc, out per layer, then the head): the weight for one row, the weight
// for several, the bias (None for the head); packed_min_rows: from how many rows the "several" weights, then
// oneDNN-packed, are used (0: not packed: F.linear's weights throughout). tiles: empty, or 2 entries per linear
// (linear "tiled": tile_weight's tiles and the bias padded to whole tiles, None for the head). norms: weight and
// bias of ln1, ln2 per layer, then of ln_f. tok_emb (V, C), pos_emb (block_size, C).
struct Weights {
  std::vector<Linear> L;
  std::vector<Tensor> norms;
  Tensor tok_emb, pos_emb;
  int64_t n_head;
  double eps;

  Weights(const std::vector<std::optional<Tensor>>& lin, int64_t packed_min_rows,
          const std::vector<std::optional<Tensor>>& tiles, std::vector<Tensor> norms_,
          Tensor tok_emb_,
          Tensor pos_emb_, int64_t n_head_, double eps_)
      : norms(std::move(norms_)), tok_emb(std::move(tok_emb_)), pos_emb(std::move(pos_emb_)), n_head(n_head_),
        eps(eps_) {
    TORCH_CHECK(lin.size() % 3 == 0 && (lin.size() / 3) % 4 == 1, "3 entries per linear, 4 linears per layer + head");
    L.resize(lin.size() / 3);
    for (size_t i = 0; i < L.size(); ++i) {
      L[i].one = *lin[3 * i];
      L[i].many = *lin[3 * i + 1];
      L[i].bias = lin[3 * i + 2].has_value() ? *lin[3 * i + 2] : Tensor();
      L[i].packed_min_rows = packed_min_rows;
      L[i].out = L[i].one.size(1);
      if (!tiles.empty()) {
        TORCH_CHECK(tiles.size() == 2 * L.size(), "2 tile entries per linear");
        L[i].tiles = *tiles[2 * i];
        L[i].tiles_bias = tiles[2 * i + 1].has_value() ? *tiles[2 * i + 1] : Tensor();
      }
    }
    TORCH_CHECK(norms.size() == 4 * (L.size() / 4) + 2, "ln1, ln2 per layer and ln_f: weight and bias each");
  }

  // tok, pos (R,) long; t: the position this token takes (S = t + 1 keys after it). k_bufs, v_bufs: per layer
  // (R, H, max_len, D), this token's key and value written at t (at t - P under a shared prefix of P positions).
  // key_mask: (R, 1, 1, >= S) or None. prefix_k, prefix_v, prefix_mask: the shared-prefix cache's prompt part
  // (empty lists and None when not shared). slots (native attention only): None, or (R, max_len) int64, the buffer
  // row that holds each row's key and value at each position (beams follow their parents through this table
  // instead of copying the cache): the buffers then have at least R rows, and this token's go to rows 0..R-1.
  // Returns logits (R, V).
  Tensor step(const Tensor& tok, const Tensor& pos, int64_t t, const std::vector<Tensor>& k_bufs,
              const std::vector<Tensor>& v_bufs, const std::optional<Tensor>& key_mask,
              const std::vector<Tensor>& prefix_k, const std::vector<Tensor>& prefix_v,
              const std::optional<Tensor>& prefix_mask, bool sdpa, bool native_attention,
              const std::optional<Tensor>& slots) const {
    at::InferenceMode guard;
    const int64_t R = tok.size(0), C = tok_emb.size(1), H = n_head, D = C / H, S = t + 1;
    const size_t n_layer = k_bufs.size();
    TORCH_CHECK(4 * n_layer + 1 == L.size(), "one key and one value buffer per layer");
    Tensor mask = key_mask.has_value() ? key_mask->narrow(-1, 0, S) : Tensor();
    Tensor pmask = prefix_mask.has_value() ? *prefix_mask : Tensor();
    Tensor x = at::embedding(tok_emb, tok) + pos_emb.index_select(0, pos);  // (R, C)
    for (size_t i = 0; i < n_layer; ++i) {
      Tensor h = at::layer_norm(x, {C}, norms[4 * i], norms[4 * i + 1], eps);
      Tensor qkv = apply(L[4 * i], h).view({R, 1, 3, H, D}).permute({2, 0, 3, 1, 4});  // (3, R, H, 1, D)
      Tensor q = qkv[0], k = qkv[1], v = qkv[2];
      const int64_t g = prefix_k.empty() ? t : t - prefix_k[i].size(2);
      k_bufs[i].narrow(0, 0, R).narrow(2, g, 1).copy_(k);
      v_bufs[i].narrow(0, 0, R).narrow(2, g, 1).copy_(v);
      Tensor ks = k_bufs[i].narrow(2, 0, g + 1), vs = v_bufs[i].narrow(2, 0, g + 1);
      Tensor y;
      const Tensor table = slots.has_value() ? *slots : Tensor();
      TORCH_CHECK(!table.defined() || (native_attention && native::runs(q, ks)), "slots need the native attention");
      if (native_attention && native::runs(q, ks)) {
        y = prefix_k.empty() ? native::attend_one(q, Tensor(), Tensor(), Tensor(), ks, vs, mask, table)
                             : native::attend_one(q, prefix_k[i], prefix_v[i], pmask, ks, vs, Tensor(), table);
      } else {
        y = prefix_k.empty() ? attend(q, ks, vs, mask, sdpa) : attend_shared(q, prefix_k[i], prefix_v[i], pmask, ks, vs);
        y = y.transpose(1, 2).reshape({R, C});
      }
      x = x + apply(L[4 * i + 1], y);
      h = at::layer_norm(x, {C}, norms[4 * i + 2], norms[4 * i + 3], eps);
      x = x + apply(L[4 * i + 3], at::gelu(apply(L[4 * i + 2], h)));
    }
    Tensor h = at::layer_norm(x, {C}, norms[4 * n_layer], norms[4 * n_layer + 1], eps);
    return apply(L[4 * n_layer], h);
  }

  // The prefill: GPT.forward(idx, pos, mask, cache, last_only=True) on an empty cache. idx, pos (R, T) long (pos
  // None: 0..T-1); mask (R, 1, T, T) bool or None (causal). k_bufs, v_bufs: a static cache's per-layer buffers,
  // written at [0, T); empty lists for a shared-prefix cache, whose prompt part is returned instead. Returns the
  // logits (R, V) of the last position, then the keys and values of every layer (R, H, T, D), contiguous, when
  // the cache is shared.
  std::vector<Tensor> prefill(const Tensor& idx, const std::optional<Tensor>& pos, const std::optional<Tensor>& mask_in,
                              const std::vector<Tensor>& k_bufs, const std::vector<Tensor>& v_bufs, bool sdpa) const {
    at::InferenceMode guard;
    const int64_t R = idx.size(0), T = idx.size(1), C = tok_emb.size(1), H = n_head, D = C / H;
    const size_t n_layer = (L.size() - 1) / 4;
    const bool shared = k_bufs.empty();
    TORCH_CHECK(shared || k_bufs.size() == n_layer, "one key and one value buffer per layer, or none");
    Tensor mask = mask_in.has_value() ? *mask_in : Tensor();
    Tensor x = at::embedding(tok_emb, idx) + (pos.has_value() ? pos_emb.index_select(0, pos->reshape(-1)).view({R, T, C})
                                                              : pos_emb.narrow(0, 0, T).unsqueeze(0));
    std::vector<Tensor> out{Tensor()};
    for (size_t i = 0; i < n_layer; ++i) {
      const bool last = i + 1 == n_layer;  // past its attention, the last layer runs the last position only
      Tensor h = at::layer_norm(x, {C}, norms[4 * i], norms[4 * i + 1], eps);
      Tensor qkv = apply(L[4 * i], h.reshape({R * T, C})).view({R, T, 3, H, D}).permute({2, 0, 3, 1, 4});
      Tensor q = qkv[0], k = qkv[1], v = qkv[2], ks = k, vs = v;
      if (shared) {
        out.push_back(k.contiguous());
        out.push_back(v.contiguous());
      } else {
        k_bufs[i].narrow(2, 0, T).copy_(k);
        v_bufs[i].narrow(2, 0, T).copy_(v);
        ks = k_bufs[i].narrow(2, 0, T);
        vs = v_bufs[i].narrow(2, 0, T);
      }
      Tensor m = mask;
      int64_t Tq = T;
      if (last && T > 1) {
        q = q.narrow(2, T - 1, 1);
        Tq = 1;
        if (m.defined()) m = m.narrow(2, T - 1, 1);
      }
      Tensor y = attend(q, ks, vs, m, sdpa).transpose(1, 2).reshape({R * Tq, C});
      x = (Tq == T ? x : x.narrow(1, T - 1, 1)) + apply(L[4 * i + 1], y).view({R, Tq, C});
      h = at::layer_norm(x, {C}, norms[4 * i + 2], norms[4 * i + 3], eps);
      x = x + apply(L[4 * i + 3], at::gelu(apply(L[4 * i + 2], h.reshape({R * Tq, C})))).view({R, Tq, C});
    }
    Tensor h = at::layer_norm(x.select(1, x.size(1) - 1), {C}, norms[4 * n_layer], norms[4 * n_layer + 1], eps);
    out[0] = apply(L[4 * n_layer], h);
    return out;
  }
};

// One step of beam search's tensor half after the first (decoding/beam.py: log-softmax, _select and _host_matrix), the
// same operations in one call. logits (G * K, V); live_scores (G, K). Returns the host matrix (G, 13 K + 1)
// float32 (top_scores, ranked, src, tok, ends: 2 K columns each; nxt, live_scores, live_src: K each; best),
// live_scores (G, K), live_tok (G, K) and the log-probs (G * K, V).
std::vector<Tensor> beam_select(const Tensor& logits, const Tensor& live_scores_in, int64_t K, int64_t length,
                                double length_penalty, bool last, int64_t sep) {
  at::InferenceMode guard;
  const int64_t G = live_scores_in.size(0), V = logits.size(-1);
  Tensor logprobs = at::log_softmax(logits.to(at::kFloat), -1);
  Tensor cand = (logprobs.view({G, K, V}) + live_scores_in.unsqueeze(2)).view({G, K * V});
  auto top = cand.topk(2 * K, -1);
  Tensor top_scores = std::get<0>(top), top_idx = std::get<1>(top);
  Tensor src = top_idx.floor_divide(V), tok = top_idx.remainder(V);
  Tensor ends = last ? at::ones_like(tok, tok.options().dtype(at::kBool)) : tok.eq(sep);
  Tensor running = top_scores + ends.to(at::kFloat) * -1e9;
  Tensor nxt = std::get<1>(running.topk(K, -1));
  Tensor live_scores = running.gather(1, nxt);
  const double norm = std::pow(static_cast<double>(length), length_penalty);
  Tensor best = live_scores.select(1, 0) / norm;
  Tensor ranked = top_scores / norm;
  Tensor live_src = src.gather(1, nxt), live_tok = tok.gather(1, nxt);
  std::vector<Tensor> parts;
  for (const Tensor& t : {top_scores, ranked, src, tok, ends, nxt, live_scores, live_src, best}) {
    parts.push_back(t.reshape({G, -1}).to(at::kFloat));
  }
  return {at::cat(parts, 1), live_scores, live_tok, logprobs};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("tiled_supported", &tiled_supported, "whether this CPU runs linear=tiled's kernel (AVX2 and FMA)");
  m.def("tile_weight", &tile_weight, "an (out, in) weight as linear=tiled's tiles");
  m.def("tiled_linear", &tiled_linear, "x W^T + b on tile_weight's tiles (decoding/precision.py TiledLinear)");
  m.def("beam_select", &beam_select, "beam search's tensor half of a step (engine/decoding/beam.py)");
  pybind11::class_<Weights>(m, "Weights")
      .def(pybind11::init<const std::vector<std::optional<Tensor>>&, int64_t, const std::vector<std::optional<Tensor>>&,
                          std::vector<Tensor>, Tensor, Tensor,
                          int64_t, double>())
      .def("step", &Weights::step, "one GPT decode step (engine/decoding/fused.py)")
      .def("prefill", &Weights::prefill, "the prefill of an empty cache (engine/decoding/fused.py)");
}
