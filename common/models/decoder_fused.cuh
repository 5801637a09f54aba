/* common/models/decoder_fused.cuh: the device code of the fused inference kernel (see decoder.cu,
 * which launches it). Kept apart so that tests/models/test_fused_emu.cpp can compile the very same
 * kernel for the CPU (one thread per CUDA thread, a barrier for __syncthreads) and check it
 * against the per-layer decoder on every test run, GPU or not. RHD_FUSED_SMEM(name) declares the
 * dynamic shared memory as a float4 pointer `name`. */
#ifndef RHD_MODELS_DECODER_FUSED_CUH
#define RHD_MODELS_DECODER_FUSED_CUH
#ifndef RHD_FUSED_SMEM
#define RHD_FUSED_SMEM(name) extern __shared__ float4 name[]
#endif

#define FUSED_T 32
#define FUSED_LD 36 /* row stride of the shared tiles: float4-aligned, and a warp's row stores hit
                     * distinct banks (lane o starts at bank 4o) */
#define FUSED_THREADS 128

typedef struct fused_args {
    const float *packed; /* [3, R, R, C] */
    int C, R, Cc, Cd, Ec, Ed, Edir, geo, hid, g1, Cin, degree, agg;
    const float *w0t, *b0, *w2t, *b2, *c0t, *c1t, *c2t; /* transposed weights [in][out] */
    const float *points, *dirs;
    float *sigma, *rgb; /* rgb NULL: density only */
    int64_t M;
} fused_args;

/* out[o][t] = act(b[o] + sum_k wt[k][o] in[k][t]) for o < O (wt rows of length ldw): one thread
 * per output row, the FUSED_T sums in registers, the inputs read as shared-memory broadcasts. */
static __device__ void dense_rows(float *out, const float *in, int K, const float *wt, int ldw, const float *b, int O,
                                  int act) {
    for (int o = threadIdx.x; o < O; o += blockDim.x) {
        float acc[FUSED_T];
        float b0 = b ? b[o] : 0.f;
#pragma unroll
        for (int t = 0; t < FUSED_T; t++) acc[t] = b0;
        for (int k = 0; k < K; k++) {
            float w = __ldg(wt + (int64_t)k * ldw + o);
            const float4 *v = (const float4 *)(in + k * FUSED_LD);
#pragma unroll
            for (int q = 0; q < FUSED_T / 4; q++) {
                float4 x = v[q];
                acc[4 * q] += w * x.x, acc[4 * q + 1] += w * x.y, acc[4 * q + 2] += w * x.z, acc[4 * q + 3] += w * x.w;
            }
        }
        float4 *dst = (float4 *)(out + o * FUSED_LD);
#pragma unroll
        for (int q = 0; q < FUSED_T / 4; q++)
            dst[q] = make_float4(rhd_act_apply((rhd_act)act, acc[4 * q]), rhd_act_apply((rhd_act)act, acc[4 * q + 1]),
                                 rhd_act_apply((rhd_act)act, acc[4 * q + 2]), rhd_act_apply((rhd_act)act, acc[4 * q + 3]));
    }
}

/* The same for narrow layers, the first O outputs of wt (rows of length ldw >= O): one thread per
 * (output, sample), handing each sum to emit(o, t, value). */
template <typename Emit>
static __device__ void dense_pairs(const float *in, int K, const float *wt, int ldw, const float *b, int O, Emit emit) {
    for (int p = threadIdx.x; p < O * FUSED_T; p += blockDim.x) {
        int o = p / FUSED_T, t = p % FUSED_T;
        float acc = b ? b[o] : 0.f;
        for (int k = 0; k < K; k++) acc += __ldg(wt + (int64_t)k * ldw + o) * in[k * FUSED_LD + t];
        emit(o, t, acc);
    }
}

static __global__ void __launch_bounds__(FUSED_THREADS) fused_kernel(fused_args a) {
    RHD_FUSED_SMEM(smem4);
    float *sm = (float *)smem4;
    const int T = FUSED_T, LD = FUSED_LD;
    float *X = sm;                                   /* [Cin][LD]: enc(fc) | geo | enc(dir) */
    float *Y = X + (int64_t)a.Cin * LD;              /* [hid][LD] */
    float *Z = Y + (int64_t)a.hid * LD;              /* [max(hid, C)][LD] */
    int zrows = a.hid > a.C ? a.hid : a.C;
    float *E = Z + (int64_t)zrows * LD;              /* [Ed][LD]: enc(fd) */
    float *P = E + (int64_t)a.Ed * LD;               /* [T][3] points */
    float *D = P + 3 * T;                            /* [T][3] dirs */
    const int64_t m0 = (int64_t)blockIdx.x * T;
    const int n = a.M - m0 < T ? (int)(a.M - m0) : T;
    const int density_only = a.rgb == NULL;

    for (int i = threadIdx.x; i < 3 * T; i += blockDim.x) {
        int t = i / 3;
        P[i] = t < n ? a.points[3 * m0 + i] : 0.f;
        D[i] = t < n && !density_only ? a.dirs[3 * m0 + i] : 0.f;
    }
    __syncthreads();
    /* triplane features -> Z [C][LD] (colour rows 0..Cc-1, density rows Cc..C-1); neighbouring
     * threads take neighbouring channels of one sample, so each tap's gather is coalesced on the
     * channels-last planes. Density only: just the density channels. */
    const int c0 = density_only ? a.Cc : 0, nc = a.C - c0;
    for (int i = threadIdx.x; i < nc * T; i += blockDim.x) {
        int t = i / nc, c = c0 + i % nc;
        float s[3];
        Z[c * LD + t] = rhd_triplane_sample_packed(P + 3 * t, a.packed, a.C, a.R, c, a.agg, s);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < a.Cd * T; i += blockDim.x) {
        int d = i / T, t = i % T;
        rhd_freq_encode_value_strided(E + t, LD, Z[(a.Cc + d) * LD + t], d, a.Cd, a.degree);
    }
    if (!density_only) {
        for (int i = threadIdx.x; i < a.Cc * T; i += blockDim.x) {
            int d = i / T, t = i % T;
            rhd_freq_encode_value_strided(X + t, LD, Z[d * LD + t], d, a.Cc, a.degree);
        }
        for (int i = threadIdx.x; i < 3 * T; i += blockDim.x) {
            int d = i / T, t = i % T;
            rhd_freq_encode_value_strided(X + (int64_t)(a.Ec + a.geo) * LD + t, LD, D[3 * t + d], d, 3, a.degree);
        }
    }
    __syncthreads();
    dense_rows(Y, E, a.Ed, a.w0t, a.hid, a.b0, a.hid, RHD_ACT_SOFTPLUS); /* sigma_net.0 + softplus */
    __syncthreads();
    /* sigma_net.2: row 0 is the density (one thread per sample), rows 1.. the geometry features
     * into X rows Ec .. Ec+geo-1 */
    dense_pairs(Y, a.hid, a.w2t, a.g1, a.b2, 1, [&](int, int t, float v) {
        if (t < n) a.sigma[m0 + t] = rhd_trunc_exp(v);
    });
    if (density_only) return;
    dense_rows(X + (int64_t)a.Ec * LD, Y, a.hid, a.w2t + 1, a.g1, a.b2 + 1, a.geo, RHD_ACT_IDENTITY);
    __syncthreads();
    dense_rows(Y, X, a.Cin, a.c0t, a.hid, NULL, a.hid, RHD_ACT_RELU); /* color_net.0 + relu */
    __syncthreads();
    dense_rows(Z, Y, a.hid, a.c1t, a.hid, NULL, a.hid, RHD_ACT_RELU); /* color_net.1 + relu */
    __syncthreads();
    dense_pairs(Z, a.hid, a.c2t, 3, NULL, 3, [&](int o, int t, float v) { /* color_net.2 + sigmoid */
        if (t < n) a.rgb[3 * (m0 + t) + o] = rhd_sigmoid(v);
    });
}

static size_t fused_smem(const rhd_decoder *d) {
    int zrows = d->cfg.hidden > d->cfg.C ? d->cfg.hidden : d->cfg.C;
    return sizeof(float) * (FUSED_LD * ((size_t)d->Cin + d->cfg.hidden + zrows + d->Ed) + 6 * FUSED_T);
}

#endif
