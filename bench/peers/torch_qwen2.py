# PyTorch peer of bench/hf_model.ts: a straightforward HF-style Qwen2 decoder (the shape of
# Qwen2.5-0.5B by default) timed for forward and forward+backward tokens/s on the CPU.
# Usage: /usr/bin/python3 bench/peers/torch_qwen2.py '<json: hidden, layers, heads, kv, inter, vocab, B, L, reps, threads>'
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

c = json.loads(sys.argv[1])
torch.set_num_threads(c["threads"])
torch.manual_seed(0)
d, H, KV, hd, I, V = c["hidden"], c["heads"], c["kv"], c["hidden"] // c["heads"], c["inter"], c["vocab"]

class RMSNorm(nn.Module):
    def __init__(self, n, eps=1e-6):
        super().__init__(); self.w = nn.Parameter(torch.ones(n)); self.eps = eps
    def forward(self, x):
        v = x.pow(2).mean(-1, keepdim=True)
        return self.w * (x * torch.rsqrt(v + self.eps))

def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)

class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = RMSNorm(d), RMSNorm(d)
        self.q, self.k, self.v = nn.Linear(d, H * hd), nn.Linear(d, KV * hd), nn.Linear(d, KV * hd)
        self.o = nn.Linear(H * hd, d, bias=False)
        self.g, self.u, self.dn = nn.Linear(d, I, bias=False), nn.Linear(d, I, bias=False), nn.Linear(I, d, bias=False)
    def forward(self, x, cos, sin, mask):
        B, L, _ = x.shape
        h = self.ln1(x)
        q = self.q(h).view(B, L, H, hd).transpose(1, 2)
        k = self.k(h).view(B, L, KV, hd).transpose(1, 2)
        v = self.v(h).view(B, L, KV, hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
        a = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5 + mask, dim=-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(B, L, H * hd))
        h = self.ln2(x)
        return x + self.dn(F.silu(self.g(h)) * self.u(h))

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, d)
        self.layers = nn.ModuleList([Layer() for _ in range(c["layers"])])
        self.norm = RMSNorm(d)
    def forward(self, ids):
        B, L = ids.shape
        inv = 1.0 / (1000000.0 ** (torch.arange(0, hd, 2).float() / hd))
        f = torch.outer(torch.arange(L).float(), inv)
        emb = torch.cat((f, f), -1)
        cos, sin = emb.cos(), emb.sin()
        mask = torch.full((L, L), float("-inf")).triu(1)
        x = self.emb(ids)
        for l in self.layers:
            x = l(x, cos, sin, mask)
        return self.norm(x) @ self.emb.weight.T  # tied head (Qwen2.5-0.5B)

m = Model()
B, L = c["B"], c["L"]
ids = torch.randint(0, V, (B, L))
R = torch.randn(B, L, V)
out = {"blas": [l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.lower()][:1], "threads": torch.get_num_threads(), "torch": torch.__version__}
fw, fb = [], []
(m(ids) * R).sum().backward()  # untimed warm-up round, as the ours trial does
for _ in range(c["reps"]):
    t = time.perf_counter()
    with torch.no_grad():
        m(ids)
    fw.append(time.perf_counter() - t)
    t = time.perf_counter()
    m.zero_grad(set_to_none=False)
    (m(ids) * R).sum().backward()
    fb.append(time.perf_counter() - t)
out["forward_s"], out["fwdbwd_s"] = fw, fb
print(json.dumps(out))
