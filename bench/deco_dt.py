"""Cost and accuracy of a coarser neural time step for deco2014 + analytic FIC (MODEL.md, "Time step").

    .venv/bin/python bench/deco_dt.py [--dts 0.1,0.5,1,2] [--G 0.5,1.0] [--seeds 3] [--frames 1200]
                                      [--json out.json]

hcp_schaefer100 subject 100206's SC (max-normalised), homogeneous g = 0.15 G, g_EE = 0.21, g_EI = 0.15,
I_0 = 0.382, sigma = 0.01, g_IE by analytic FIC; BOLD sampled at the data's TR (0.72 s), ``frames``
frames after 20 frames of burn-in, ``seeds`` noise seeds per dt, simulated as one batch (float32,
one torch thread). For every dt the FC and FCD of each seed are compared with those of every seed at
dt = 0.1 ms (the reference): r(FC_dt, FC_ref) and KS(FCD_dt, FCD_ref), beside the same numbers
between different seeds at the reference dt (the noise floor: a coarser dt is as good as the
reference when its numbers sit at that floor). Also the mean FC, the mean r_E after FIC and the
wall time of the forward run.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

import nmmfit
from nmmfit import datasets
from nmmfit.losses import mean_rate_E
from nmmfit.params.schemes import DECO2014_FIC_SCHEME
from nmmfit.presets import DECO2014
from nmmfit.stats.fc import fc_matrix, lower_tri, pearson
from nmmfit.stats.fcd import fcd_values, ks_distance, window_frames


def run(sc, tr, dt, G, seeds, frames, burn=20):
    scheme = DECO2014_FIC_SCHEME.replace(preset=DECO2014.with_dt(dt))
    m = nmmfit.RWW(sc, scheme=scheme, tr=tr, batch=seeds, init=dict(g=0.15 * G)).requires_grad_(False)
    t = time.perf_counter()
    with torch.no_grad():
        state = m(burn).state
        every = max(1, round(1.0 / m.preset.dt))                      # E, I every ~1 ms for the rate
        out = m(frames, state, step_offset=burn * m.steps_per_sample, record_every=every)
        rate = mean_rate_E(m, out.E.double(), out.I.double())
    return out.bold.double(), rate, time.perf_counter() - t, m.preset.dt


def compare(bold, ref, w, s, same_index_excluded):
    fc = lower_tri(fc_matrix(bold))
    fc_ref = lower_tri(fc_matrix(ref))
    fcd, fcd_ref = fcd_values(bold, w, s), fcd_values(ref, w, s)
    rs, ks = [], []
    for a in range(len(bold)):
        for b in range(len(ref)):
            if same_index_excluded and a == b:
                continue
            rs.append(float(pearson(fc[a], fc_ref[b])))
            ks.append(float(ks_distance(fcd[a], fcd_ref[b])))
    return float(np.mean(rs)), float(np.mean(ks))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dts", default="0.1,0.5,1,2")
    ap.add_argument("--G", default="0.5,1.0")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=1200)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    subj = datasets.load("hcp_schaefer100", subject=0)
    w, s = window_frames(subj.tr)
    dts = [float(x) for x in a.dts.split(",")]
    rows = []
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}")
    print("| G | dt (ms) | wall s | r(FC, FC_0.1) | KS(FCD, FCD_0.1) | mean FC | median r_E (Hz) |")
    print("|---|---|---|---|---|---|---|")
    for G in (float(x) for x in a.G.split(",")):
        ref, ref_rate, ref_wall, _ = run(subj.sc, subj.tr, dts[0], G, a.seeds, a.frames)
        floor = compare(ref, ref, w, s, True)
        for dt in dts:
            bold, rate, wall, used = (ref, ref_rate, ref_wall, dts[0]) if dt == dts[0] else \
                run(subj.sc, subj.tr, dt, G, a.seeds, a.frames)
            r, ks = floor if dt == dts[0] else compare(bold, ref, w, s, False)
            row = dict(G=G, dt=used, wall_s=wall, fc_r=r, fcd_ks=ks, mean_fc=float(lower_tri(fc_matrix(bold)).mean()),
                       median_rate=float(rate.median()), seeds=a.seeds, frames=a.frames)
            rows.append(row)
            label = f"{used:g} (seed vs seed)" if dt == dts[0] else f"{used:g}"
            print(f"| {G:g} | {label} | {wall:.1f} | {r:.3f} | {ks:.3f} | {row['mean_fc']:.3f} | "
                  f"{row['median_rate']:.2f} |", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
