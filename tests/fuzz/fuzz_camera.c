/* tests/fuzz/fuzz_camera.c: libFuzzer target for the camera metadata JSON parser
 * (rhd_camera_parse in formats/dataset.h), from memory with an explicit length (no NUL needed).
 * Accepted cameras must satisfy the documented checks, and the intrinsics and the pose conversion
 * must give finite numbers; rejected ones must carry a message naming the input.
 *   make build-fuzz/fuzz_camera && ./build-fuzz/fuzz_camera -max_total_time=60 tests/fuzz/corpus/camera */
#include "formats/dataset.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rhd_camera cam;
    rhd_err e;
    if (rhd_camera_parse((const char *)data, size, "fuzz.json", &cam, &e) != 0) {
        if (strncmp(e.msg, "fuzz.json: ", 11) != 0 || strlen(e.msg) < 14) abort();
        return 0;
    }
    if (cam.width < 1 || cam.height < 1 || cam.width > RHD_PNG_MAX_SIDE || cam.height > RHD_PNG_MAX_SIDE) abort();
    if (!(cam.focal_length > 0) || !(cam.sensor_width > 0) || !isfinite(cam.focal_length) || !isfinite(cam.sensor_width))
        abort();
    rhd_dataset_config cfg;
    rhd_dataset_config_init(&cfg);
    rhd_camera_intrinsics K;
    rhd_camera_intrinsics_from_camera(&K, &cam, &cfg);
    double P[4][4];
    rhd_pose_convert(P, cam.c2w, &cfg);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            if (!isfinite(P[r][c]) || !isfinite(cam.c2w[r][c])) abort();
    /* the rotation block is orthonormal to 1e-3, so every entry is at most ~1 in size */
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            if (fabs(P[r][c]) > 1.01) abort();
    if (!isfinite(K.fx) || !isfinite(K.fy) || !(K.fx > 0) || !(K.fy > 0)) abort();
    return 0;
}
