/* triplet.h: triplet loss with a margin, cosine or euclidean distance, and online mining
 * within a labelled batch (FaceNet, Schroff et al. 2015; Hermans et al. 2017).
 *
 * Per triplet (anchor a, positive p with label_p = label_a and p != a, negative n with
 * label_n != label_a):  h = max(0, d(a,p) - d(a,n) + margin).
 * Distances: EUCLIDEAN ||x_a - x_b||; SQEUCLIDEAN ||x_a - x_b||^2; COSINE 1 - x_a . x_b (rows
 * must be L2-normalised for this to be the cosine distance; they are used as given).
 * Mining (ties broken by the lowest index):
 *   BATCH_ALL:  every valid triplet; loss = sum of h over triplets / number of triplets with
 *               h > 0 (the usual "mean over positive triplets"); 0 if there are none.
 *   BATCH_HARD: per anchor with at least one positive and one negative, the farthest
 *               positive and the nearest negative; loss = mean over those anchors.
 *   SEMI_HARD:  per positive pair (a, p) whose anchor has a negative, the nearest negative
 *               with d(a,p) < d(a,n) < d(a,p) + margin; if there is none, the nearest
 *               negative overall (as the issue specifies; TF-addons would take the farthest);
 *               loss = mean over those pairs.
 * Gradients are (sub)gradients: at h = 0 the hinge contributes 0; at a zero euclidean
 * distance the derivative of ||.|| is taken as 0. Gradients are written. */
#ifndef CLASP_LOSS_TRIPLET_H
#define CLASP_LOSS_TRIPLET_H

#include <stddef.h>

#include "core/status.h"
#include "loss/registry.h"

typedef enum clasp_triplet_distance {
    CLASP_TRIPLET_DISTANCE_EUCLIDEAN = 0,
    CLASP_TRIPLET_DISTANCE_SQEUCLIDEAN,
    CLASP_TRIPLET_DISTANCE_COSINE
} clasp_triplet_distance;

typedef enum clasp_triplet_mining {
    CLASP_TRIPLET_MINING_BATCH_ALL = 0,
    CLASP_TRIPLET_MINING_BATCH_HARD,
    CLASP_TRIPLET_MINING_SEMI_HARD
} clasp_triplet_mining;

/* Scratch floats: 2*M*M + M. 0 on overflow. */
size_t clasp_triplet_work_floats(size_t M);

/* X (M, D), labels (M), margin >= 0.
 * Outputs (written; all but loss may be NULL): *loss, dX (M, D), *n_terms (the number of
 * terms the mean divides by: positive triplets, anchors or pairs).
 * Returns CLASP_OK or CLASP_ERR_ARG (M == 0, D == 0, bad enum, negative margin, NULLs). */
clasp_status clasp_triplet(float *loss, float *dX, size_t *n_terms, const float *X,
                           const int *labels, float margin, clasp_triplet_distance dist,
                           clasp_triplet_mining mining, size_t M, size_t D, float *work);

/* Registry adapter (loss/registry.h): the replicated recipe of loss/supcon.h on Z = [a_all;
 * b_all] with the groups twice as labels (triplets within and across the two sides); options
 * margin, mining, distance. Needs groups; no learnable scalar. */
size_t clasp_triplet_batch_work_floats(const clasp_loss_setup *s);
clasp_status clasp_triplet_batch(const clasp_loss_batch *in, clasp_loss_grads *out);

#endif
