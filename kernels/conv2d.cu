/* kernels/conv2d.cu: 2-D convolution on CUDA through cuDNN (see conv2d.h for the contract).
 *
 * cuDNN pads symmetrically only. A description with pad_t != pad_b or pad_l != pad_r (the VAE
 * downsampler) runs on an explicitly zero-padded copy of x in the context workspace with cuDNN
 * padding 0; the input gradient is then computed for the padded copy and cropped.
 *
 * --bf16 (ctx->allow_bf16): x (or its padded copy), W and dy are rounded to bf16 into
 * ctx->scratch16 and cuDNN runs its bf16 configuration (bf16 tensors, fp32 compute type, tensor
 * cores); y, dx and dW come back from bf16 (dW's bf16 result is then added to the fp32 dW). */
#include "kernels/conv2d.h"
#include "common/cuda_check.h"

/* Largest cuDNN workspace an algorithm may ask for; heavier ones are passed over. */
#define CONV_MAX_WORKSPACE (size_t)(2048UL << 20)

/* xp (N,C,Hp,Wp) = x (N,C,H,W) placed at (pt, pl), zeros elsewhere */
static __global__ void pad_kernel(float *xp, const float *x, int64_t NC, int H, int W, int Hp, int Wp, int pt, int pl) {
    int64_t total = NC * Hp * Wp;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int wp = (int)(i % Wp), hp = (int)((i / Wp) % Hp);
        int64_t nc = i / ((int64_t)Hp * Wp);
        int h = hp - pt, w = wp - pl;
        xp[i] = h >= 0 && h < H && w >= 0 && w < W ? x[(nc * H + h) * W + w] : 0.0f;
    }
}

/* dx (N,C,H,W) = the interior of dxp (N,C,Hp,Wp) at (pt, pl) */
static __global__ void crop_kernel(float *dx, const float *dxp, int64_t NC, int H, int W, int Hp, int Wp, int pt, int pl) {
    int64_t total = NC * H * W;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int w = (int)(i % W), h = (int)((i / W) % H);
        int64_t nc = i / ((int64_t)H * W);
        dx[i] = dxp[(nc * Hp + h + pt) * Wp + w + pl];
    }
}

/* y[n, c, :] += b[c] */
static __global__ void add_bias_kernel(float *y, const float *b, int64_t total, int C, int64_t HW) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        y[i] += b[(i / HW) % C];
}

/* db[c] += sum over n and positions of dy[n, c, :]; one block per channel, fixed-order tree. */
static __global__ void bias_grad_kernel(float *db, const float *dy, int N, int C, int64_t HW) {
    __shared__ double part[256];
    int c = blockIdx.x;
    double s = 0;
    for (int n = 0; n < N; n++) {
        const float *p = dy + ((int64_t)n * C + c) * HW;
        for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) s += p[i];
    }
    part[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) part[threadIdx.x] += part[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) db[c] += (float)part[0];
}

/* Descriptors for one call; the input descriptor describes the (possibly padded) tensor that
 * cuDNN sees. */
struct conv_plan {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    int padded;            /* 1: cuDNN runs on an explicitly padded copy of x */
    int Hp, Wp, OH, OW;
    size_t pad_bytes;      /* size of the padded copy (0 if not padded), rounded up to 256 */
    cudnnMathType_t math;
    int bf16;              /* cuDNN sees bf16 tensors (--bf16) */
    int64_t nx, nw, ny;    /* elements of what cuDNN sees as x (padded), W, y */
};

static void plan_open(rhd_ctx *ctx, conv_plan *p, const rhd_conv2d_desc *d) {
    p->padded = d->pad_t != d->pad_b || d->pad_l != d->pad_r;
    p->Hp = p->padded ? d->H + d->pad_t + d->pad_b : d->H;
    p->Wp = p->padded ? d->W + d->pad_l + d->pad_r : d->W;
    p->OH = rhd_conv2d_out_h(d), p->OW = rhd_conv2d_out_w(d);
    p->pad_bytes = p->padded ? ((sizeof(float) * (size_t)d->N * d->Cin * p->Hp * p->Wp + 255) & ~(size_t)255) : 0;
    p->bf16 = ctx->allow_bf16;
    p->math = ctx->allow_tf32 || p->bf16 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
    p->nx = (int64_t)d->N * d->Cin * p->Hp * p->Wp, p->nw = (int64_t)d->Cout * d->Cin * d->KH * d->KW;
    p->ny = (int64_t)d->N * d->Cout * p->OH * p->OW;
    cudnnDataType_t dt = p->bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, dt, d->N, d->Cin, p->Hp, p->Wp));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, dt, d->N, d->Cout, p->OH, p->OW));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, dt, CUDNN_TENSOR_NCHW, d->Cout, d->Cin, d->KH, d->KW));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, p->padded ? 0 : d->pad_t, p->padded ? 0 : d->pad_l,
                                                d->stride_h, d->stride_w, 1, 1, CUDNN_CROSS_CORRELATION,
                                                CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, p->math));
    int n, c, h, w; /* cuDNN must agree with our output size */
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &n, &c, &h, &w));
    RHD_ASSERT(n == d->N && c == d->Cout && h == p->OH && w == p->OW);
}

static void plan_close(conv_plan *p) {
    cudnnDestroyTensorDescriptor(p->x);
    cudnnDestroyTensorDescriptor(p->y);
    cudnnDestroyFilterDescriptor(p->w);
    cudnnDestroyConvolutionDescriptor(p->conv);
}

/* An algorithm result is usable if it ran, fits the workspace cap and, in strict fp32, does not
 * use tensor cores (TF32). */
static int usable(const conv_plan *p, cudnnStatus_t st, size_t mem, cudnnMathType_t math) {
    if (st != CUDNN_STATUS_SUCCESS || mem > CONV_MAX_WORKSPACE) return 0;
    if (p->math == CUDNN_FMA_MATH && (math == CUDNN_TENSOR_OP_MATH || math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
        return 0;
    return 1;
}

/* Heuristic ranking (cudnnGet*_v7), best first; the backward passes take the best
 * deterministic algorithm when there is one. */
static cudnnConvolutionFwdAlgoPerf_t pick_fwd(rhd_ctx *ctx, const conv_plan *p) {
    cudnnConvolutionFwdAlgoPerf_t r[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(RHD_CUDNN(ctx), p->x, p->w, p->conv, p->y,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, r));
    for (int i = 0; i < n; i++)
        if (usable(p, r[i].status, r[i].memory, r[i].mathType)) return r[i];
    rhd_fatal_at(__FILE__, __LINE__, "cuDNN offers no usable forward algorithm (%d considered)", n);
}

static cudnnConvolutionBwdDataAlgoPerf_t pick_bwd_data(rhd_ctx *ctx, const conv_plan *p) {
    cudnnConvolutionBwdDataAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int n = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(RHD_CUDNN(ctx), p->w, p->y, p->conv, p->x,
                                                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, r));
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++)
            if (usable(p, r[i].status, r[i].memory, r[i].mathType) && (pass || r[i].determinism == CUDNN_DETERMINISTIC))
                return r[i];
    rhd_fatal_at(__FILE__, __LINE__, "cuDNN offers no usable backward-data algorithm (%d considered)", n);
}

static cudnnConvolutionBwdFilterAlgoPerf_t pick_bwd_filter(rhd_ctx *ctx, const conv_plan *p) {
    cudnnConvolutionBwdFilterAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int n = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(RHD_CUDNN(ctx), p->x, p->y, p->conv, p->w,
                                                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, r));
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++)
            if (usable(p, r[i].status, r[i].memory, r[i].mathType) && (pass || r[i].determinism == CUDNN_DETERMINISTIC))
                return r[i];
    rhd_fatal_at(__FILE__, __LINE__, "cuDNN offers no usable backward-filter algorithm (%d considered)", n);
}

/* The math type to run an algorithm with: the heuristic's choice, except that strict fp32 keeps
 * CUDNN_FMA_MATH (CUDNN_DEFAULT_MATH would permit TF32 on sm_80 and newer). */
static void set_math(const conv_plan *p, cudnnMathType_t algo_math) {
    CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, p->math == CUDNN_FMA_MATH ? CUDNN_FMA_MATH : algo_math));
}

/* --bf16 scratch: bf16 copies of x (padded), W, y or dy, and a bf16 result of dx's or W's size,
 * each at a 256-byte boundary. */
typedef struct conv_bf16 {
    void *x, *w, *y, *out;
} conv_bf16;

static size_t al256(int64_t n) { return ((size_t)n * 2 + 255) & ~(size_t)255; }

static conv_bf16 bf16_scratch(rhd_ctx *ctx, const conv_plan *p) {
    int64_t nout = p->nx > p->nw ? p->nx : p->nw;
    char *s = (char *)rhd_cuda_scratch16(ctx, al256(p->nx) + al256(p->nw) + al256(p->ny) + al256(nout));
    conv_bf16 b = {s, s + al256(p->nx), s + al256(p->nx) + al256(p->nw), s + al256(p->nx) + al256(p->nw) + al256(p->ny)};
    return b;
}

static void launch_pad(rhd_ctx *ctx, float *xp, const float *x, const conv_plan *p, const rhd_conv2d_desc *d) {
    int64_t NC = (int64_t)d->N * d->Cin;
    pad_kernel<<<rhd_grid1d(NC * p->Hp * p->Wp, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(xp, x, NC, d->H, d->W, p->Hp,
                                                                                     p->Wp, d->pad_t, d->pad_l);
    CUDA_CHECK(cudaGetLastError());
}

// launchers

extern "C" void rhd_conv2d_forward_cuda(rhd_ctx *ctx, float *y, const float *x, const float *W, const float *b,
                                        const rhd_conv2d_desc *d) {
    conv_plan p;
    plan_open(ctx, &p, d);
    cudnnConvolutionFwdAlgoPerf_t a = pick_fwd(ctx, &p);
    set_math(&p, a.mathType);
    size_t ws_bytes = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(RHD_CUDNN(ctx), p.x, p.w, p.conv, p.y, a.algo, &ws_bytes));
    char *ws = (char *)rhd_ctx_workspace(ctx, p.pad_bytes + ws_bytes + 256);
    const float *xin = x;
    if (p.padded) {
        launch_pad(ctx, (float *)ws, x, &p, d);
        xin = (const float *)ws;
    }
    const float one = 1.0f, zero = 0.0f;
    if (p.bf16) {
        conv_bf16 h = bf16_scratch(ctx, &p);
        rhd_cuda_to_bf16(ctx, h.x, xin, p.nx);
        rhd_cuda_to_bf16(ctx, h.w, W, p.nw);
        CUDNN_CHECK(cudnnConvolutionForward(RHD_CUDNN(ctx), &one, p.x, h.x, p.w, h.w, p.conv, a.algo, ws + p.pad_bytes,
                                            ws_bytes, &zero, p.y, h.y));
        rhd_cuda_from_bf16(ctx, y, h.y, p.ny, 0);
    } else {
        CUDNN_CHECK(cudnnConvolutionForward(RHD_CUDNN(ctx), &one, p.x, xin, p.w, W, p.conv, a.algo, ws + p.pad_bytes,
                                            ws_bytes, &zero, p.y, y));
    }
    if (b) {
        int64_t HW = (int64_t)p.OH * p.OW, total = (int64_t)d->N * d->Cout * HW;
        add_bias_kernel<<<rhd_grid1d(total, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(y, b, total, d->Cout, HW);
    }
    plan_close(&p);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void rhd_conv2d_backward_cuda(rhd_ctx *ctx, float *dx, float *dW, float *db, const float *dy,
                                         const float *x, const float *W, const rhd_conv2d_desc *d) {
    if (db) {
        bias_grad_kernel<<<d->Cout, 256, 0, RHD_CUDA_STREAM(ctx)>>>(db, dy, d->N, d->Cout,
                                                                    (int64_t)rhd_conv2d_out_h(d) * rhd_conv2d_out_w(d));
        CUDA_CHECK(cudaGetLastError());
    }
    if (!dx && !dW) return;
    conv_plan p;
    plan_open(ctx, &p, d);
    cudnnConvolutionBwdDataAlgoPerf_t ad = {};
    cudnnConvolutionBwdFilterAlgoPerf_t af = {};
    size_t ws_data = 0, ws_filter = 0;
    if (dx) {
        ad = pick_bwd_data(ctx, &p);
        set_math(&p, ad.mathType);
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(RHD_CUDNN(ctx), p.w, p.y, p.conv, p.x, ad.algo, &ws_data));
    }
    if (dW) {
        set_math(&p, p.math);
        af = pick_bwd_filter(ctx, &p);
        set_math(&p, af.mathType);
        CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(RHD_CUDNN(ctx), p.x, p.y, p.conv, p.w, af.algo,
                                                                   &ws_filter));
    }
    size_t ws_bytes = ws_data > ws_filter ? ws_data : ws_filter;
    char *ws = (char *)rhd_ctx_workspace(ctx, p.pad_bytes + ws_bytes + 256);
    float *pad = (float *)ws; /* the padded copy (of dx first, then of x) */
    const float one = 1.0f, zero = 0.0f;
    conv_bf16 h = {0};
    if (p.bf16) {
        h = bf16_scratch(ctx, &p);
        rhd_cuda_to_bf16(ctx, h.y, dy, p.ny);
        rhd_cuda_to_bf16(ctx, h.w, W, p.nw);
    }
    if (dx) {
        set_math(&p, ad.mathType);
        if (p.bf16) {
            CUDNN_CHECK(cudnnConvolutionBackwardData(RHD_CUDNN(ctx), &one, p.w, h.w, p.y, h.y, p.conv, ad.algo,
                                                     ws + p.pad_bytes, ws_data, &zero, p.x, h.out));
            rhd_cuda_from_bf16(ctx, p.padded ? pad : dx, h.out, p.nx, 0);
        } else {
            CUDNN_CHECK(cudnnConvolutionBackwardData(RHD_CUDNN(ctx), &one, p.w, W, p.y, dy, p.conv, ad.algo,
                                                     ws + p.pad_bytes, ws_data, &zero, p.x, p.padded ? pad : dx));
        }
        if (p.padded) {
            int64_t NC = (int64_t)d->N * d->Cin;
            crop_kernel<<<rhd_grid1d(NC * d->H * d->W, 256), 256, 0, RHD_CUDA_STREAM(ctx)>>>(dx, pad, NC, d->H, d->W,
                                                                                             p.Hp, p.Wp, d->pad_t,
                                                                                             d->pad_l);
            CUDA_CHECK(cudaGetLastError());
        }
    }
    if (dW) {
        const float *xin = x;
        if (p.padded) {
            launch_pad(ctx, pad, x, &p, d);
            xin = pad;
        }
        set_math(&p, af.mathType);
        if (p.bf16) {
            rhd_cuda_to_bf16(ctx, h.x, xin, p.nx);
            CUDNN_CHECK(cudnnConvolutionBackwardFilter(RHD_CUDNN(ctx), &one, p.x, h.x, p.y, h.y, p.conv, af.algo,
                                                       ws + p.pad_bytes, ws_filter, &zero, p.w, h.out));
            rhd_cuda_from_bf16(ctx, dW, h.out, p.nw, 1);
        } else {
            CUDNN_CHECK(cudnnConvolutionBackwardFilter(RHD_CUDNN(ctx), &one, p.x, xin, p.y, dy, p.conv, af.algo,
                                                       ws + p.pad_bytes, ws_filter, &one, p.w, dW));
        }
    }
    plan_close(&p);
    CUDA_CHECK(cudaGetLastError());
}
