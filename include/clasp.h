/* clasp.h: the public C API for using an exported clasp model (`clasp export RUN -o DIR`).
 *
 * Load an export, embed images, texts and audio into the shared space, compare by dot product:
 *
 *     #include <clasp.h>   // installed: pkg-config --cflags --libs clasp, or find_package(clasp)
 *
 *     clasp_handle *h = clasp_model_open("export/", 1);   // folder, compute threads
 *     if (!h) { fprintf(stderr, "%s\n", clasp_last_error()); return 1; }
 *     int D = clasp_model_dim(h);
 *     float *img = malloc(2 * D * sizeof(float)), *txt = malloc(D * sizeof(float));
 *     const char *files[2] = {"a.png", "b.jpg"};
 *     const char *texts[1] = {"a photo of a bag"};
 *     if (clasp_model_embed_image_files(h, files, 2, img) != 0 ||
 *         clasp_model_embed_texts(h, texts, 1, txt) != 0)
 *         fprintf(stderr, "%s\n", clasp_last_error());
 *     // cosine similarity of image 1 and the text: sum over d of img[D + d] * txt[d]
 *     clasp_model_close(h);
 *
 * Inputs are prepared exactly as the training loader does in evaluation mode: images are
 * decoded (PNG, JPEG, BMP, GIF, TGA, PNM; alpha composited on white), brought to the model's
 * size with its resize mode and normalised with its mean and std; texts (UTF-8) are Unicode-
 * normalised (NFKC, control characters dropped, whitespace collapsed and trimmed) and tokenized
 * to the model's context length; audio (WAV, FLAC, OGG/Vorbis, Opus, MP3: what libsndfile
 * reads) is mixed to mono, resampled to the model's rate (libsamplerate), cut to the model's
 * clip length from its start (a shorter clip is padded as the model says: repeat, zeros or
 * whole repeats then zeros), turned into the model's normalised log-mel spectrogram; only the
 * part of a long file the clip needs is read. The export's preprocess.json lists every one of
 * these settings. Every output row is L2-normalised (unit length, float32).
 *
 * Errors: functions returning int give 0 on success and a negative code otherwise;
 * clasp_model_open returns NULL. clasp_last_error() then says what failed, naming the file,
 * tensor or input index. The message is thread-local.
 *
 * Every function checks its arguments: a NULL handle or pointer, a negative count, an empty
 * image, NaN samples give an error, never a crash. A handle is a plain pointer: after
 * clasp_model_close it must not be used again (C cannot detect that; the Python binding refuses
 * calls after close()).
 *
 * Threads: a handle may be used by one thread at a time; different handles are independent.
 *
 * Linking: libclasp.so exports exactly the functions declared here (SONAME libclasp.so.MAJOR);
 * libclasp.a holds the same code for static links (pkg-config --static --libs clasp).
 */
#ifndef CLASP_PUBLIC_CLASP_H
#define CLASP_PUBLIC_CLASP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An opened export (model weights, tokenizer, preprocessing, compute threads). */
typedef struct clasp_handle clasp_handle;

/* Opens the export folder `export_dir` (model.safetensors, config.json, tokenizer.json,
 * preprocess.json) with n_threads compute threads (>= 1). A checkpoint or run folder is also
 * accepted. Returns NULL on failure (missing file, wrong tensor shape, config mismatch: see
 * clasp_last_error()). Release with clasp_model_close. */
clasp_handle *clasp_model_open(const char *export_dir, int n_threads);

/* Releases the handle; accepts NULL. */
void clasp_model_close(clasp_handle *h);

/* Embedding dimension D (floats per output row). */
int clasp_model_dim(const clasp_handle *h);

/* Embeds n images given as encoded bytes: data[i] of nbytes[i] bytes. Writes out (n, D). */
int clasp_model_embed_images(clasp_handle *h, const void *const *data, const size_t *nbytes, int n,
                             float *out);

/* Embeds n images given as raw pixels: pixels[i] is (H, W, C) uint8, row-major (C fastest), with
 * shape[3 * i + 0..2] = H, W, C; C is 1 (gray), 3 (RGB) or 4 (RGBA, composited on white). The
 * pixels go through exactly the path of an image file (the model's channel conversion, resize and
 * normalisation), so a PNG of the same pixels embeds the same. Writes out (n, D). */
int clasp_model_embed_pixels(clasp_handle *h, const unsigned char *const *pixels, const int *shape,
                             int n, float *out);

/* Embeds n image files. Writes out (n, D). */
int clasp_model_embed_image_files(clasp_handle *h, const char *const *paths, int n, float *out);

/* Embeds n NUL-terminated UTF-8 texts. Writes out (n, D). */
int clasp_model_embed_texts(clasp_handle *h, const char *const *texts, int n, float *out);

/* Embeds n audio files given as encoded bytes: data[i] of nbytes[i] bytes. Writes out (n, D).
 * A file that cannot be used (empty, undecodable, NaN samples, ...) fails the call, naming its
 * index and the reason. Fails when the model has no audio tower. */
int clasp_model_embed_audio(clasp_handle *h, const void *const *data, const size_t *nbytes, int n,
                            float *out);

/* Embeds n audio files. Writes out (n, D). */
int clasp_model_embed_audio_files(clasp_handle *h, const char *const *paths, int n, float *out);

/* Embeds n mono clips of float samples: samples[i] holds n_samples[i] values at sample_rate Hz
 * (> 0; resampled to the model's rate as a file would be). A clip with NaN or infinite samples is
 * refused (unless the model says "nonfinite": "zero"), as is an empty one. Writes out (n, D). */
int clasp_model_embed_audio_samples(clasp_handle *h, const float *const *samples,
                                    const size_t *n_samples, int sample_rate, int n, float *out);

/* Whether the model has an image (0), text (1) or audio (2) tower: 1 yes, 0 no. */
int clasp_model_has_modality(const clasp_handle *h, int modality);

/* The precision of later embeddings: "fp32" (default) or "bf16" (the inputs of every matrix
 * product rounded to bf16, fp32 accumulation: faster, about 3 significant digits per product).
 * Fails (naming the backend) when this build or CPU cannot compute in it, or for another
 * name. */
int clasp_model_set_precision(clasp_handle *h, const char *precision);
/* The precision the model was trained in ("fp32" or "bf16"; its config.json's "precision"). */
const char *clasp_model_trained_precision(const clasp_handle *h);
/* The compute backend of this build ("onednn" or "openblas"). */
const char *clasp_backend(void);
/* The precisions this build computes in ("fp32" or "fp32,bf16"). */
const char *clasp_precisions(void);
/* The library version ("MAJOR.MINOR.PATCH"; the SONAME carries MAJOR). */
const char *clasp_version(void);
/* The newest format version this library reads of `file`: "export", "checkpoint" or "run"
 * (clasp_model_open takes all three). -1 with clasp_last_error() set for another name. */
int clasp_format_version(const char *file);

/* The last error message of this thread ("" if none). */
const char *clasp_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
