/* melspec.c: log-mel spectrogram with kissfft: window, optional centre padding, real FFT,
 * power spectrum, mel filterbank (HTK or Slaney scale, optional Slaney area norm), log and
 * normalisation. Mirrors torch.stft + torchaudio.functional.melscale_fbanks; the reference
 * values come from tests/reference/make_logmel.py (numpy, float64).
 *
 * ref: torchaudio/functional/functional.py (_hz_to_mel, _mel_to_hz, melscale_fbanks,
 *      _create_triangular_filterbank); torch.stft (center, pad_mode, window padding).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <kiss_fftr.h>

#include "core/sizes.h"
#include "modalities/audio.h"

struct clasp_melspec {
    clasp_melspec_config cfg;
    int n_freqs;        /* n_fft/2 + 1 */
    float *window;      /* (n_fft) window zero-padded to n_fft, centred */
    float *fb;          /* (n_mels, n_freqs) filterbank */
    int *fb_lo, *fb_hi; /* (n_mels) first and one-past-last nonzero bin per filter */
    float *frame;       /* (n_fft) windowed frame */
    kiss_fft_cpx *spec; /* (n_freqs) FFT output */
    double *pow;        /* (n_freqs) power spectrum */
    kiss_fftr_cfg fft;
};

clasp_melspec_config clasp_melspec_default_config(void) {
    return (clasp_melspec_config){
        .sample_rate = 16000,
        .n_fft = 512,
        .win_length = 400,
        .hop_length = 160,
        .window = CLASP_WINDOW_HANN,
        .center = true,
        .pad_mode = CLASP_PAD_REFLECT,
        .n_mels = 64,
        .fmin = 0.0,
        .fmax = 8000.0,
        .mel_scale = CLASP_MEL_HTK,
        .mel_norm = CLASP_MEL_NORM_NONE,
        .power = 2.0,
        .log = CLASP_MEL_LOG_LN,
        .log_floor = 1e-10,
        .norm_mean = 0.0,
        .norm_std = 1.0,
    };
}

static double fmax_of(const clasp_melspec_config *c) {
    return c->fmax > 0.0 ? c->fmax : c->sample_rate / 2.0;
}

clasp_status clasp_melspec_config_check(const clasp_melspec_config *c) {
    if (!c) return clasp_set_error(CLASP_ERR_ARG, "melspec config: NULL");
    if (c->sample_rate < 1 || c->sample_rate > 1000000)
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: sample_rate %d out of [1, 1e6]",
                               c->sample_rate);
    if (c->n_fft < 2 || c->n_fft > (1 << 16) || c->n_fft % 2 != 0)
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "audio config: n_fft %d must be even and in [2, 65536]", c->n_fft);
    if (c->win_length < 1 || c->win_length > c->n_fft)
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: win_length %d out of [1, n_fft=%d]",
                               c->win_length, c->n_fft);
    if (c->hop_length < 1 || c->hop_length > (1 << 20))
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: hop_length %d must be >= 1",
                               c->hop_length);
    if ((unsigned)c->window > CLASP_WINDOW_RECT)
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: unknown window %d", (int)c->window);
    if ((unsigned)c->pad_mode > CLASP_PAD_CONSTANT)
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: unknown pad_mode %d",
                               (int)c->pad_mode);
    if (c->n_mels < 1 || c->n_mels > 4096)
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: n_mels %d out of [1, 4096]",
                               c->n_mels);
    double fmax = fmax_of(c);
    if (!(c->fmin >= 0.0) || !(fmax > c->fmin) || !(fmax <= c->sample_rate / 2.0 + 1e-9))
        return clasp_set_error(
            CLASP_ERR_CONFIG, "audio config: need 0 <= fmin (%g) < fmax (%g) <= sample_rate/2 (%g)",
            c->fmin, fmax, c->sample_rate / 2.0);
    if ((unsigned)c->mel_scale > CLASP_MEL_SLANEY)
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: unknown mel_scale %d",
                               (int)c->mel_scale);
    if ((unsigned)c->mel_norm > CLASP_MEL_NORM_SLANEY)
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: unknown mel_norm %d",
                               (int)c->mel_norm);
    if (!(c->power == 1.0 || c->power == 2.0))
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: power %g must be 1 or 2", c->power);
    if ((unsigned)c->log > CLASP_MEL_LOG_NONE)
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: unknown log %d", (int)c->log);
    if (!(c->log_floor > 0.0) || !isfinite(c->log_floor))
        return clasp_set_error(CLASP_ERR_CONFIG, "audio config: log_floor %g must be > 0",
                               c->log_floor);
    if (!isfinite(c->norm_mean) || !(c->norm_std > 0.0) || !isfinite(c->norm_std))
        return clasp_set_error(CLASP_ERR_CONFIG,
                               "audio config: norm_mean %g must be finite and norm_std %g > 0",
                               c->norm_mean, c->norm_std);
    return CLASP_OK;
}

size_t clasp_melspec_n_frames(const clasp_melspec_config *c, size_t n) {
    size_t hop = (size_t)c->hop_length, nfft = (size_t)c->n_fft;
    if (c->center) return 1 + n / hop; /* padded length n + n_fft (n_fft even) */
    if (n < nfft) return 0;
    return 1 + (n - nfft) / hop;
}

/* ref: torchaudio.functional.functional._hz_to_mel */
double clasp_hz_to_mel(double hz, clasp_mel_scale scale) {
    if (scale == CLASP_MEL_HTK) return 2595.0 * log10(1.0 + hz / 700.0);
    const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
    const double logstep = log(6.4) / 27.0;
    if (hz >= min_log_hz) return min_log_mel + log(hz / min_log_hz) / logstep;
    return hz / f_sp;
}

/* ref: torchaudio.functional.functional._mel_to_hz */
double clasp_mel_to_hz(double mel, clasp_mel_scale scale) {
    if (scale == CLASP_MEL_HTK) return 700.0 * (pow(10.0, mel / 2595.0) - 1.0);
    const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
    const double logstep = log(6.4) / 27.0;
    if (mel >= min_log_mel) return min_log_hz * exp(logstep * (mel - min_log_mel));
    return f_sp * mel;
}

clasp_status clasp_mel_filterbank(float *fb, int n_freqs, double f_min, double f_max, int n_mels,
                                  int sample_rate, clasp_mel_scale scale, clasp_mel_norm norm) {
    if (!fb || n_freqs < 2 || n_mels < 1 || sample_rate < 1 || !(f_max > f_min) || !(f_min >= 0.0))
        return clasp_set_error(CLASP_ERR_ARG,
                               "mel filterbank: bad arguments (n_freqs %d, n_mels %d, rate %d, "
                               "fmin %g, fmax %g)",
                               n_freqs, n_mels, sample_rate, f_min, f_max);
    double *f_pts = malloc(sizeof(double) * ((size_t)n_mels + 2));
    if (!f_pts) return clasp_set_error(CLASP_ERR_NOMEM, "mel filterbank: out of memory");
    double m_min = clasp_hz_to_mel(f_min, scale), m_max = clasp_hz_to_mel(f_max, scale);
    for (int i = 0; i < n_mels + 2; i++) {
        /* torch.linspace(m_min, m_max, n_mels + 2) */
        double m = m_min + (m_max - m_min) * (double)i / (double)(n_mels + 1);
        f_pts[i] = clasp_mel_to_hz(m, scale);
    }
    /* torchaudio: all_freqs = linspace(0, sample_rate // 2, n_freqs) */
    double nyq = (double)(sample_rate / 2);
    for (int m = 0; m < n_mels; m++) {
        double lo = f_pts[m], mid = f_pts[m + 1], hi = f_pts[m + 2];
        double enorm = norm == CLASP_MEL_NORM_SLANEY ? 2.0 / (hi - lo) : 1.0;
        for (int k = 0; k < n_freqs; k++) {
            double f = nyq * (double)k / (double)(n_freqs - 1);
            double down = (f - lo) / (mid - lo); /* -slopes[:, m] / f_diff[m] */
            double up = (hi - f) / (hi - mid);   /* slopes[:, m + 2] / f_diff[m + 1] */
            double v = down < up ? down : up;
            if (!(v > 0.0)) v = 0.0; /* max(0, min(down, up)); also maps NaN (hi == mid) to 0 */
            fb[(size_t)m * (size_t)n_freqs + (size_t)k] = (float)(v * enorm);
        }
    }
    free(f_pts);
    return CLASP_OK;
}

static void make_window(float *w, const clasp_melspec_config *c) {
    int n = c->win_length, off = (c->n_fft - c->win_length) / 2; /* torch.stft centres it */
    for (int i = 0; i < c->n_fft; i++) w[i] = 0.0f;
    for (int i = 0; i < n; i++) {
        double v = 1.0;
        const double two_pi = 6.283185307179586476925286766559;
        switch (c->window) {
        case CLASP_WINDOW_HANN:
            v = 0.5 - 0.5 * cos(two_pi * i / n);
            break;
        case CLASP_WINDOW_HANN_SYM:
            v = n > 1 ? 0.5 - 0.5 * cos(two_pi * i / (n - 1)) : 1.0;
            break;
        case CLASP_WINDOW_HAMMING:
            v = 0.54 - 0.46 * cos(two_pi * i / n);
            break;
        case CLASP_WINDOW_RECT:
            v = 1.0;
            break;
        }
        w[off + i] = (float)v;
    }
}

void clasp_melspec_free(clasp_melspec *m) {
    if (!m) return;
    free(m->window);
    free(m->fb);
    free(m->fb_lo);
    free(m->fb_hi);
    free(m->frame);
    free(m->spec);
    free(m->pow);
    kiss_fftr_free(m->fft);
    free(m);
}

clasp_status clasp_melspec_new(const clasp_melspec_config *c, clasp_melspec **out) {
    if (!out) return clasp_set_error(CLASP_ERR_ARG, "melspec_new: out is NULL");
    *out = NULL;
    CLASP_TRY(clasp_melspec_config_check(c));
    clasp_melspec *m = calloc(1, sizeof *m);
    if (!m) return clasp_set_error(CLASP_ERR_NOMEM, "melspec_new: out of memory");
    m->cfg = *c;
    m->n_freqs = c->n_fft / 2 + 1;
    size_t nfft = (size_t)c->n_fft, nf = (size_t)m->n_freqs, nm = (size_t)c->n_mels;
    m->window = malloc(sizeof(float) * nfft);
    m->fb = malloc(sizeof(float) * nf * nm);
    m->fb_lo = malloc(sizeof(int) * nm);
    m->fb_hi = malloc(sizeof(int) * nm);
    m->frame = malloc(sizeof(float) * nfft);
    m->spec = malloc(sizeof(kiss_fft_cpx) * nf);
    m->pow = malloc(sizeof(double) * nf);
    m->fft = kiss_fftr_alloc(c->n_fft, 0, NULL, NULL);
    if (!m->window || !m->fb || !m->fb_lo || !m->fb_hi || !m->frame || !m->spec || !m->pow ||
        !m->fft) {
        clasp_melspec_free(m);
        return clasp_set_error(CLASP_ERR_NOMEM, "melspec_new: out of memory (n_fft %d, n_mels %d)",
                               c->n_fft, c->n_mels);
    }
    make_window(m->window, c);
    clasp_status s = clasp_mel_filterbank(m->fb, m->n_freqs, c->fmin, fmax_of(c), c->n_mels,
                                          c->sample_rate, c->mel_scale, c->mel_norm);
    if (s != CLASP_OK) {
        clasp_melspec_free(m);
        return s;
    }
    for (int i = 0; i < c->n_mels; i++) {
        const float *row = m->fb + (size_t)i * nf;
        int lo = 0, hi = m->n_freqs;
        while (lo < hi && row[lo] == 0.0f) lo++;
        while (hi > lo && row[hi - 1] == 0.0f) hi--;
        m->fb_lo[i] = lo;
        m->fb_hi[i] = hi;
    }
    *out = m;
    return CLASP_OK;
}

const clasp_melspec_config *clasp_melspec_get_config(const clasp_melspec *m) {
    return m ? &m->cfg : NULL;
}

/* Sample i of the centre-padded signal (i in [0, n + n_fft)), pad p = n_fft/2. */
static float padded_at(const float *x, size_t n, size_t p, size_t i, clasp_mel_pad mode) {
    if (i >= p && i - p < n) return x[i - p];
    if (mode == CLASP_PAD_CONSTANT) return 0.0f;
    /* reflect without repeating the edge sample (numpy/torch "reflect"); n > p is checked */
    if (i < p) return x[p - i];
    size_t j = i - p - n; /* 0-based index past the end */
    return x[n - 2 - j];
}

clasp_status clasp_melspec_compute(clasp_melspec *m, const float *x, size_t n, float *out) {
    if (!m || !x || !out) return clasp_set_error(CLASP_ERR_ARG, "melspec_compute: NULL argument");
    const clasp_melspec_config *c = &m->cfg;
    size_t nfft = (size_t)c->n_fft, hop = (size_t)c->hop_length, p = nfft / 2;
    if (c->center && c->pad_mode == CLASP_PAD_REFLECT && n <= p)
        return clasp_set_error(CLASP_ERR_ARG,
                               "melspec: %zu samples too short for reflect padding of %zu", n, p);
    if (!c->center && n < nfft)
        return clasp_set_error(CLASP_ERR_ARG, "melspec: %zu samples shorter than n_fft %zu", n,
                               nfft);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return clasp_set_error(CLASP_ERR_NUMERIC, "melspec: non-finite sample at %zu", i);
    size_t n_frames = clasp_melspec_n_frames(c, n), nf = (size_t)m->n_freqs;
    for (size_t t = 0; t < n_frames; t++) {
        size_t start = t * hop;
        if (c->center) {
            if (start >= p && start - p + nfft <= n) {
                const float *src = x + (start - p);
                for (size_t k = 0; k < nfft; k++) m->frame[k] = src[k] * m->window[k];
            } else {
                for (size_t k = 0; k < nfft; k++)
                    m->frame[k] = padded_at(x, n, p, start + k, c->pad_mode) * m->window[k];
            }
        } else {
            for (size_t k = 0; k < nfft; k++) m->frame[k] = x[start + k] * m->window[k];
        }
        kiss_fftr(m->fft, m->frame, m->spec);
        for (size_t k = 0; k < nf; k++) {
            double re = (double)m->spec[k].r, im = (double)m->spec[k].i;
            double pw = re * re + im * im;
            m->pow[k] = c->power == 2.0 ? pw : sqrt(pw);
        }
        for (int b = 0; b < c->n_mels; b++) {
            const float *row = m->fb + (size_t)b * nf;
            double acc = 0.0;
            for (int k = m->fb_lo[b]; k < m->fb_hi[b]; k++) acc += (double)row[k] * m->pow[k];
            double v = acc;
            if (c->log == CLASP_MEL_LOG_LN)
                v = log(v > c->log_floor ? v : c->log_floor);
            else if (c->log == CLASP_MEL_LOG_DB)
                v = 10.0 * log10(v > c->log_floor ? v : c->log_floor);
            v = (v - c->norm_mean) / c->norm_std;
            out[(size_t)b * n_frames + t] = (float)v;
        }
    }
    return CLASP_OK;
}
