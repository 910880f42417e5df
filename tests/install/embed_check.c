/* embed_check.c: a program built against an installed libclasp only (<clasp.h>, with
 * `pkg-config --cflags --libs clasp` or find_package(clasp): tests/install/CMakeLists.txt).
 *
 *     embed_check DATA OUT
 *
 * With the exports and inputs of tests/install/make_inputs.c in DATA, writes OUT/images.f32
 * (a.pgm, b.ppm, c.png with DATA/image), OUT/texts.f32 (the lines of texts.txt) and
 * OUT/audio.f32 (a.wav, b.wav with DATA/audio): raw float32 rows, which scripts/install-test.sh
 * compares with `clasp embed`. Prints the library's version, backend and export format. */
#include <clasp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int save_(const char *out, const char *name, const float *x, size_t n) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", out, name);
    FILE *f = fopen(p, "wb");
    int ok = f && fwrite(x, sizeof *x, n, f) == n;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "embed_check: cannot write %s\n", p);
    return ok ? 0 : 1;
}

static int embed_(const char *data, const char *out) {
    char img_dir[4096], aud_dir[4096], p[5][4200];
    snprintf(img_dir, sizeof img_dir, "%s/image", data);
    snprintf(aud_dir, sizeof aud_dir, "%s/audio", data);
    const char *names[5] = {"a.pgm", "b.ppm", "c.png", "a.wav", "b.wav"}, *files[5];
    for (int i = 0; i < 5; i++) snprintf(p[i], sizeof p[i], "%s/in/%s", data, names[i]);
    for (int i = 0; i < 5; i++) files[i] = p[i];
    const char *texts[3] = {"a photo of a bag", "an ankle boot", "\xc3\xa9t\xc3\xa9 sandal"};
    clasp_handle *im = clasp_model_open(img_dir, 1), *au = clasp_model_open(aud_dir, 1);
    if (!im || !au) {
        fprintf(stderr, "embed_check: %s\n", clasp_last_error());
        return 1;
    }
    int D = clasp_model_dim(im), Da = clasp_model_dim(au), rc = 1;
    float *x = malloc(sizeof(float) * (size_t)(3 * D + 2 * Da + 3 * D));
    if (x && !clasp_model_embed_image_files(im, files, 3, x) &&
        !clasp_model_embed_texts(im, texts, 3, x + 3 * D) &&
        !clasp_model_embed_audio_files(au, files + 3, 2, x + 6 * D))
        rc = save_(out, "images.f32", x, (size_t)(3 * D)) |
             save_(out, "texts.f32", x + 3 * D, (size_t)(3 * D)) |
             save_(out, "audio.f32", x + 6 * D, (size_t)(2 * Da));
    else
        fprintf(stderr, "embed_check: %s\n", x ? clasp_last_error() : "out of memory");
    free(x);
    clasp_model_close(im);
    clasp_model_close(au);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: embed_check DATA OUT\n");
        return 2;
    }
    printf("libclasp %s (backend %s; precisions %s; export format %d)\n", clasp_version(),
           clasp_backend(), clasp_precisions(), clasp_format_version("export"));
    return embed_(argv[1], argv[2]);
}
