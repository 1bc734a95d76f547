// The CUDA device: the bodies of block_program.h run with threads = nodes and barriers =
// __syncthreads, launched by launch.h's sequence with the CudaLaunch policy. No torch headers here
// (raw pointers, cudaStream_t); see plan.h for the thread mapping, shared memory and workspace layouts.
#include "simulate_cuda.h"

#include "block_program.h"
#include "launch.h"

namespace nmmfit {
namespace gpu {
namespace {

// The block runner of block_program.h on the GPU: threads are CUDA threads, a phase ends in
// __syncthreads, per-thread variables are registers.
struct CudaBlock {
  template <class V>
  struct Local {
    V v;
    __device__ explicit Local(const CudaBlock&) {}
    __device__ V& operator[](int) { return v; }
  };
  __device__ int nthreads() const { return static_cast<int>(blockDim.x); }
  __device__ int64_t block() const { return blockIdx.x; }
  __device__ int64_t grid() const { return gridDim.x; }
  template <class F>
  __device__ void phase(F&& f) {
    f(static_cast<int>(threadIdx.x));
    __syncthreads();
  }
};

// Blocks of up to MaxThreads threads: 256 (up to 255 registers a thread) for packed or small
// networks, 1024 (64 registers) for N > 256.
template <class T, int MaxThreads>
__global__ void __launch_bounds__(MaxThreads) forward_kernel(const ForwardArgs<T> a, const Plan p, const T* Wt) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  CudaBlock x;
  forward_block(x, a, a.z.cfg, p, Wt, reinterpret_cast<T*>(smem_raw));
}

template <class T, int MaxThreads>
__global__ void __launch_bounds__(MaxThreads)
    backward_kernel(const BackwardArgs<T> a, const Plan p, const T* Wt, double* G, T* seg) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  CudaBlock x;
  backward_block(x, a, a.z.cfg, p, Wt, block_G(p, G, blockIdx.x), block_segments(p, seg, blockIdx.x),
                 reinterpret_cast<T*>(smem_raw));
}

// Wt[b] = W[b]^T, 32 x 32 tiles through shared memory (both sides coalesced).
template <class T>
__global__ void transpose_kernel(const T* W, T* Wt, int64_t nb, int N) {
  __shared__ T tile[32][33];
  const int64_t NN = int64_t(N) * N;
  const int i0 = blockIdx.y * 32, j0 = blockIdx.x * 32;
  for (int64_t b = blockIdx.z; b < nb; b += gridDim.z) {
    for (int r = threadIdx.y; r < 32; r += blockDim.y) {
      const int i = i0 + r, j = j0 + threadIdx.x;
      if (i < N && j < N) tile[r][threadIdx.x] = W[b * NN + int64_t(i) * N + j];
    }
    __syncthreads();
    for (int r = threadIdx.y; r < 32; r += blockDim.y) {
      const int j = j0 + r, i = i0 + threadIdx.x;
      if (i < N && j < N) Wt[b * NN + int64_t(j) * N + i] = tile[threadIdx.x][r];
    }
    __syncthreads();
  }
}

template <class T>
__global__ void reduce_grad_W_kernel(const double* G, int64_t slots, int N, int coupling, T* out) {
  const int64_t NN = int64_t(N) * N;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < NN; e += int64_t(gridDim.x) * blockDim.x)
    reduce_grad_W_element(G, slots, N, coupling, e, out);
}

template <class T>
__global__ void noise_kernel(uint64_t seed, const int64_t* stream, int64_t N, int64_t n_steps, uint64_t step_offset,
                             int64_t total, T* out) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x)
    noise_element(seed, stream, N, n_steps, step_offset, e, out);
}

unsigned int blocks_for(int64_t total, int threads) {
  const int64_t b = (total + threads - 1) / threads;
  return static_cast<unsigned int>(b < 65535 * 16 ? (b > 0 ? b : 1) : 65535 * 16);
}

template <class Kernel>
cudaError_t allow_smem(Kernel kernel, int64_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

// launch.h's policy on the GPU: every piece is a kernel on the caller's stream.
struct CudaLaunch {
  using Status = cudaError_t;
  static constexpr Status success = cudaSuccess;
  static bool ok(Status e) { return e == cudaSuccess; }
  cudaStream_t stream;

  template <class T>
  Status transpose(const T* W, T* Wt, int64_t nb, int N) {
    const unsigned int nt = static_cast<unsigned int>((N + 31) / 32);
    transpose_kernel<T><<<dim3(nt, nt, static_cast<unsigned int>(nb < 65535 ? nb : 65535)), dim3(32, 8), 0, stream>>>(
        W, Wt, nb, N);
    return cudaGetLastError();
  }
  template <class T>
  Status forward(const ForwardArgs<T>& a, const Plan& p, const T* Wt) {
    auto kernel = p.threads <= kSmallBlock ? forward_kernel<T, kSmallBlock> : forward_kernel<T, kMaxNodes>;
    const Status e = allow_smem(kernel, p.smem_bytes);
    if (e != cudaSuccess) return e;
    kernel<<<static_cast<unsigned int>(p.grid), p.threads, p.smem_bytes, stream>>>(a, p, Wt);
    return cudaGetLastError();
  }
  template <class T>
  Status backward(const BackwardArgs<T>& a, const Plan& p, const T* Wt, double* G, T* seg) {
    auto kernel = p.threads <= kSmallBlock ? backward_kernel<T, kSmallBlock> : backward_kernel<T, kMaxNodes>;
    const Status e = allow_smem(kernel, p.smem_bytes);
    if (e != cudaSuccess) return e;
    kernel<<<static_cast<unsigned int>(p.grid), p.threads, p.smem_bytes, stream>>>(a, p, Wt, G, seg);
    return cudaGetLastError();
  }
  template <class T>
  Status reduce_grad_W(const double* G, int64_t slots, int N, int coupling, T* grad_W) {
    reduce_grad_W_kernel<T><<<blocks_for(int64_t(N) * N, 256), 256, 0, stream>>>(G, slots, N, coupling, grad_W);
    return cudaGetLastError();
  }
};

}  // namespace

cudaError_t device_limits(int device, Limits& out) {
  int v = 0;
  cudaError_t e;
  if ((e = cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device)) != cudaSuccess) return e;
  out.num_sms = v;
  if ((e = cudaDeviceGetAttribute(&v, cudaDevAttrMaxThreadsPerMultiProcessor, device)) != cudaSuccess) return e;
  out.max_threads_per_sm = v;
  if ((e = cudaDeviceGetAttribute(&v, cudaDevAttrMaxBlocksPerMultiprocessor, device)) != cudaSuccess) return e;
  out.max_blocks_per_sm = v;
  if ((e = cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, device)) != cudaSuccess) return e;
  out.smem_per_block = v;
  if ((e = cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device)) != cudaSuccess) return e;
  out.smem_per_sm = v;
  return cudaSuccess;
}

template <class T>
cudaError_t simulate_forward_cuda(const ForwardArgs<T>& a, const Plan& p, void* workspace, cudaStream_t stream) {
  CudaLaunch dev{stream};
  return run_forward(dev, a, p, workspace);
}

template <class T>
cudaError_t simulate_backward_cuda(const BackwardArgs<T>& a, const Plan& p, void* workspace, cudaStream_t stream) {
  CudaLaunch dev{stream};
  return run_backward(dev, a, p, workspace);
}

template <class T>
cudaError_t noise_cuda(uint64_t seed, const int64_t* stream_idx, int64_t B, int64_t N, int64_t n_steps,
                       uint64_t step_offset, T* out, cudaStream_t stream) {
  const int64_t total = B * n_steps * N;
  if (total == 0) return cudaSuccess;
  noise_kernel<T><<<blocks_for(total, 256), 256, 0, stream>>>(seed, stream_idx, N, n_steps, step_offset, total, out);
  return cudaGetLastError();
}

#define NMMFIT_CUDA_INSTANTIATE(T)                                                                          \
  template cudaError_t simulate_forward_cuda<T>(const ForwardArgs<T>&, const Plan&, void*, cudaStream_t);   \
  template cudaError_t simulate_backward_cuda<T>(const BackwardArgs<T>&, const Plan&, void*, cudaStream_t); \
  template cudaError_t noise_cuda<T>(uint64_t, const int64_t*, int64_t, int64_t, int64_t, uint64_t, T*, cudaStream_t);
NMMFIT_CUDA_INSTANTIATE(float)
NMMFIT_CUDA_INSTANTIATE(double)

}  // namespace gpu
}  // namespace nmmfit
