// Compile a CUDA kernel file for the CPU, to test it on machines without a GPU.
//
// Blocks run one after another; inside a block every CUDA thread is one std::thread, __syncthreads()
// is a std::barrier over the block's threads, threadIdx is thread_local, and __shared__ variables are
// function statics (one copy, used by one block at a time). __constant__ memory is an ordinary global
// array that the host fills with memcpy. A thread that returns drops out of the barrier, as exited
// threads do on the GPU. Needs C++20 (std::barrier).
#pragma once

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace cpu_shim {
inline thread_local dim3 thread_idx;
inline dim3 block_idx, block_dim, grid_dim;
inline std::barrier<>* block_barrier = nullptr;

// Run `kernel` over the grid: blocks in turn, one std::thread per CUDA thread of a block.
inline void launch(dim3 grid, dim3 block, const std::function<void()>& kernel) {
    grid_dim = grid;
    block_dim = block;
    const unsigned nthreads = block.x * block.y * block.z;
    std::vector<std::thread> threads;
    threads.reserve(nthreads);
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                block_idx = dim3{bx, by, bz};
                std::barrier<> barrier(static_cast<std::ptrdiff_t>(nthreads));
                block_barrier = &barrier;
                for (unsigned t = 0; t < nthreads; ++t) {
                    const dim3 tidx{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                    threads.emplace_back([tidx, &kernel, &barrier] {
                        thread_idx = tidx;
                        kernel();
                        barrier.arrive_and_drop();
                    });
                }
                for (auto& th : threads) th.join();
                threads.clear();
                block_barrier = nullptr;
            }
}
}  // namespace cpu_shim

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static
#define __constant__
#define threadIdx (cpu_shim::thread_idx)
#define blockIdx (cpu_shim::block_idx)
#define blockDim (cpu_shim::block_dim)
#define gridDim (cpu_shim::grid_dim)
#define __syncthreads() (cpu_shim::block_barrier->arrive_and_wait())

using std::max;
using std::min;
