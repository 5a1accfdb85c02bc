"""PyTorch peers of bench/gpu/bench.ts on the GPU, timed with CUDA events (median).

    python3 bench/gpu/torch_gpu_peers.py '{"N": 8192, "V": 151936, "R": 128, "iters": 15}'

prints one line "RESULT <json>" per peer. Shapes as bench.ts: N rows of V bf16 logits
(S = N / 1024 sequences), R sampling rows of float32.

  loss/trl_eager      TRL GRPOTrainer's loss as written: selective_log_softmax (logsumexp per
                      sequence for bf16: TRL loops over rows), token ratio exp(logp - old), the
                      clipped surrogate, masks, 'dapo' token mean, loss.backward().
  loss/trl_compile    the same function under torch.compile.
  logprobs/trl_eager  selective_log_softmax under no_grad.
  sample/vllm_eager   vLLM's sort-based top-k/top-p then the exponential-race draw.
"""
import json
import statistics
import sys

import torch

if not torch.cuda.is_available():
    print("torch has no CUDA device", file=sys.stderr)
    sys.exit(1)

P = json.loads(sys.argv[1])
N, V, R, ITERS = P["N"], P["V"], P["R"], P.get("iters", 15)
dev = torch.device("cuda")
g = torch.Generator(device=dev).manual_seed(1)


def timed(fn, warmup=2):
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(ITERS):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ms.append(a.elapsed_time(b))
    return statistics.median(ms)


def selective_log_softmax(logits, index):
    # TRL trl/trainer/utils.py: for bf16/fp16 a per-row log_softmax loop (memory), else logsumexp
    if logits.dtype in (torch.float32, torch.float64):
        sel = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
        lse = torch.stack([torch.logsumexp(l, dim=-1) for l in logits])
        return sel - lse
    out = []
    for row_logits, row_labels in zip(logits, index):
        row_logps = torch.nn.functional.log_softmax(row_logits, dim=-1)
        out.append(row_logps.gather(dim=-1, index=row_labels.unsqueeze(-1)).squeeze(-1))
    return torch.stack(out)


S = max(1, N // 1024)
T = N // S
logits0 = (torch.randn(S, T, V, device=dev, generator=g) * 2).to(torch.bfloat16)
targets = torch.randint(0, V, (S, T), device=dev, generator=g)
adv = torch.randn(S, device=dev, generator=g)
mask = torch.ones(S, T, device=dev)
old = torch.full((S, T), -12.0, device=dev)


def trl_loss(logits):
    logp = selective_log_softmax(logits, targets)
    ratio = torch.exp(logp - old)
    clipped = torch.clamp(ratio, 0.8, 1.2)
    per_token = -torch.min(ratio * adv.unsqueeze(1), clipped * adv.unsqueeze(1))
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)


def run_loss(f):
    x = logits0.detach().requires_grad_(True)
    f(x).backward()


def emit(name, ms):
    print("RESULT " + json.dumps({"name": name, "median_ms": ms}), flush=True)


with torch.no_grad():
    emit("logprobs/trl_eager", timed(lambda: selective_log_softmax(logits0, targets)))
emit("loss/trl_eager", timed(lambda: run_loss(trl_loss)))
try:
    compiled = torch.compile(trl_loss)
    emit("loss/trl_compile", timed(lambda: run_loss(compiled), warmup=3))
except Exception as e:  # no compiler toolchain on the machine
    print(f"torch.compile unavailable: {e}", file=sys.stderr)
del logits0

zs = torch.randn(R, V, device=dev, generator=g) * 3


def vllm_sample(logits, k=50, p=0.95):
    logits_sort, logits_idx = logits.sort(dim=-1, descending=False)
    top_k_mask = logits_sort.size(1) - k
    kth = logits_sort.gather(1, torch.full((R, 1), top_k_mask, device=dev))
    logits_sort.masked_fill_(logits_sort < kth, -float("inf"))
    probs_sort = logits_sort.softmax(dim=-1)
    probs_sum = probs_sort.cumsum(dim=-1)
    top_p_mask = probs_sum <= 1 - p
    top_p_mask[:, -1] = False
    logits_sort.masked_fill_(top_p_mask, -float("inf"))
    logits = logits_sort.scatter(dim=-1, index=logits_idx, src=logits_sort)
    probs = logits.softmax(dim=-1)
    q = torch.empty_like(probs).exponential_(generator=g)
    tok = probs.div(q).argmax(dim=-1)
    return tok, torch.log_softmax(zs, dim=-1).gather(1, tok.unsqueeze(1))


with torch.no_grad():
    emit("sample/vllm_eager (top-k 50, top-p 0.95)", timed(lambda: vllm_sample(zs)))
