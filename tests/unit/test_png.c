/* tests/unit/test_png.c: formats/png against an independent writer and reader (pypng, through
 * tests/ref/png_ref.py), round trips, and malformed files.
 *
 *  1. every colour type and bit depth written by pypng (gray 1/2/4/8/16, gray+alpha, RGB, RGBA,
 *     palette 1/2/4/8, tRNS variants, interlaced) reads back exactly as the RGBA pypng was given;
 *  2. our writer (gray, gray+alpha, RGB, RGBA at 8 and 16 bits, round and trunc) read by pypng
 *     gives exactly the integers the documented quantisation gives;
 *  3. round trips: read(write(x)) = quantise(x), and write(read(f)) reproduces the pixels;
 *  4. malformed files (truncated at every offset, bad CRC, bad signature, absurd or zero IHDR
 *     sizes, a bad bit depth, a corrupt zlib stream, an empty file) give -1 and a message naming
 *     the file; random mutations never crash (run under `make SAN=1 test` for leaks and UB);
 *  5. writer argument errors and the atomic write. */
#include "refcheck.h"
#include "formats/png.h"
#include "common/fs.h"
#include <stdint.h>
#include <unistd.h>

/* --- helpers ------------------------------------------------------------------------------ */

static uint32_t crc32_png(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* Recompute the CRC of the chunk starting at offset off (length field) in buf. */
static void fix_crc(unsigned char *buf, size_t off) {
    uint32_t len = (uint32_t)buf[off] << 24 | (uint32_t)buf[off + 1] << 16 | (uint32_t)buf[off + 2] << 8 | buf[off + 3];
    put32(buf + off + 8 + len, crc32_png(buf + off + 4, 4 + len));
}

/* Offset of the first chunk of the given type (its length field), or 0. */
static size_t find_chunk(const unsigned char *buf, size_t n, const char *type) {
    size_t off = 8;
    while (off + 12 <= n) {
        uint32_t len = (uint32_t)buf[off] << 24 | (uint32_t)buf[off + 1] << 16 | (uint32_t)buf[off + 2] << 8 | buf[off + 3];
        if (memcmp(buf + off + 4, type, 4) == 0) return off;
        off += 12 + (size_t)len;
    }
    return 0;
}

static int has(const char *msg, const char *sub) {
    return strstr(msg, sub) != NULL;
}

/* --- 1. pypng-written files of every colour type ---------------------------------------- */

typedef struct {
    const char *name, *ctype;
    int depth, trns, w, h, interlace;
    int color_type, has_alpha;
} read_case;

static const read_case read_cases[] = {
    {"gray1", "gray", 1, 0, 13, 7, 0, RHD_PNG_GRAY, 0},
    {"gray2", "gray", 2, 0, 9, 5, 0, RHD_PNG_GRAY, 0},
    {"gray4", "gray", 4, 0, 11, 3, 0, RHD_PNG_GRAY, 0},
    {"gray8", "gray", 8, 0, 17, 9, 0, RHD_PNG_GRAY, 0},
    {"gray16", "gray", 16, 0, 5, 4, 0, RHD_PNG_GRAY, 0},
    {"gray2_trns", "gray", 2, 1, 10, 6, 0, RHD_PNG_GRAY, 1},
    {"gray8_trns", "gray", 8, 1, 7, 6, 0, RHD_PNG_GRAY, 1},
    {"gray16_trns", "gray", 16, 1, 6, 5, 0, RHD_PNG_GRAY, 1},
    {"graya8", "graya", 8, 0, 15, 4, 0, RHD_PNG_GRAY_ALPHA, 1},
    {"graya16", "graya", 16, 0, 3, 8, 0, RHD_PNG_GRAY_ALPHA, 1},
    {"rgb8", "rgb", 8, 0, 16, 16, 0, RHD_PNG_RGB, 0},
    {"rgb16", "rgb", 16, 0, 7, 3, 0, RHD_PNG_RGB, 0},
    {"rgb8_trns", "rgb", 8, 1, 9, 9, 0, RHD_PNG_RGB, 1},
    {"rgb16_trns", "rgb", 16, 1, 4, 6, 0, RHD_PNG_RGB, 1},
    {"rgba8", "rgba", 8, 0, 21, 13, 0, RHD_PNG_RGBA, 1},
    {"rgba16", "rgba", 16, 0, 6, 7, 0, RHD_PNG_RGBA, 1},
    {"pal1", "pal", 1, 0, 19, 5, 0, RHD_PNG_PALETTE, 0},
    {"pal2", "pal", 2, 0, 7, 7, 0, RHD_PNG_PALETTE, 0},
    {"pal4", "pal", 4, 0, 13, 2, 0, RHD_PNG_PALETTE, 0},
    {"pal8", "pal", 8, 0, 31, 17, 0, RHD_PNG_PALETTE, 0},
    {"pal4_trns", "pal", 4, 1, 5, 9, 0, RHD_PNG_PALETTE, 1},
    {"pal8_trns", "pal", 8, 1, 12, 12, 0, RHD_PNG_PALETTE, 1},
    {"one_pixel", "rgba", 8, 0, 1, 1, 0, RHD_PNG_RGBA, 1},
    {"rgba8_interlaced", "rgba", 8, 0, 23, 19, 1, RHD_PNG_RGBA, 1},
    {"gray1_interlaced", "gray", 1, 0, 17, 11, 1, RHD_PNG_GRAY, 0},
    {"rgb16_interlaced", "rgb", 16, 0, 9, 10, 1, RHD_PNG_RGB, 0},
};
enum { N_READ = sizeof read_cases / sizeof read_cases[0] };

static void test_read_pypng(void) {
    const char *dir = th_subdir("read");
    char args[8192];
    size_t k = 0;
    for (int i = 0; i < N_READ; i++) {
        const read_case *c = &read_cases[i];
        k += (size_t)snprintf(args + k, sizeof args - k, " %s:%s:%d:%d:%d:%d:%d", c->name, c->ctype, c->depth, c->trns,
                              c->w, c->h, c->interlace);
    }
    if (th_ref("png_ref.py", "write %s %llu%s", dir, (unsigned long long)th_seed(), args)) {
        th_ok(0, "pypng wrote the test PNGs");
        return;
    }
    for (int i = 0; i < N_READ; i++) {
        const read_case *c = &read_cases[i];
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.png", dir, c->name);
        rhd_image img;
        rhd_err e = {{0}};
        int rc = rhd_png_read(path, &img, &e);
        if (!th_ok(rc == 0, "read pypng %s (%d-bit %s%s%s %dx%d): %s", c->name, c->depth, c->ctype,
                   c->trns ? " tRNS" : "", c->interlace ? " interlaced" : "", c->w, c->h, rc ? e.msg : "ok"))
            continue;
        long n = (long)c->w * c->h * 4;
        float *want = th_load(dir, (snprintf(path, sizeof path, "%s_want", c->name), path), n);
        long bad = 0;
        double maxabs = 0;
        for (long j = 0; want && j < n; j++) {
            double d = fabs((double)img.data[j] - want[j]);
            if (img.data[j] != want[j]) bad++;
            if (d > maxabs) maxabs = d;
        }
        th_ok(want && img.width == c->w && img.height == c->h && img.color_type == c->color_type &&
                  img.bit_depth == c->depth && img.has_alpha == c->has_alpha && img.interlaced == c->interlace && bad == 0,
              "%s: %dx%d type %s depth %d alpha %d interlaced %d; RGBA equal to what pypng was given: %ld of %ld "
              "differ, max abs %.3g",
              c->name, img.width, img.height, rhd_png_color_type_name(img.color_type), img.bit_depth, img.has_alpha,
              img.interlaced, bad, n, maxabs);
        free(want);
        rhd_image_free(&img);
    }
}

/* --- 2 and 3. our writer, read by pypng and by us ----------------------------------------- */

/* Random floats in [-0.1, 1.1] plus values on and around quantisation boundaries and NaN. */
static float *writer_input(long n, int depth) {
    float *x = th_randu(n, -0.1f, 1.1f);
    float M = depth == 16 ? 65535.0f : 255.0f;
    for (long i = 0; i < n; i += 7) {
        long k = i % 256;
        switch ((i / 7) % 5) {
        case 0: x[i] = (float)k / M; break;                  /* exactly on a level */
        case 1: x[i] = ((float)k + 0.5f) / M; break;         /* a rounding tie */
        case 2: x[i] = nextafterf((float)k / M, 0.0f); break; /* just below a level */
        case 3: x[i] = (i & 8) ? 1.0f : 0.0f; break;
        case 4: x[i] = (i & 8) ? NAN : -0.0f; break;
        }
    }
    return x;
}

static void test_writer(void) {
    const char *dir = th_subdir("write");
    enum { W = 19, H = 11 };
    static const int depths[2] = {8, 16};
    static const char *modes[2] = {"round", "trunc"};
    char args[4096];
    size_t k = 0;
    float *in[4][2][2] = {{{0}}};
    for (int ch = 1; ch <= 4; ch++)
        for (int di = 0; di < 2; di++)
            for (int m = 0; m < 2; m++) {
                char name[64], path[1024];
                long n = (long)W * H * ch;
                snprintf(name, sizeof name, "w%d_%d_%s", ch, depths[di], modes[m]);
                float *x = writer_input(n, depths[di]);
                in[ch - 1][di][m] = x;
                int64_t shape[3] = {H, W, ch};
                snprintf(path, sizeof path, "%s_in", name);
                th_save(dir, path, x, 3, shape);
                snprintf(path, sizeof path, "%s/%s.png", dir, name);
                rhd_err e = {{0}};
                int rc = rhd_png_write(path, x, W, H, ch, depths[di], m ? RHD_PNG_TRUNC : RHD_PNG_ROUND, &e);
                th_ok(rc == 0, "write %s: %s", name, rc ? e.msg : "ok");
                k += (size_t)snprintf(args + k, sizeof args - k, " %s:%d:%d:%s", name, ch, depths[di], modes[m]);
            }
    int ref = th_ref("png_ref.py", "read %s%s", dir, args);
    th_ok(ref == 0, "pypng reads every file we wrote with the expected bit depth and channels");
    for (int ch = 1; ch <= 4; ch++)
        for (int di = 0; di < 2; di++)
            for (int m = 0; m < 2; m++) {
                char name[64], path[1024];
                long n = (long)W * H * ch;
                snprintf(name, sizeof name, "w%d_%d_%s", ch, depths[di], modes[m]);
                float *got = NULL, *want = NULL;
                if (ref == 0) {
                    snprintf(path, sizeof path, "%s_got", name);
                    got = th_load(dir, path, n);
                    snprintf(path, sizeof path, "%s_want", name);
                    want = th_load(dir, path, n);
                }
                long bad = 0;
                for (long j = 0; got && want && j < n; j++) bad += got[j] != want[j];
                th_ok(got && want && bad == 0, "%s read by pypng: %ld of %ld integers differ from the documented %s quantisation",
                      name, bad, n, modes[m]);
                /* our reader: RGBA expansion of the same integers */
                snprintf(path, sizeof path, "%s/%s.png", dir, name);
                rhd_image img;
                rhd_err e = {{0}};
                int rc = rhd_png_read(path, &img, &e);
                long rbad = 0;
                float M = depths[di] == 16 ? 65535.0f : 255.0f;
                for (long p = 0; rc == 0 && want && p < (long)W * H; p++) {
                    const float *q = want + p * ch;
                    float exp4[4] = {q[0] / M, q[0] / M, q[0] / M, 1.0f};
                    if (ch >= 3) exp4[1] = q[1] / M, exp4[2] = q[2] / M;
                    if (ch == 2) exp4[3] = q[1] / M;
                    if (ch == 4) exp4[3] = q[3] / M;
                    for (int c = 0; c < 4; c++) rbad += img.data[p * 4 + c] != exp4[c];
                }
                int expect_type = (int[]){RHD_PNG_GRAY, RHD_PNG_GRAY_ALPHA, RHD_PNG_RGB, RHD_PNG_RGBA}[ch - 1];
                th_ok(rc == 0 && want && rbad == 0 && img.bit_depth == depths[di] && img.color_type == expect_type &&
                          img.has_alpha == (ch == 2 || ch == 4),
                      "%s round trip: read(write(x)) = quantise(x) (%ld of %ld differ)%s%s", name, rbad, (long)W * H * 4,
                      rc ? ": " : "", rc ? e.msg : "");
                if (rc == 0) {
                    /* write(read(f)) reproduces the file's pixels */
                    void *buf;
                    size_t nb;
                    rhd_image img2;
                    int rc2 = rhd_png_encode(img.data, W, H, 4, depths[di], RHD_PNG_ROUND, &buf, &nb, &e);
                    if (rc2 == 0) rc2 = rhd_png_decode(buf, nb, "re-encoded", &img2, &e), free(buf);
                    int same = rc2 == 0 && memcmp(img.data, img2.data, sizeof(float) * W * H * 4) == 0;
                    th_ok(same, "%s: write(read(f)) as RGBA reproduces every pixel", name);
                    if (rc2 == 0) rhd_image_free(&img2);
                }
                rhd_image_free(&img);
                free(got), free(want), free(in[ch - 1][di][m]);
            }
}

/* --- 4. malformed files ------------------------------------------------------------------- */

static int decode_msg(const unsigned char *buf, size_t n, const char *name, rhd_err *e) {
    rhd_image img;
    memset(e, 0, sizeof *e);
    int rc = rhd_png_decode(buf, n, name, &img, e);
    if (rc == 0) rhd_image_free(&img);
    return rc;
}

static void test_malformed(void) {
    enum { W = 8, H = 6 };
    float *x = th_randu(W * H * 4, 0, 1);
    void *vbuf;
    size_t n;
    rhd_err e;
    RHD_ASSERT(rhd_png_encode(x, W, H, 4, 8, 0, &vbuf, &n, &e) == 0);
    free(x);
    unsigned char *good = vbuf, *buf = malloc(n + 64);
    th_ok(decode_msg(good, n, "good.png", &e) == 0, "the unmodified %zu-byte file decodes", n);

    /* truncated at every offset */
    long bad = 0, badmsg = 0;
    for (size_t cut = 0; cut < n; cut++) {
        memcpy(buf, good, cut);
        int rc = decode_msg(buf, cut, "cut.png", &e);
        if (rc != -1) bad++;
        else if (strncmp(e.msg, "cut.png: ", 9) != 0 || !(has(e.msg, "truncated") || has(e.msg, "empty file"))) {
            if (badmsg++ < 3) th_diag("cut at %zu: %s", cut, e.msg);
        }
    }
    th_ok(bad == 0 && badmsg == 0, "truncated at each of %zu offsets: -1 each time (%ld not), message names the file and "
          "says truncated (%ld do not)", n, bad, badmsg);
    decode_msg(good, n - 12, "noiend.png", &e);
    th_diag("e.g. without IEND: %s", e.msg);
    decode_msg(good, 30, "cut30.png", &e);
    th_diag("e.g. cut at 30: %s", e.msg);

    size_t ihdr = find_chunk(good, n, "IHDR"), idat = find_chunk(good, n, "IDAT");
    RHD_ASSERT(ihdr == 8 && idat > 0);

    /* zero-length */
    int rc = decode_msg(good, 0, "empty.png", &e);
    th_ok(rc == -1 && has(e.msg, "empty.png: empty file, expected a PNG"), "zero-length file: %s", e.msg);

    /* bad signature */
    memcpy(buf, good, n);
    buf[1] = 'Q';
    rc = decode_msg(buf, n, "sig.png", &e);
    th_ok(rc == -1 && has(e.msg, "sig.png: not a PNG (bad signature)"), "bad signature: %s", e.msg);
    rc = decode_msg((const unsigned char *)"{\"cameras\": []}\n", 16, "text.png", &e);
    th_ok(rc == -1 && has(e.msg, "text.png: not a PNG"), "a text file: %s", e.msg);

    /* bad CRC in IHDR and in IDAT */
    memcpy(buf, good, n);
    buf[ihdr + 8 + 13] ^= 0x55;
    rc = decode_msg(buf, n, "crc.png", &e);
    th_ok(rc == -1 && has(e.msg, "crc.png: ") && has(e.msg, "IHDR") && has(e.msg, "CRC"), "bad IHDR CRC: %s", e.msg);
    memcpy(buf, good, n);
    uint32_t idat_len = (uint32_t)good[idat] << 24 | (uint32_t)good[idat + 1] << 16 | (uint32_t)good[idat + 2] << 8 | good[idat + 3];
    buf[idat + 8 + idat_len + 1] ^= 0x01; /* the CRC field itself: the data still inflates */
    rc = decode_msg(buf, n, "crc2.png", &e);
    th_ok(rc == -1 && has(e.msg, "crc2.png: ") && has(e.msg, "IDAT") && has(e.msg, "CRC"), "bad IDAT CRC: %s", e.msg);

    /* IHDR sizes (CRC fixed so that the size check itself is what fails) */
    static const struct { uint32_t w, h; const char *expect; } sizes[] = {
        {20000, 6, "image is 20000x6 pixels, expected at most 16384 per side"},
        {8, 16385, "image is 8x16385 pixels, expected at most 16384 per side"},
        {16384, 16384, "image is 16384x16384 pixels, expected at most 16384 per side and 134217728 pixels"},
        {0x7fffffffu, 1, "image is 2147483647x1 pixels, expected at most 16384 per side"},
        {0x80000000u, 1, "PNG unsigned integer out of range"},
        {0, 6, "Invalid IHDR data (libpng warnings: Image width is zero in IHDR)"},
        {8, 0, "Invalid IHDR data (libpng warnings: Image height is zero in IHDR)"},
        {4000, 4000, "bytes of IDAT cannot hold a 4000x4000"},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        memcpy(buf, good, n);
        put32(buf + ihdr + 8, sizes[i].w);
        put32(buf + ihdr + 12, sizes[i].h);
        fix_crc(buf, ihdr);
        rc = decode_msg(buf, n, "dims.png", &e);
        th_ok(rc == -1 && has(e.msg, "dims.png: ") && has(e.msg, sizes[i].expect), "IHDR %ux%u: %s", sizes[i].w, sizes[i].h,
              e.msg);
    }
    /* bad bit depth, bad colour type */
    memcpy(buf, good, n);
    buf[ihdr + 16] = 7;
    fix_crc(buf, ihdr);
    rc = decode_msg(buf, n, "depth.png", &e);
    th_ok(rc == -1 && has(e.msg, "depth.png: ") && has(e.msg, "bit depth"), "bit depth 7: %s", e.msg);
    memcpy(buf, good, n);
    buf[ihdr + 17] = 5;
    fix_crc(buf, ihdr);
    rc = decode_msg(buf, n, "ctype.png", &e);
    th_ok(rc == -1 && has(e.msg, "ctype.png: ") && has(e.msg, "color type"), "colour type 5: %s", e.msg);
    /* a corrupt zlib stream with a valid CRC */
    memcpy(buf, good, n);
    buf[idat + 8] ^= 0xff;
    fix_crc(buf, idat);
    rc = decode_msg(buf, n, "zlib.png", &e);
    th_ok(rc == -1 && has(e.msg, "zlib.png: "), "corrupt zlib header: %s", e.msg);

    /* random mutations: 0 or -1 with a message, never a crash (ASan/UBSan check the rest) */
    uint64_t seed = th_seed();
    long fails = 0, oks = 0, nomsg = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, good, n);
        int nflip = 1 + (int)(rhd_rng_block(seed, RHD_STREAM(RHD_STREAM_TEST, 77), (uint64_t)it * 8).v[0] % 4);
        for (int f = 0; f < nflip; f++) {
            uint32_t r = rhd_rng_block(seed, RHD_STREAM(RHD_STREAM_TEST, 77), (uint64_t)it * 8 + 1 + (uint64_t)f).v[0];
            buf[8 + r % (n - 8)] ^= (unsigned char)(1u << (r >> 29));
        }
        if (it & 1) { /* half the time fix every CRC so that libpng gets past the chunk checks */
            size_t off = 8;
            while (off + 12 <= n) {
                uint32_t len = (uint32_t)buf[off] << 24 | (uint32_t)buf[off + 1] << 16 | (uint32_t)buf[off + 2] << 8 | buf[off + 3];
                if (len > n - off - 12) break;
                fix_crc(buf, off);
                off += 12 + len;
            }
        }
        rc = decode_msg(buf, n, "mut.png", &e);
        if (rc == 0) oks++;
        else if (rc == -1) fails++, nomsg += strncmp(e.msg, "mut.png: ", 9) != 0 || strlen(e.msg) < 12;
    }
    th_ok(oks + fails == 3000 && nomsg == 0, "3000 random mutations: %ld decode, %ld fail with a message (%ld without)", oks,
          fails, nomsg);
    free(buf);
    free(good);
}

/* --- 5. writer arguments and atomic writes ------------------------------------------------ */

static void test_writer_errors(void) {
    float px[12] = {0};
    rhd_err e;
    char path[1024];
    snprintf(path, sizeof path, "%s/atomic.png", th_tmpdir());
    th_ok(rhd_png_write(path, px, 2, 2, 3, 8, 0, &e) == 0 && rhd_file_exists(path), "write %s", path);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    th_ok(!rhd_file_exists(tmp), "no temp file left after an atomic write");
    int rc = rhd_png_write(path, px, 2, 2, 5, 8, 0, &e);
    th_ok(rc == -1 && has(e.msg, "atomic.png: PNG with 5 channels, expected 1 (gray)"), "5 channels: %s", e.msg);
    rc = rhd_png_write(path, px, 2, 2, 3, 12, 0, &e);
    th_ok(rc == -1 && has(e.msg, "bit depth 12, expected 8 or 16"), "12 bits: %s", e.msg);
    rc = rhd_png_write(path, px, 0, 2, 3, 8, 0, &e);
    th_ok(rc == -1 && has(e.msg, "PNG size 0x2"), "zero width: %s", e.msg);
    rc = rhd_png_write(path, px, 2, 2, 3, 8, 4, &e);
    th_ok(rc == -1 && has(e.msg, "flags 0x4"), "unknown flag: %s", e.msg);
    rc = rhd_png_write("/nonexistent-dir/x.png", px, 2, 2, 3, 8, 0, &e);
    th_ok(rc == -1 && has(e.msg, "/nonexistent-dir/x.png"), "unwritable path: %s", e.msg);
    rhd_image img;
    rc = rhd_png_read("/nonexistent-dir/y.png", &img, &e);
    th_ok(rc == -1 && has(e.msg, "/nonexistent-dir/y.png: cannot open"), "missing file: %s", e.msg);
    /* the trunc flag really truncates, the default rounds */
    float v[3] = {0.999f / 255 * 128, 0.5f, 0.0f}; /* 127.872 */
    rhd_image a, b;
    void *buf;
    size_t n;
    RHD_ASSERT(rhd_png_encode(v, 1, 1, 3, 8, RHD_PNG_TRUNC, &buf, &n, &e) == 0 && rhd_png_decode(buf, n, "t", &a, &e) == 0);
    free(buf);
    RHD_ASSERT(rhd_png_encode(v, 1, 1, 3, 8, RHD_PNG_ROUND, &buf, &n, &e) == 0 && rhd_png_decode(buf, n, "r", &b, &e) == 0);
    free(buf);
    th_ok(lroundf(a.data[0] * 255) == 127 && lroundf(b.data[0] * 255) == 128 && lroundf(a.data[1] * 255) == 127 &&
              lroundf(b.data[1] * 255) == 128,
          "127.87 and 127.5 -> trunc %ld %ld, round %ld %ld", lroundf(a.data[0] * 255), lroundf(a.data[1] * 255),
          lroundf(b.data[0] * 255), lroundf(b.data[1] * 255));
    char d1[64], d2[64];
    th_ok(strcmp(rhd_png_describe(&a, d1, sizeof d1), "8-bit RGB") == 0, "describe: '%s'", d1);
    a.color_type = RHD_PNG_PALETTE, a.has_alpha = 1, a.bit_depth = 4;
    th_ok(strcmp(rhd_png_describe(&a, d2, sizeof d2), "4-bit palette with tRNS") == 0, "describe: '%s'", d2);
    rhd_image_free(&a);
    rhd_image_free(&b);
}

int main(void) {
    test_read_pypng();
    test_writer();
    test_malformed();
    test_writer_errors();
    return th_done();
}
