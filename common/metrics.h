/* common/metrics.h: image quality metrics of renders against ground truth, per view and mean,
 * and their JSON (rhd-render --metrics; the fitter's evaluation).
 *
 * Images are float RGB, (H, W, 3) interleaved, row-major, values nominally in [0,1].
 *
 * PSNR (spec/fitting.md §10.1, RodinHD's PSNRMeter): -10*log10(mean((pred - gt)^2)) with the mean
 *   over all H*W*3 values, accumulated in double. pred is NOT clamped or quantised. Identical
 *   images give +inf (written as null in JSON, with "psnr_inf": true).
 * SSIM (Wang et al. 2004): Gaussian window 11x11, sigma 1.5 (normalised 1-D taps, applied
 *   separably), K1 = 0.01, K2 = 0.03, data range 1 (C1 = 1e-4, C2 = 9e-4), population (biased)
 *   variances, "valid" filtering (no padding: the map is (H-10) x (W-10)); the SSIM map is averaged
 *   over its positions per channel, then over the 3 channels. This is pytorch_msssim.ssim(X, Y,
 *   data_range=1, size_average=False) (the package the tests check against). Both sides need
 *   H, W >= 11.
 * LPIPS: common/lpips.h (optional, needs weights).
 *
 * The mean of a table is the arithmetic mean of the per-view values (the original's reporting). */
#ifndef RHD_METRICS_H
#define RHD_METRICS_H
#include <stdint.h>
#include <stdio.h>
#include "common/err.h"

#define RHD_SSIM_WIN 11
#define RHD_SSIM_SIGMA 1.5

#ifdef __cplusplus
extern "C" {
#endif
/* Mean squared error over n values (double accumulation, fixed order). */
double rhd_mse(const float *pred, const float *gt, int64_t n);
/* PSNR of (H, W, 3) images: -10 log10(mse); +inf for identical images. */
double rhd_image_psnr(const float *pred, const float *gt, int H, int W);
/* SSIM of (H, W, 3) images as documented above. Returns 0 and *out, or -1 (H or W < 11). */
int rhd_image_ssim(const float *pred, const float *gt, int H, int W, double *out, rhd_err *e);
/* The 11 normalised Gaussian taps (exposed for tests). */
void rhd_ssim_window(double w[RHD_SSIM_WIN]);

/* Per-view metrics and their means. A metric not computed is NaN (and absent from the JSON). */
typedef struct rhd_metrics_row {
    int view;     /* original view index, or frame number */
    double psnr;  /* dB (+inf allowed) */
    double ssim;
    double lpips;
} rhd_metrics_row;

typedef struct rhd_metrics_table {
    int n, cap;
    rhd_metrics_row *rows;
    const char *lpips_net; /* "alex"/"vgg" when LPIPS was computed (written in the JSON) */
    const char *device;    /* the device that rendered (rhd_ctx_device_label), written when set */
} rhd_metrics_table;

void rhd_metrics_init(rhd_metrics_table *t);
void rhd_metrics_free(rhd_metrics_table *t);
void rhd_metrics_add(rhd_metrics_table *t, int view, double psnr, double ssim, double lpips);
/* Arithmetic means over the rows where the metric is not NaN (NaN if none). */
void rhd_metrics_mean(const rhd_metrics_table *t, double *psnr, double *ssim, double *lpips);
/* One JSON object:
 *   {"views": [{"view": 0, "psnr": 31.2, "ssim": 0.95, "lpips": 0.04}, ...],
 *    "mean": {"psnr": ..., "ssim": ..., "lpips": ...}, "count": N, "lpips_net": "alex"}
 * Numbers round-trip (15 or 17 significant digits); non-finite PSNR as null plus "psnr_inf": true. */
int rhd_metrics_write_json(const rhd_metrics_table *t, FILE *f);
#ifdef __cplusplus
}
#endif
#endif
