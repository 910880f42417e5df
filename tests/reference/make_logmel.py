"""make_logmel.py: reference log-mel spectrograms for tests/test_audio.c.

Writes tests/reference/audio/logmel_<name>.safetensors, each with
  signal (n,) float32      the input waveform
  fb     (n_mels, n_freqs) float32, the mel filterbank (float64 maths, rounded once)
  logmel (n_mels, n_frames) float32, the expected output (float64 maths, rounded once)
and the config in the metadata (strings; the C test parses them).

The mel filterbank follows torchaudio.functional.melscale_fbanks (torchaudio is not installed
here, so its formulas are re-implemented below in float64: _hz_to_mel, _mel_to_hz,
_create_triangular_filterbank, norm="slaney"), which equals librosa.filters.mel(htk=...,
norm=...) for even sample rates. The STFT is numpy.fft.rfft in float64 and is checked against
torch.stft (float64) here for every config, so centre padding, pad mode and window placement
match PyTorch's.

Run: /usr/bin/python3 tests/reference/make_logmel.py
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "audio")


def hz_to_mel(f, scale):
    if scale == "htk":
        return 2595.0 * math.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    if f >= min_log_hz:
        return min_log_mel + math.log(f / min_log_hz) / logstep
    return f / f_sp


def mel_to_hz(m, scale):
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    freqs = f_sp * m
    log_t = m >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (m[log_t] - min_log_mel))
    return freqs


def melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate, norm, mel_scale):
    """torchaudio.functional.melscale_fbanks in float64; returns (n_freqs, n_mels)."""
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    m_min, m_max = hz_to_mel(f_min, mel_scale), hz_to_mel(f_max, mel_scale)
    m_pts = np.linspace(m_min, m_max, n_mels + 2)
    f_pts = mel_to_hz(m_pts, mel_scale)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    if norm == "slaney":
        enorm = 2.0 / (f_pts[2:n_mels + 2] - f_pts[:n_mels])
        fb *= enorm[None, :]
    return fb


def window(kind, n):
    i = np.arange(n, dtype=np.float64)
    if kind == "hann":
        return 0.5 - 0.5 * np.cos(2 * np.pi * i / n)
    if kind == "hann_symmetric":
        return 0.5 - 0.5 * np.cos(2 * np.pi * i / (n - 1))
    if kind == "hamming":
        return 0.54 - 0.46 * np.cos(2 * np.pi * i / n)
    return np.ones(n)


def stft_power(x, c):
    n_fft, hop, wl = c["n_fft"], c["hop_length"], c["win_length"]
    w = np.zeros(n_fft)
    off = (n_fft - wl) // 2
    w[off:off + wl] = window(c["window"], wl)
    if c["center"]:
        mode = "reflect" if c["pad_mode"] == "reflect" else "constant"
        x = np.pad(x, (n_fft // 2, n_fft // 2), mode=mode)
    n_frames = 1 + (len(x) - n_fft) // hop
    frames = np.stack([x[t * hop:t * hop + n_fft] * w for t in range(n_frames)])
    spec = np.fft.rfft(frames, axis=1)  # (n_frames, n_freqs)
    mag = np.abs(spec)
    return (mag ** 2 if c["power"] == 2 else mag), spec


def check_against_torch(x, c, spec):
    try:
        import torch
    except ImportError:
        return
    xt = torch.from_numpy(x)
    wl = c["win_length"]  # torch centres the shorter window itself
    st = torch.stft(xt, n_fft=c["n_fft"], hop_length=c["hop_length"], win_length=wl,
                    window=torch.from_numpy(window(c["window"], wl)), center=c["center"],
                    pad_mode="reflect" if c["pad_mode"] == "reflect" else "constant",
                    return_complex=True).numpy().T
    err = np.max(np.abs(st - spec))
    assert err < 1e-9 * max(1.0, np.max(np.abs(spec))), f"numpy STFT differs from torch: {err}"


def logmel(x, c):
    p, spec = stft_power(x, c)
    check_against_torch(x, c, spec)
    fmax = c["fmax"] if c["fmax"] > 0 else c["sample_rate"] / 2
    fb = melscale_fbanks(c["n_fft"] // 2 + 1, c["fmin"], fmax, c["n_mels"], c["sample_rate"],
                         c["mel_norm"], c["mel_scale"])
    mel = p @ fb  # (n_frames, n_mels)
    if c["log"] == "ln":
        mel = np.log(np.maximum(mel, c["log_floor"]))
    elif c["log"] == "db":
        mel = 10.0 * np.log10(np.maximum(mel, c["log_floor"]))
    mel = (mel - c["norm_mean"]) / c["norm_std"]
    return fb.T, mel.T


def signal(sr, seconds, seed):
    """Chirp + two tones + white noise, with a silent stretch: float32."""
    rng = np.random.default_rng(seed)
    n = int(round(sr * seconds))
    t = np.arange(n) / sr
    f0, f1 = 100.0, 0.45 * sr
    chirp = 0.4 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds)))
    tones = 0.2 * np.sin(2 * np.pi * 440.0 * t) + 0.1 * np.sin(2 * np.pi * 0.3 * sr * t)
    x = chirp + tones + 0.05 * rng.standard_normal(n)
    x[n // 3:n // 3 + n // 10] = 0.0  # silence: must hit the log floor, not -inf
    return x.astype(np.float32)


BASE = dict(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, window="hann",
            center=True, pad_mode="reflect", n_mels=64, fmin=0.0, fmax=8000.0, mel_scale="htk",
            mel_norm="none", power=2, log="ln", log_floor=1e-10, norm_mean=0.0, norm_std=1.0)

CONFIGS = {
    # 16 kHz, HTK, centre reflect, ln, normalised (a CLAP/AST-like front-end)
    "htk16k": dict(fmin=50.0, norm_mean=-4.0, norm_std=4.0),
    # 16 kHz, Slaney scale + Slaney norm, no centre, dB (librosa / Whisper-like filterbank)
    "slaney16k": dict(n_fft=400, win_length=400, n_mels=80, mel_scale="slaney",
                      mel_norm="slaney", center=False, log="db"),
    # 8 kHz, Slaney scale without norm, centre with zero padding, magnitude, ln floor 1e-5
    "slaney8k": dict(sample_rate=8000, n_fft=256, win_length=256, hop_length=80, fmax=4000.0,
                     mel_scale="slaney", pad_mode="constant", power=1, log_floor=1e-5),
    # 8 kHz, HTK with Slaney norm, symmetric window shorter than n_fft, dB, fmax = Nyquist
    "htk8k": dict(sample_rate=8000, n_fft=200, win_length=160, hop_length=80, n_mels=40,
                  fmin=20.0, fmax=0.0, mel_norm="slaney", window="hann_symmetric", log="db",
                  norm_mean=-30.0, norm_std=20.0),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (name, over) in enumerate(CONFIGS.items()):
        c = dict(BASE)
        c.update(over)
        x = signal(c["sample_rate"], 0.6, 1234 + i)
        fb, mel = logmel(x.astype(np.float64), c)
        assert np.all(np.isfinite(mel))
        meta = {k: (str(int(v)) if isinstance(v, bool) else str(v)) for k, v in c.items()}
        path = os.path.join(OUT, f"logmel_{name}.safetensors")
        stio.save(path, {"signal": x, "fb": fb.astype(np.float32),
                         "logmel": mel.astype(np.float32)}, meta)
        print(f"{path}: signal {x.shape} fb {fb.shape} logmel {mel.shape}")


if __name__ == "__main__":
    main()
