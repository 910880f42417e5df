/* embed_example.c: a small program using only the public API include/clasp.h: loads an export,
 * embeds a text query and some images, and prints the images ranked by cosine similarity.
 *
 *     embed_example EXPORT_DIR "a photo of a bag" a.png b.png c.png
 *
 * Build against an installed clasp (README, "Using libclasp from C and Python"):
 *     cc embed_example.c $(pkg-config --cflags --libs clasp) -o embed_example
 * or with CMake: find_package(clasp) and target_link_libraries(embed_example clasp::clasp).
 * In the tree it links libclasp.so (tools/CMakeLists.txt).
 */
#include <stdio.h>
#include <stdlib.h>

#include <clasp.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s EXPORT_DIR \"query text\" IMAGE...\n", argv[0]);
        return 2;
    }
    clasp_handle *h = clasp_model_open(argv[1], 1);
    if (!h) {
        fprintf(stderr, "cannot open %s: %s\n", argv[1], clasp_last_error());
        return 1;
    }
    int D = clasp_model_dim(h), n = argc - 3;
    const char *query = argv[2];
    const char *const *files = (const char *const *)(argv + 3);
    float *q = malloc((size_t)D * sizeof(float));
    float *img = malloc((size_t)n * (size_t)D * sizeof(float));
    int *order = malloc((size_t)n * sizeof(int));
    float *score = malloc((size_t)n * sizeof(float));
    if (!q || !img || !order || !score) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    if (clasp_model_embed_texts(h, &query, 1, q) != 0 ||
        clasp_model_embed_image_files(h, files, n, img) != 0) {
        fprintf(stderr, "embedding failed: %s\n", clasp_last_error());
        return 1;
    }
    /* rows are unit vectors: the dot product is the cosine similarity */
    for (int i = 0; i < n; i++) {
        float s = 0;
        for (int d = 0; d < D; d++) s += img[(size_t)i * D + d] * q[d];
        score[i] = s;
        order[i] = i;
    }
    for (int i = 1; i < n; i++) /* insertion sort, best first */
        for (int j = i; j > 0 && score[order[j]] > score[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    printf("query: %s (dim %d)\n", query, D);
    for (int i = 0; i < n; i++)
        printf("%3d  %+.4f  %s\n", i + 1, (double)score[order[i]], files[order[i]]);
    free(q), free(img), free(order), free(score);
    clasp_model_close(h);
    return 0;
}
