// specjax's CPU small-M matmul as an XLA FFI custom call (see specjax/kernels/cpu_matmul.py).
//
// ys[i][M, N_i] = x[M, K] @ ws[i] (w [K, N], or [N, K] with nt=true), fp32, row-major: one
// call takes any number of weights sharing x. The columns of the ys are split into chunks,
// handed out through an atomic counter to the calling thread and to tasks scheduled on
// XLA's intra-op thread pool; the caller also runs chunks no task has claimed, so it never
// waits on a task that has not started.
#include <atomic>
#include <cstdint>
#include <algorithm>
#include <memory>
#include <vector>

#include "xla/ffi/api/ffi.h"

#define KERNEL_NS avx512
#define VB 64
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,fma")
#include "cpu_matmul_kernel.inc"
#pragma GCC pop_options
#undef KERNEL_NS
#undef VB

#define KERNEL_NS avx2
#define VB 32
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include "cpu_matmul_kernel.inc"
#pragma GCC pop_options
#undef KERNEL_NS
#undef VB

namespace ffi = xla::ffi;

namespace {

using Fn = void (*)(const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t,
                    int64_t);

struct Isa {
  int level;  // 2: AVX-512, 1: AVX2 + FMA, 0: neither (the Python side keeps to XLA)
  Fn nn, nt;
  int64_t nn_unit, nt_unit;  // column granularity of a chunk
};

Isa detect() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return {2, avx512::nn, avx512::nt, avx512::NB, 4};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {1, avx2::nn, avx2::nt, avx2::NB, 4};
  return {0, nullptr, nullptr, 1, 1};
}

const Isa& isa() {
  static const Isa kIsa = detect();
  return kIsa;
}

// One product of a call: y = x @ w (w [K, N]) or x @ w[:N].T (nt).
struct Product {
  const float* w;
  float* y;
  int64_t N, chunk, first_chunk;  // columns, columns per chunk, index of its first chunk
};

// All products of a call share x; their chunks are numbered consecutively and claimed
// through one counter, so q/k/v (or gate/up) cost one hand-off to the pool, not three.
struct Job {
  Fn fn;
  const float* x;
  int64_t M, K, num_chunks = 0;
  std::vector<Product> products;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};

  void run() {
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < num_chunks;) {
      size_t p = 0;
      while (p + 1 < products.size() && products[p + 1].first_chunk <= i) ++p;
      const Product& q = products[p];
      const int64_t n0 = (i - q.first_chunk) * q.chunk;
      const int64_t n1 = n0 + q.chunk < q.N ? n0 + q.chunk : q.N;
      fn(x, q.w, q.y, M, K, q.N, n0, n1);
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

// Weight bytes below which a call stays on the calling thread (waking a pool thread costs
// more than it saves).
constexpr int64_t kParallelBytes = 1 << 20;
// Weight bytes per chunk: a few chunks per thread, so a late thread still gets work.
constexpr int64_t kChunkBytes = 256 << 10;

ffi::Error MatmulImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::RemainingArgs ws,
                      ffi::RemainingRets ys, bool nt) {
  const Isa& cpu = isa();
  if (cpu.level == 0) return ffi::Error::InvalidArgument("specjax_cpu_matmul: no AVX2/FMA");
  auto xd = x.dimensions();
  if (xd.size() != 2 || ws.size() != ys.size() || ws.size() == 0)
    return ffi::Error::InvalidArgument("specjax_cpu_matmul: x must be 2-D, one y per w");
  auto job = std::make_shared<Job>();
  job->fn = nt ? cpu.nt : cpu.nn;
  job->x = x.typed_data();
  job->M = xd[0];
  job->K = xd[1];
  const int64_t M = job->M, K = job->K, unit = nt ? cpu.nt_unit : cpu.nn_unit;
  int64_t bytes = 0;
  for (size_t i = 0; i < ws.size(); ++i) {
    auto w = ws.get<ffi::Buffer<ffi::F32>>(i);
    auto y = ys.get<ffi::Buffer<ffi::F32>>(i);
    if (!w.has_value() || !y.has_value())
      return ffi::Error::InvalidArgument("specjax_cpu_matmul: operands must be f32");
    auto wd = w->dimensions();
    auto yd = (*y)->dimensions();
    const int64_t N = yd.size() == 2 ? yd[1] : -1;
    // nt: y may use the first N rows of w only (a sub-vocab head's slice of its table).
    if (wd.size() != 2 || yd.size() != 2 || yd[0] != M ||
        (nt ? wd[1] != K || wd[0] < N : wd[0] != K || wd[1] != N))
      return ffi::Error::InvalidArgument("specjax_cpu_matmul: shapes do not match");
    job->products.push_back({w->typed_data(), (*y)->typed_data(), N, 0, 0});
    bytes += K * N * 4;
  }
  if (M == 0 || K == 0) {
    for (auto& p : job->products) std::fill(p.y, p.y + M * p.N, 0.f);
    return ffi::Error::Success();
  }
  const int64_t threads = bytes < kParallelBytes ? 1 : std::max<int64_t>(pool.num_threads(), 1);
  for (auto& p : job->products) {
    int64_t chunk = threads == 1 ? p.N : kChunkBytes / (K * 4);
    chunk = std::max((chunk + unit - 1) / unit * unit, unit);
    p.chunk = chunk;
    p.first_chunk = job->num_chunks;
    job->num_chunks += (p.N + chunk - 1) / chunk;
  }
  const int64_t tasks = std::min(threads - 1, job->num_chunks - 1);
  for (int64_t t = 0; t < tasks; ++t) pool.Schedule([job] { job->run(); });
  job->run();
  while (job->done.load(std::memory_order_acquire) < job->num_chunks) __builtin_ia32_pause();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SpecjaxCpuMatmul, MatmulImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .RemainingArgs()
                                  .RemainingRets()
                                  .Attr<bool>("nt"));

extern "C" int specjax_cpu_matmul_isa() { return isa().level; }
