// Tiled 2D convolution (cross-correlation, like torch.nn.functional.conv2d) for NCHW float32.
//
// One block computes a TILE_H x TILE_W tile of output pixels for up to COUT_TILE output channels of
// one image. All threads of the block stage the input tile plus its halo,
//     IN_TILE_H = (TILE_H - 1) * stride + KH   rows,   IN_TILE_W = (TILE_W - 1) * stride + KW   columns,
// for `cin_chunk` input channels at a time in shared memory (zero outside the image = zero padding),
// synchronise, and each thread accumulates its output pixel for every output channel of the block.
//
// Filters live in __constant__ memory: every thread of a warp reads the same filter tap at the same
// time, which the constant cache broadcasts. 64 KiB = 16,384 floats is the hard limit, and ResNet's
// 3x3 convolutions do not fit whole (512 x 512 x 9 = 2.4 M floats). The host therefore splits each
// convolution into launches over (output-channel group) x (input-channel group) such that
// cout_count * cin_count * KH * KW <= DP_CONST_FLOATS; launches after the first input-channel group
// accumulate into the output (`accumulate` = 1). The plan is computed in Python
// (deep_perception.ops.plan.launch_plan) and shared by the pycuda backend, the CPU shim and the numpy
// reference, so all three execute the same launches.
//
// The same file compiles for the GPU (nvcc, pycuda SourceModule(no_extern_c=True)) and for the CPU
// through cuda/cpu_shim.h (one std::thread per CUDA thread, std::barrier as __syncthreads).
// Tile sizes are compile-time (-DTILE_W=.. etc.) so the shared buffer is static.

#ifndef TILE_W
#define TILE_W 16
#endif
#ifndef TILE_H
#define TILE_H 16
#endif
#ifndef COUT_TILE
#define COUT_TILE 8
#endif
#ifndef MAX_K
#define MAX_K 7
#endif
#ifndef MAX_STRIDE
#define MAX_STRIDE 2
#endif
#ifndef DP_CONST_FLOATS
#define DP_CONST_FLOATS 16384
#endif

// Largest single-channel input tile (with halo) any supported (K, stride) needs.
#define MAX_IN_TILE_H ((TILE_H - 1) * MAX_STRIDE + MAX_K)
#define MAX_IN_TILE_W ((TILE_W - 1) * MAX_STRIDE + MAX_K)
#ifndef SMEM_FLOATS
#define SMEM_FLOATS (MAX_IN_TILE_H * MAX_IN_TILE_W * 4)
#endif

__constant__ float c_filter[DP_CONST_FLOATS];

// y[n, cout_begin + co, oy, ox] (+)= bias + sum_{c < cin_count, ky, kx}
//     x[n, cin_begin + c, oy * stride - pad + ky, ox * stride - pad + kx] * c_filter[co][c][ky][kx]
// grid = (ceil(Wout / TILE_W), ceil(Hout / TILE_H), N * ceil(cout_count / COUT_TILE)),
// block = (TILE_W, TILE_H, 1). cin_chunk * in_tile_h * in_tile_w must be <= SMEM_FLOATS.
extern "C" __global__ void tiled_conv2d_forward(
    const float* __restrict__ x, float* __restrict__ y, const float* __restrict__ bias,
    int C, int H, int W, int Cout, int Hout, int Wout,
    int KH, int KW, int stride, int pad,
    int cin_begin, int cin_count, int cin_chunk, int cout_begin, int cout_count,
    int accumulate)
{
    __shared__ float tile[SMEM_FLOATS];

    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * TILE_W + tx;
    const int cout_tiles = (cout_count + COUT_TILE - 1) / COUT_TILE;
    const int n = blockIdx.z / cout_tiles;
    const int co0 = (blockIdx.z % cout_tiles) * COUT_TILE;  // within this launch's filter group
    const int oy = blockIdx.y * TILE_H + ty;
    const int ox = blockIdx.x * TILE_W + tx;
    const int iy0 = blockIdx.y * TILE_H * stride - pad;    // top-left of the tile incl. halo
    const int ix0 = blockIdx.x * TILE_W * stride - pad;
    const int in_h = (TILE_H - 1) * stride + KH;
    const int in_w = (TILE_W - 1) * stride + KW;
    const int plane = in_h * in_w;
    const int taps = KH * KW;

    float acc[COUT_TILE];
#pragma unroll
    for (int j = 0; j < COUT_TILE; ++j) acc[j] = 0.0f;

    for (int c0 = 0; c0 < cin_count; c0 += cin_chunk) {
        const int nc = min(cin_chunk, cin_count - c0);
        // Cooperative load of nc channel planes of the tile + halo; zero padding outside the image.
        for (int i = tid; i < nc * plane; i += TILE_W * TILE_H) {
            const int c = i / plane;
            const int r = (i % plane) / in_w;
            const int q = i % in_w;
            const int iy = iy0 + r, ix = ix0 + q;
            float v = 0.0f;
            if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                v = x[(((long long)n * C + cin_begin + c0 + c) * H + iy) * W + ix];
            tile[i] = v;
        }
        __syncthreads();

        for (int c = 0; c < nc; ++c) {
            const float* t = tile + c * plane + (ty * stride) * in_w + tx * stride;
            for (int ky = 0; ky < KH; ++ky) {
                for (int kx = 0; kx < KW; ++kx) {
                    const float v = t[ky * in_w + kx];
                    const int f = (c0 + c) * taps + ky * KW + kx;
#pragma unroll
                    for (int j = 0; j < COUT_TILE; ++j)
                        if (co0 + j < cout_count)
                            acc[j] += v * c_filter[(co0 + j) * cin_count * taps + f];
                }
            }
        }
        __syncthreads();  // the next chunk overwrites the tile
    }

    if (oy < Hout && ox < Wout) {
#pragma unroll
        for (int j = 0; j < COUT_TILE; ++j) {
            const int co = co0 + j;
            if (co < cout_count) {
                const long long o = (((long long)n * Cout + cout_begin + co) * Hout + oy) * Wout + ox;
                float v = acc[j];
                if (bias) v += bias[cout_begin + co];
                y[o] = accumulate ? y[o] + v : v;
            }
        }
    }
}
