/* tests/models/test_train_upsample.c: the "upsample" model kind of the trainer
 * (common/train_upsample.h) against direct rhd_ups_train_step calls.
 *   - one micro-batch of two items (two pairs read through the data loader, unequal weights, one
 *     with the all-ones null condition, the rendering loss on at 2 patches of tests/data/mini's
 *     views with a random decoder) gives bit-equal parameter gradients and the same loss terms as
 *     rhd_ups_train_step called on each item with inputs built here independently: the planes read
 *     from the triplane file, ref from the moments, the patches from the dataset, every draw keyed as
 *     train_upsample.h documents, grad_scale w_b / n;
 *   - the kind's config JSON reads back to the same config, its diffusion JSON is the contract's;
 *   - a decoder of other channels is refused at create, naming both counts;
 *   - with a precomputed low-res folder (--low-res, random planes written here as safetensors) the
 *     condition the network reads is the file's planes rolled out, bit for bit (rolled here by
 *     index), and a folder without a pair's file is refused by the kind's validate, naming it. */
#include "common/models/diffusion.h"
/* kernels/diffusion.h and kernels/rays.h (through render_loss.h) define the same fp32 helper macros
 * differently; this file uses neither */
#undef RHD_FMUL
#undef RHD_FADD
#undef RHD_FSUB
#include <math.h>
#include "refcheck.h"
#include "common/models/sampler.h"
#include "common/fs.h"
#include "common/model_io.h"
#include "common/rng.h"
#include "common/train_upsample.h"
#include "common/upsampler_train.h"
#include "formats/triplane_file.h"
#include "models/test_train_pairs.h"

enum { C = 8, R = 16, K = 2 };
static const char *k_cfg = "{\"in_ch\": 8, \"out_ch\": 8, \"cond_ch\": 8, \"n_feats\": 16, \"groups\": 8, \"temb_ch\": 16, "
                           "\"temb_dim\": 64, \"embed_dim\": 16, \"pool_heads\": 4, \"latent_size\": 8, \"patch\": 8, "
                           "\"head_ch\": 16, \"num_res_blocks\": 1, \"n_resblocks\": 2}";

/* the documented derivation sub(k, u) */
static uint64_t sub(uint64_t key, uint64_t use) {
    uint64_t z = key + 0x9e3779b97f4a7c15ull * (use + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* One item through rhd_ups_train_step with inputs made here. */
static rhd_ups_step_out direct_item(rhd_ups_trainer *tr, const rhd_train_data *d, const char *views, int pair, int t,
                                    double wscale, int uncond, uint64_t key, uint32_t step) {
    rhd_err e = {0};
    rhd_triplane tp;
    if (rhd_triplane_file_read(d->pair[pair].triplane, &tp, NULL, &e)) th_diag("%s", e.msg), exit(1);
    rhd_st *st;
    if (rhd_st_open(d->pair[pair].features, &st, &e)) th_diag("%s", e.msg), exit(1);
    const rhd_ups_config *c = &tr->model->cfg;
    const int64_t nref = (int64_t)c->latent_ch * c->latent_size * c->latent_size;
    float *mom = malloc(sizeof(float) * 2 * nref), *ref = malloc(sizeof(float) * nref);
    rhd_st_to_f32(rhd_st_find(st, "moments"), mom);
    rhd_st_close(st);
    const uint64_t stream = RHD_STREAM(RHD_STREAM_DIFFUSION, step);
    if (uncond) for (int64_t k = 0; k < nref; k++) ref[k] = 1.f;
    else rhd_unet_cond_sample(ref, mom, 1, c->latent_ch, c->latent_size, RHD_UNET_NOISE_UNIFORM, sub(key, 1), stream, 0);
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/%s", views, d->pair[pair].name);
    rhd_dataset ds;
    if (rhd_dataset_open(&ds, dir, NULL, 0, NULL, &e)) th_diag("%s", e.msg), exit(1);
    rhd_render_patch pp[K];
    rhd_ups_render_target tg[K];
    for (int k = 0; k < K; k++) {
        if (rhd_render_loss_make_patch(&tr->rl->o, &ds, sub(key, 5), stream, (uint64_t)k << 8, k ? pp[0].ds : 0, &pp[k], &e))
            th_diag("%s", e.msg), exit(1);
        tg[k] = (rhd_ups_render_target){pp[k].cam, pp[k].x0, pp[k].y0, pp[k].gt};
    }
    const uint64_t nkey = sub(key, 2);
    rhd_ups_batch b = {.N = 1, .hr = tp.planes, .ref = ref, .t = &t, .noise_keys = &nkey, .step = step,
                       .deg_seed = sub(key, 3), .deg_stream = stream, .grid_seed = sub(key, 4), .targets = tg,
                       .per_sample = K, .grad_scale = (float)wscale};
    rhd_ups_step_out o;
    rhd_ups_train_step(tr, &b, R, &o);
    for (int k = 0; k < K; k++) rhd_render_patch_free(&pp[k]);
    rhd_dataset_close(&ds);
    rhd_triplane_free(&tp);
    free(mom), free(ref);
    return o;
}

/* --low-res: the network's condition vs the file (render loss off, one item). */
static void low_res_check(const rhd_train_model_ops *ops, rhd_train_data *d, const char *dir, rhd_ctx *cpu) {
    enum { r = R / 4 };
    rhd_err e = {0};
    char ldir[1200], path[1300], bad[1200];
    snprintf(ldir, sizeof ldir, "%s/low", dir), snprintf(bad, sizeof bad, "%s/lowbad", dir);
    snprintf(path, sizeof path, "%s/x", bad);
    if (rhd_mkdir_parents(path, &e)) th_diag("%s", e.msg), exit(1);
    float *want[2];
    for (int i = 0; i < 2; i++) {
        want[i] = th_randn(3 * C * r * r, 0.5f);
        rhd_triplane t = rhd_triplane_view(want[i], C, r, 0, NULL);
        snprintf(path, sizeof path, "%s/%s.safetensors", ldir, d->pair[i].name);
        if (rhd_mkdir_parents(path, &e) || rhd_triplane_file_write(path, &t, NULL, &e)) th_diag("%s", e.msg), exit(1);
        snprintf(path, sizeof path, "%s/%s.safetensors", bad, d->pair[i].name);
        if (i == 0 && rhd_triplane_file_write(path, &t, NULL, &e)) th_diag("%s", e.msg), exit(1); /* only the first */
    }
    rhd_train_ups_opts uo;
    rhd_train_ups_opts_default(&uo);
    uo.R = R, uo.render_weight = uo.lpips_weight = 0, uo.low_res = bad;
    rhd_train_ups_configure(&uo);
    rhd_train_model *m = ops->create(k_cfg, "small", -1, cpu, &e);
    int rc = m ? ops->validate(m, d, 0, 1, &e) : -2;
    th_ok(rc == -1 && strstr(e.msg, d->pair[1].name) && strstr(e.msg, "lowbad"),
          "--low-res folder without pair '%s': validate refuses it: %s", d->pair[1].name, e.msg);
    if (m) ops->free(m);
    uo.low_res = ldir;
    rhd_train_ups_configure(&uo);
    m = ops->create(k_cfg, "small", -1, cpu, &e);
    if (!m || ops->validate(m, d, 0, 1, &e)) { th_ok(0, "--low-res model and validate: %s", e.msg); return; }
    ops->init(m, th_seed());
    rhd_train_trace trace = {0};
    m->trace = &trace;
    for (int p = 0; p < 2; p++) {
        const int pair[1] = {p}, t[1] = {(int)(th_seed() % 100)}, unc[1] = {0};
        const double w[1] = {1};
        uint64_t key[1] = {rhd_noise_key(th_seed(), "low")};
        rhd_train_mb mb = {.n = 1, .pair = pair, .t = t, .w = w, .uncond = unc, .key = key, .step = 1, .seed = th_seed(), .data = d};
        rhd_diffusion_terms terms[1];
        rhd_buf_zero(cpu, ops->params(m)->grad, sizeof(float) * ops->params(m)->total);
        if (ops->micro_step(m, &mb, terms, &e)) { th_ok(0, "micro_step with --low-res: %s", e.msg); break; }
        float rolled[C * r * 3 * r];
        for (int q = 0; q < 3; q++)
            for (int c = 0; c < C; c++)
                for (int i = 0; i < r; i++)
                    for (int j = 0; j < r; j++) rolled[(c * r + i) * 3 * r + q * r + j] = want[p][((q * C + c) * r + i) * r + j];
        char what[160];
        snprintf(what, sizeof what, "--low-res: the network's condition of pair '%s' = the file's planes rolled (%d x %d x %d)",
                 d->pair[p].name, C, r, 3 * r);
        th_same_bytes(what, trace.low, rolled, C * r * 3 * r, sizeof(float));
    }
    free(trace.low), free(want[0]), free(want[1]);
    ops->free(m);
}

int main(void) {
    rhd_err e = {0};
    rhd_ctx *cpu = rhd_ctx_open("cpu", &e);
    const char *dir = th_subdir("train_upsample"), *root = getenv("RHD_ROOT");
    char views[1024], p1[1200], p2[1200], dec_path[1200], dec4_path[1200];
    snprintf(views, sizeof views, "%s/tests/data/mini", root ? root : ".");
    snprintf(p1, sizeof p1, "%s/tri/x", dir), snprintf(p2, sizeof p2, "%s/feat/x", dir);
    if (rhd_mkdir_parents(p1, &e) || rhd_mkdir_parents(p2, &e)) th_diag("%s", e.msg), exit(1);
    /* pairs named after the mini avatars (their views serve the render loss), features of 8x8 latents */
    rhd_unet_config uc;
    rhd_unet_config_preset(&uc, "small", &e);
    uc.in_channels = C, uc.latent_size = 8;
    th_train_pair(dir, "avatar_100", &uc, R, 0.3f, 0), th_train_pair(dir, "avatar_101", &uc, R, 0.3f, 0);
    /* random decoders of C and of 4 channels */
    for (int v = 0; v < 2; v++) {
        rhd_decoder dec;
        rhd_decoder_cfg dc;
        rhd_decoder_cfg_default(&dc);
        dc.C = v ? 4 : C;
        if (rhd_decoder_init(&dec, &dc, cpu, 0, &e)) th_diag("%s", e.msg), exit(1);
        rhd_decoder_init_weights(&dec, th_seed() + v);
        rhd_decoder_file_info info = {.triplane_res = R, .bound = 1};
        snprintf(v ? dec4_path : dec_path, sizeof dec_path, "%s/dec%d.safetensors", dir, v);
        if (rhd_decoder_file_write(v ? dec4_path : dec_path, &dec, &info, "test", &e)) th_diag("%s", e.msg), exit(1);
        rhd_decoder_free(&dec);
    }
    rhd_train_data d = {0};
    snprintf(p1, sizeof p1, "%s/tri", dir), snprintf(p2, sizeof p2, "%s/feat", dir);
    if (rhd_train_pairs_from_dirs(&d, p1, p2, &e)) th_diag("%s", e.msg), exit(1);

    rhd_train_ups_opts uo;
    rhd_train_ups_opts_default(&uo);
    uo.R = R, uo.decoder = dec4_path, uo.views = views, uo.lpips_weight = 0, uo.patch = 16, uo.patches = K;
    uo.grid_size = 16, uo.max_steps = 32;
    rhd_train_ups_configure(&uo);
    const rhd_train_model_ops *ops = rhd_train_model_kind("upsample");
    th_ok(ops && !strcmp(ops->diffusion_json, "{\"steps\":100,\"schedule\":\"sigmoid\",\"pred\":\"xstart\",\"var\":"
                         "\"fixed_large\",\"time_scale\":1}"), "the upsample kind is registered, diffusion %s",
          ops ? ops->diffusion_json : "-");
    if (!ops) return th_done();
    rhd_train_model *bad = ops->create(k_cfg, "small", -1, cpu, &e);
    th_ok(!bad && strstr(e.msg, "decoder reads 4 channels, the upsampler predicts 8"), "a 4-channel decoder: %s", e.msg);
    uo.decoder = dec_path;
    rhd_train_ups_configure(&uo);
    rhd_train_model *m = ops->create(k_cfg, "small", -1, cpu, &e);
    if (!m) { th_ok(0, "the upsample model builds: %s", e.msg); return th_done(); }
    ops->setup_data(m, &d, RHD_DOWNSAMPLE_AREA, 1 << 20);
    if (rhd_train_data_validate(&d, 0, 1, &e)) th_diag("%s", e.msg), exit(1);
    ops->init(m, th_seed());
    rhd_params *P = ops->params(m);

    /* config JSON round trip */
    char *js = ops->config_json(m);
    rhd_ups_config back;
    rhd_ups_config_official(&back);
    int rt = !rhd_ups_config_from_json(&back, js, strlen(js), "config_json", &e);
    rhd_ups_config want;
    rhd_ups_config_small(&want);
    rhd_ups_config_from_json(&want, k_cfg, strlen(k_cfg), "k_cfg", &e);
    const rhd_ups_config *mc = &want;
    th_ok(rt && !memcmp(&back, mc, sizeof back), "config_json reads back to the small preset with the test's fields: %s", js);
    free(js);

    /* the kind's micro-batch */
    const int pair[2] = {1, 0}, t[2] = {(int)(th_seed() % 100), 99}, unc[2] = {0, 1};
    const double w[2] = {0.7, 1.3};
    uint64_t key[2] = {rhd_noise_key(th_seed(), "a"), rhd_noise_key(th_seed(), "b")};
    rhd_train_mb mb = {.n = 2, .first_slot = 0, .pair = pair, .t = t, .w = w, .uncond = unc, .key = key, .step = 3,
                       .seed = th_seed(), .data = &d};
    rhd_diffusion_terms terms[2];
    rhd_buf_zero(cpu, P->grad, sizeof(float) * P->total);
    int rc = ops->micro_step(m, &mb, terms, &e);
    th_ok(rc == 0, "micro_step of 2 items with 2 render patches each: %s", rc ? e.msg : "ran");
    float *gk = malloc(sizeof(float) * P->total);
    memcpy(gk, P->grad, sizeof(float) * P->total);

    /* the same through rhd_ups_train_step on a second network with the same weights */
    rhd_ups_config cfg = *mc;
    rhd_upsampler *net = rhd_ups_create(&cfg, cpu, NULL, "", 1, &e);
    memcpy(net->base.params.data, P->data, sizeof(float) * P->total);
    rhd_diffusion_schedule sched;
    rhd_diffusion_schedule_named(&sched, RHD_BETA_SIGMOID, 100, &e);
    rhd_decoder dec;
    rhd_decoder_file_info info;
    if (rhd_decoder_file_read(dec_path, cpu, 0, &dec, &info, &e)) th_diag("%s", e.msg), exit(1);
    rhd_render_loss_opts ro;
    rhd_render_loss_opts_default(&ro);
    ro.w_lpips = 0, ro.patch = 16, ro.count = K, ro.render.grid_size = 16, ro.render.max_steps = 32;
    rhd_render_loss rl;
    if (rhd_render_loss_init(&rl, cpu, &dec, NULL, &ro, &e)) th_diag("%s", e.msg), exit(1);
    rhd_ups_train_opts to;
    rhd_ups_train_opts_default(&to);
    rhd_ups_trainer tr;
    rhd_ups_trainer_init(&tr, net, &sched, &rl, &to);
    rhd_nn_model_zero_grad(&net->base);
    double dterm[2][2];
    for (int b = 0; b < 2; b++) {
        rhd_ups_step_out o = direct_item(&tr, &d, views, pair[b], t[b], w[b] / 2, unc[b], key[b], 3);
        dterm[b][0] = o.rec, dterm[b][1] = o.render;
    }
    th_same_bytes("parameter gradients: the kind's micro-batch vs two direct rhd_ups_train_step calls", gk,
                  net->base.params.grad, P->total, sizeof(float));
    double gmax = 0;
    for (int64_t i = 0; i < P->total; i++) gmax = fmax(gmax, fabs(gk[i]));
    th_ok(gmax > 0, "gradients are not all zero (max |g| %.3e over %lld values)", gmax, (long long)P->total);
    int same = 1;
    for (int b = 0; b < 2; b++)
        same &= terms[b].mse == dterm[b][0] && terms[b].vb == dterm[b][1] && terms[b].loss == dterm[b][0] + dterm[b][1];
    th_ok(same && dterm[0][1] > 0 && dterm[1][1] > 0, "terms equal: item 0 x0 MSE %.6g + render %.6g, item 1 (null "
          "condition, t 99) %.6g + %.6g", dterm[0][0], dterm[0][1], dterm[1][0], dterm[1][1]);

    low_res_check(ops, &d, dir, cpu);

    rhd_render_loss_free(&rl);
    rhd_decoder_free(&dec);
    rhd_diffusion_schedule_free(&sched);
    rhd_nn_model_free(&net->base);
    free(gk);
    ops->free(m);
    rhd_train_data_free(&d);
    rhd_ctx_close(cpu);
    return th_done();
}
