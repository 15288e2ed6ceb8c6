"""Quick start: a shifted non-local search on a random video (CPU or GPU)."""

import time

import torch

import stnls

device = "cuda" if torch.cuda.is_available() else "cpu"
B, T, F, H, W = 1, 5, 16, 128, 128
q_vid = torch.randn(B, T, F, H, W, device=device)
k_vid = torch.randn(B, T, F, H, W, device=device)
fflow = 2 * torch.randn(B, T, 2, H, W, device=device)  # one-step flows t -> t+1 (dx, dy)
bflow = 2 * torch.randn(B, T, 2, H, W, device=device)  # one-step flows t -> t-1

search = stnls.search.NonLocalSearch(ws=5, wt=2, ps=3, k=10, nheads=2, stride0=1, stride1=0.5,
                                     self_action="anchor", itype="float")
start = time.perf_counter()
dists, inds = search(q_vid, k_vid, fflow, bflow)
print(f"device: {device}, search took {time.perf_counter() - start:.1f} s")
print("dists:", tuple(dists.shape), "# B, HD, T, nH, nW, K")
print("inds: ", tuple(inds.shape), "# B, HD, T, nH, nW, K, (dt, dh, dw)")
print("first query's neighbours (dt, dh, dw):", inds[0, 0, 0, 0, 0, :4].tolist())
