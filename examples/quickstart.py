"""Quick start: search a video for similar patches, then aggregate them (attention).

Runs on the GPU when one is available, else on the CPU.
"""

import torch as th

import stnls

# -- init --
device = "cuda" if th.cuda.is_available() else "cpu"
B, T = 1, 5  # batch size, number of frames
F, H, W = 16, 128, 128  # number of features, height, width
q_vid = th.randn((B, T, F, H, W), device=device)
k_vid = th.randn((B, T, F, H, W), device=device)
v_vid = th.randn((B, T, F, H, W), device=device)

# -- search info --
ws = 5  # spatial window size
wt = 2  # temporal window size; searching total frames W_t = 2*wt+1
ps, K, HD = 3, 10, 2  # patch size, number of neighbors, number of heads
stride0, stride1 = 1, 0.5  # query & key stride

# -- run search --
search = stnls.search.NonLocalSearch(ws, wt, ps, K, nheads=HD,
                                     stride0=stride0, stride1=stride1,
                                     self_action="anchor", itype="float")
dists, srch_flows = search(q_vid, k_vid)
print("srch_flows.shape: ", srch_flows.shape)  # B,HD,T,nH,nW,K,3; nH=(H-1)//stride0+1

# -- normalize --
# dists are l2 distances (smaller is closer), so the weights favour small ones.
weights = th.nn.functional.softmax(-10 * dists / (ps * ps * F // HD), -1)

# -- aggregate --
agg = stnls.agg.WeightedPatchSum(ps=ps, stride0=stride0, itype="float")
V_out = agg(v_vid, weights, srch_flows)
print("V_out.shape: ", V_out.shape)  # B,T,F,H,W
