"""make_loss.py: PyTorch reference values and gradients for the losses in loss/.

Run with /usr/bin/python3 (torch 1.13) from anywhere:
    /usr/bin/python3 tests/reference/make_loss.py
Writes tests/reference/loss/<case>.safetensors. Inputs are float32; the reference is computed
in float64 from exactly those float32 values with PyTorch's own ops (F.cross_entropy,
F.logsigmoid, F.normalize, soft targets as -sum(p * log_softmax)) and autograd; results are
stored as float32. tests/test_loss*.c read them and compare with rel tol 1e-4.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loss")
rng = np.random.default_rng(20240603)


def f32(x):
    return np.asarray(x, dtype=np.float32)


def feats(n, d, normalize=True):
    x = rng.standard_normal((n, d)).astype(np.float32)
    if normalize:
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return x


def leaf(x):
    return torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)


def g32(t):
    return f32(t.grad.numpy())


def save(name, d):
    out = {}
    for k, v in d.items():
        v = np.asarray(v)
        if v.dtype.kind in "iu":
            out[k] = v.astype(np.int32)
        else:
            out[k] = np.atleast_1d(v.astype(np.float32))
    stio.save(os.path.join(OUT, name + ".safetensors"), out, {"generator": "make_loss.py"})


def soft_ce(logits, targets):
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def infonce_case(name, n, d, s, groups=None):
    A, B = feats(n, d), feats(n, d)
    a, b, ls = leaf(A), leaf(B), leaf(np.float32(s))
    logits = ls.exp() * a @ b.t()
    if groups is None:
        lab = torch.arange(n)
        loss = (F.cross_entropy(logits, lab) + F.cross_entropy(logits.t(), lab)) / 2
    else:
        g = torch.tensor(groups)
        same = (g[:, None] == g[None, :]).double()
        t = same / same.sum(1, keepdim=True)
        loss = (soft_ce(logits, t) + soft_ce(logits.t(), t)) / 2
    loss.backward()
    rec = {"A": A, "B": B, "log_scale": np.float32(s), "loss": loss.item(), "dA": g32(a),
           "dB": g32(b), "dlog_scale": ls.grad.item()}
    if groups is not None:
        rec["groups"] = np.array(groups)
    save(name, rec)


def siglip_case(name, n, d, t, bias, groups=None):
    A, B = feats(n, d), feats(n, d)
    a, b, lt, lb = leaf(A), leaf(B), leaf(np.float32(t)), leaf(np.float32(bias))
    logits = lt.exp() * a @ b.t() + lb
    if groups is None:
        labels = 2 * torch.eye(n, dtype=torch.float64) - 1
    else:
        g = torch.tensor(groups)
        labels = 2 * (g[:, None] == g[None, :]).double() - 1
    loss = -F.logsigmoid(labels * logits).sum() / n  # open_clip SigLipLoss
    loss.backward()
    rec = {"A": A, "B": B, "log_scale": np.float32(t), "bias": np.float32(bias),
           "loss": loss.item(), "dA": g32(a), "dB": g32(b), "dlog_scale": lt.grad.item(),
           "dbias": lb.grad.item()}
    if groups is not None:
        rec["groups"] = np.array(groups)
    save(name, rec)


def supcon_torch(z, labels, tau):
    """HobbitLong/SupContrast L_out with base_temperature = tau; anchors without positives
    excluded from the mean."""
    m = z.shape[0]
    lab = torch.tensor(labels)
    sim = z @ z.t() / tau
    self_mask = torch.eye(m, dtype=torch.bool)
    pos = (lab[:, None] == lab[None, :]) & ~self_mask
    sim_ex = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim_ex, dim=1, keepdim=True)
    npos = pos.sum(1)
    valid = npos > 0
    mean_log_prob_pos = (log_prob * pos).sum(1)[valid] / npos[valid]
    return -mean_log_prob_pos.mean()


def ntxent_torch(z1, z2, tau):
    """SimCLR NT-Xent written with F.cross_entropy over 2N-1 candidates."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / tau
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


def ntxent_case(name, n, d, tau):
    Z1, Z2 = feats(n, d, False), feats(n, d, False)
    z1, z2, t = leaf(Z1), leaf(Z2), leaf(np.float32(tau))
    loss = ntxent_torch(z1, z2, t)
    loss.backward()
    save(name, {"Z1": Z1, "Z2": Z2, "temperature": np.float32(tau), "loss": loss.item(),
                "dZ1": g32(z1), "dZ2": g32(z2), "dtemp": t.grad.item()})


def supcon_case(name, m, d, tau, labels):
    Z = feats(m, d, False)
    z, t = leaf(Z), leaf(np.float32(tau))
    loss = supcon_torch(F.normalize(z, dim=1), labels, t)
    loss.backward()
    save(name, {"Z": Z, "labels": np.array(labels), "temperature": np.float32(tau),
                "loss": loss.item(), "dZ": g32(z), "dtemp": t.grad.item()})


def dist_matrix(x, kind):
    if kind == "cosine":
        return 1 - x @ x.t()
    diff = x[:, None, :] - x[None, :, :]
    sq = (diff * diff).sum(-1)
    if kind == "sqeuclidean":
        return sq
    eye = torch.eye(x.shape[0], dtype=torch.bool)
    # sqrt with a zero (sub)gradient on the diagonal, never used by the loss anyway
    return torch.sqrt(sq.masked_fill(eye, 1.0)).masked_fill(eye, 0.0)


def triplet_torch(x, labels, margin, kind, mining):
    dm = dist_matrix(x, kind)
    dd = dm.detach().numpy()
    m = x.shape[0]
    terms = []
    if mining == "batch_all":
        for a in range(m):
            for p in range(m):
                if p == a or labels[p] != labels[a]:
                    continue
                for n in range(m):
                    if labels[n] != labels[a]:
                        terms.append(torch.relu(dm[a, p] - dm[a, n] + margin))
        act = sum(1 for t in terms if t.item() > 0)
        return (sum(terms) / act if act else x.sum() * 0), act
    for a in range(m):
        negs = [n for n in range(m) if labels[n] != labels[a]]
        poss = [p for p in range(m) if p != a and labels[p] == labels[a]]
        if not negs or not poss:
            continue
        nn = min(negs, key=lambda n: dd[a, n])
        if mining == "batch_hard":
            fp = max(poss, key=lambda p: dd[a, p])
            terms.append(torch.relu(dm[a, fp] - dm[a, nn] + margin))
            continue
        for p in poss:
            semi = [n for n in negs if dd[a, p] < dd[a, n] < dd[a, p] + margin]
            sn = min(semi, key=lambda n: dd[a, n]) if semi else nn
            terms.append(torch.relu(dm[a, p] - dm[a, sn] + margin))
    return sum(terms) / len(terms), len(terms)


def triplet_cases():
    labels = [0, 1, 0, 2, 1, 0, 2, 3]
    X = feats(len(labels), 5)
    for kind, margin in (("euclidean", 0.5), ("sqeuclidean", 0.8), ("cosine", 0.3)):
        for mining in ("batch_all", "batch_hard", "semi_hard"):
            x = leaf(X)
            loss, nterms = triplet_torch(x, labels, margin, kind, mining)
            loss.backward()
            save(f"triplet_{kind}_{mining}", {"X": X, "labels": np.array(labels),
                                              "margin": np.float32(margin), "loss": loss.item(),
                                              "dX": g32(x), "n_terms": np.array([nterms])})


def margin_case(name, p, d, margin):
    X1, X2 = feats(p, d, False) * 0.4, feats(p, d, False) * 0.4
    y = np.array([1, 0, 0, 1, 0, 0])[:p]
    x1, x2 = leaf(X1), leaf(X2)
    dist = (x1 - x2).norm(dim=1)
    yt = torch.tensor(y, dtype=torch.float64)
    loss = (yt * dist ** 2 + (1 - yt) * torch.relu(margin - dist) ** 2).mean()
    loss.backward()
    save(name, {"X1": f32(X1), "X2": f32(X2), "similar": y, "margin": np.float32(margin),
                "loss": loss.item(), "dX1": g32(x1), "dX2": g32(x2)})


def margin_cross_case(name, n, d, margin, groups):
    """The training form: every cross pair (a_i, b_j), similar when groups[i] == groups[j]."""
    A, B = feats(n, d), feats(n, d)
    a, b = leaf(A), leaf(B)
    dist = (a[:, None, :] - b[None, :, :]).norm(dim=2)
    g = torch.tensor(groups)
    yt = (g[:, None] == g[None, :]).to(torch.float64)
    loss = (yt * dist ** 2 + (1 - yt) * torch.relu(margin - dist) ** 2).mean()
    loss.backward()
    save(name, {"A": f32(A), "B": f32(B), "groups": np.array(groups), "margin": np.float32(margin),
                "loss": loss.item(), "dA": g32(a), "dB": g32(b)})


def moco_case(name, n, d, k, tau):
    Q, Kp, QU = feats(n, d), feats(n, d), feats(k, d)
    q, kk, t = leaf(Q), leaf(Kp), leaf(np.float32(tau))
    l_pos = (q * kk).sum(1, keepdim=True)
    l_neg = q @ torch.tensor(QU, dtype=torch.float64).t()
    logits = torch.cat([l_pos, l_neg], dim=1) / t  # facebookresearch/moco builder.py
    loss = F.cross_entropy(logits, torch.zeros(n, dtype=torch.long))
    loss.backward()
    save(name, {"q": Q, "k": Kp, "queue": QU, "temperature": np.float32(tau), "loss": loss.item(),
                "dq": g32(q), "dk": g32(kk), "dtemp": t.grad.item()})


def diag_case(name, n, d):
    A, B = feats(n, d), feats(n, d)
    a, b = torch.tensor(A, dtype=torch.float64), torch.tensor(B, dtype=torch.float64)
    std = a.std(dim=0, unbiased=False)
    align = (a - b).norm(dim=1).pow(2).mean()  # Wang & Isola, alpha = 2
    unif = torch.pdist(a, p=2).pow(2).mul(-2).exp().mean().log()  # t = 2
    sim = a @ b.t()
    pos = sim.diag().mean()
    hardneg = sim.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf")).max(dim=1).values.mean()
    save(name, {"A": A, "B": B, "std_mean_a": std.mean().item(), "std_min_a": std.min().item(),
                "alignment": align.item(), "uniformity_a": unif.item(), "pos_sim": pos.item(),
                "hardneg_sim": hardneg.item()})


def moco_sym_case(name, n, d, k, s, groups, qa_groups, qb_groups):
    """clasp_moco_sym: symmetric InfoNCE of online queries A, B against momentum keys KB, KA of
    the batch and the queued keys (QB for A queries, QA for B queries); targets spread over the
    query's group in the batch; queue slots of the query's group dropped (-1: no group)."""
    A, B, KA, KB = feats(n, d), feats(n, d), feats(n, d), feats(n, d)
    QA, QB = feats(len(qa_groups), d), feats(len(qb_groups), d)
    a, b, ls = leaf(A), leaf(B), leaf(np.float32(s))
    g = torch.tensor(groups)
    same = (g[:, None] == g[None, :]).double()
    t = same / same.sum(1, keepdim=True)

    def direction(q, keys, queue, qg):
        kk, qu = torch.tensor(keys, dtype=torch.float64), torch.tensor(queue, dtype=torch.float64)
        logits = ls.exp() * torch.cat([q @ kk.t(), q @ qu.t()], dim=1)
        drop = torch.cat([torch.zeros(n, n, dtype=torch.bool),
                          g[:, None] == torch.tensor(qg)[None, :]], dim=1)
        logits = logits.masked_fill(drop, float("-inf"))
        pos = (t * logits[:, :n]).sum(1)
        return (torch.logsumexp(logits, dim=1) - pos).mean()

    loss = (direction(a, KB, QB, qb_groups) + direction(b, KA, QA, qa_groups)) / 2
    loss.backward()
    save(name, {"A": A, "B": B, "KA": KA, "KB": KB, "QA": QA, "QB": QB,
                "groups": np.array(groups), "qa_groups": np.array(qa_groups),
                "qb_groups": np.array(qb_groups), "log_scale": np.float32(s),
                "loss": loss.item(), "dA": g32(a), "dB": g32(b), "dlog_scale": ls.grad.item()})


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    infonce_case("infonce", 6, 5, math.log(1 / 0.07))
    infonce_case("infonce_groups", 6, 5, 2.0, groups=[0, 1, 0, 2, 1, 3])
    siglip_case("siglip", 5, 4, math.log(10.0), -10.0)
    siglip_case("siglip_groups", 6, 4, 1.5, -2.0, groups=[0, 1, 0, 2, 1, 3])
    ntxent_case("ntxent", 4, 5, 0.5)
    supcon_case("supcon", 8, 5, 0.1, [0, 1, 0, 2, 1, 0, 3, 2])
    triplet_cases()
    margin_case("margin", 6, 4, 1.0)
    moco_case("moco", 4, 5, 6, 0.07)
    diag_case("diag", 7, 4)
    moco_sym_case("moco_sym", 6, 5, 6, math.log(1 / 0.07), [0, 1, 0, 2, 1, 3],
                  [1, 4, 0, 5, 2, -1, 3], [3, 0, 6, 1])
    margin_cross_case("margin_cross", 6, 4, 1.2, [0, 1, 0, 2, 1, 3])  # last: keeps the others' draws


if __name__ == "__main__":
    main()
