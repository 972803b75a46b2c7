// Host side of the CPU build of tiled_conv2d.cu: fills the "constant" filter memory and launches the
// kernel through cpu_shim.h. Loaded from Python with ctypes (deep_perception.ops.shim).
#include "cpu_shim.h"
#include "tiled_conv2d.cu"

extern "C" {

int shim_const_floats() { return DP_CONST_FLOATS; }
int shim_smem_floats() { return SMEM_FLOATS; }
int shim_tile_w() { return TILE_W; }
int shim_tile_h() { return TILE_H; }
int shim_cout_tile() { return COUT_TILE; }

// Copy `n` floats into the kernel's __constant__ filter array; returns 0, or -1 when n is too large.
int shim_set_filter(const float* f, int n) {
    if (n < 0 || n > DP_CONST_FLOATS) return -1;
    std::memcpy(c_filter, f, sizeof(float) * static_cast<size_t>(n));
    return 0;
}

void shim_launch(unsigned gx, unsigned gy, unsigned gz, const float* x, float* y, const float* bias,
                 int C, int H, int W, int Cout, int Hout, int Wout, int KH, int KW, int stride, int pad,
                 int cin_begin, int cin_count, int cin_chunk, int cout_begin, int cout_count,
                 int accumulate) {
    cpu_shim::launch(dim3{gx, gy, gz}, dim3{TILE_W, TILE_H, 1}, [=] {
        tiled_conv2d_forward(x, y, bias, C, H, W, Cout, Hout, Wout, KH, KW, stride, pad, cin_begin,
                             cin_count, cin_chunk, cout_begin, cout_count, accumulate);
    });
}
}
