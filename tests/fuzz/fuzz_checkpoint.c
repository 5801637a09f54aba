/* tests/fuzz/fuzz_checkpoint.c: libFuzzer target for the model files of the fitting stage, read as
 * the tools read them (common/model_io.h, from a file since the readers take paths): the decoder
 * reader (kind decoder or checkpoint, sizes from the shapes), then on success the stage-1 fit
 * checkpoint (formats/checkpoint.md: progress metadata, Adam moments) with its stored plan parsed,
 * and the IWC reader against that decoder; independently the triplane reader. Any input is
 * accepted or refused with a message; an accepted checkpoint must write back and read again to
 * the same progress (a fixed point). Never a crash or a sanitizer report.
 * Seeds: tests/fuzz/corpus/checkpoint/ (tests/fuzz/corpus_model_files.py). */
#include "common/backend.h"
#include "common/log.h"
#include "common/model_io.h"
#include "common/plan.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static rhd_ctx *g_ctx;
static char g_in[256], g_out[256];

static void setup(void) {
    if (g_ctx) return;
    rhd_log_set_level(0);
    rhd_err e;
    g_ctx = rhd_ctx_open("cpu", &e);
    if (!g_ctx) abort();
    const char *tmp = getenv("TMPDIR");
    snprintf(g_in, sizeof g_in, "%s/fuzz_checkpoint.%d.safetensors", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    snprintf(g_out, sizeof g_out, "%s/fuzz_checkpoint.%d.out.safetensors", tmp && *tmp ? tmp : "/tmp", (int)getpid());
}

static void checkpoint_fixed_point(rhd_decoder *dec, const rhd_fit_checkpoint *c) {
    rhd_err e;
    if (rhd_fit_checkpoint_write(g_out, dec, c, "fuzz", &e)) abort(); /* what was read can be written */
    rhd_decoder d2;
    rhd_fit_checkpoint c2;
    if (rhd_decoder_file_read(g_out, g_ctx, 1, &d2, NULL, &e) || rhd_fit_checkpoint_read(g_out, &d2, &c2, &e)) abort();
    if (c2.entries_done != c->entries_done || c2.step != c->step || c2.seed != c->seed || strcmp(c2.plan, c->plan) ||
        (!c2.records) != (!c->records) || (c->records && strcmp(c2.records, c->records)))
        abort();
    rhd_fit_checkpoint_free(&c2);
    rhd_decoder_free(&d2);
    unlink(g_out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    FILE *f = fopen(g_in, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) abort();
    rhd_err e;
    rhd_decoder dec;
    rhd_decoder_file_info info;
    if (rhd_decoder_file_read(g_in, g_ctx, 1, &dec, &info, &e) == 0) {
        rhd_fit_checkpoint c;
        if (rhd_fit_checkpoint_read(g_in, &dec, &c, &e) == 0) {
            rhd_plan p; /* resume compares the stored plan with the run's: it must parse or be refused */
            if (rhd_plan_parse(c.plan, strlen(c.plan), "rhd.plan", &p, &e) == 0) rhd_plan_free(&p);
            checkpoint_fixed_point(&dec, &c);
            rhd_fit_checkpoint_free(&c);
        }
        float *fisher, *optpar;
        int entry;
        if (rhd_iwc_file_read(g_in, &dec, &fisher, &optpar, &entry, &e) == 0) free(fisher), free(optpar);
        rhd_decoder_free(&dec);
    }
    rhd_triplane t;
    rhd_triplane_alloc(&t, 4, 4, 1, NULL);
    int entry;
    if (rhd_triplane_load(g_in, &t, 1, &entry, &e) == 0 && t.R != 4) abort(); /* resized to the asked size */
    rhd_triplane_free(&t);
    unlink(g_in);
    return 0;
}
