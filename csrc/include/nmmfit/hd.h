// NMM_HD marks the per-node functions that both executors inline: __host__ __device__ under nvcc.
#pragma once
#if defined(__CUDACC__)
#define NMM_HD __host__ __device__ __forceinline__
#else
#define NMM_HD inline __attribute__((always_inline))
#endif
