"""PyTorch CPU peers for the bench suite, one measured trial per process.

Run by bench/run.js with Debian's /usr/bin/python3 (python3-torch) as
    /usr/bin/python3 bench/peers/torch_peers.py '<trial JSON>'
and prints one line "RESULT <json>" (median_ms, ...) or {"skipped": why}.
torch.set_num_threads(2): the box has 2 cores and our kernels use 2 threads.

Shapes: S sequences x T tokens, N = S*T rows, V vocabulary entries, R sampling rows.
Loss configuration shared with every other implementation in the suite: token-level ratio,
PPO clip eps_low = eps_high = 0.2, beta = 0, 'dapo' aggregation with N_global = sum(mask),
old logp = logp detached (TRL with one optimiser step per rollout batch), all-ones mask.

Peers:
  loss/torch_trl      TRL GRPOTrainer as written: logits / temperature, selective_log_softmax
                      (gather minus a logsumexp computed in a Python loop over the sequences for
                      float32; a per-sequence log_softmax loop for bf16), entropy_from_logits under
                      no_grad (TRL logs it), the clipped loss with masks, loss.backward()
                      (autograd writes dL/dlogits).
  loss/torch_tuned    the best hand-tuned form we could write: no autograd, rows in chunks that
                      fit the L3 cache, max / exp into a preallocated gradient buffer / sum /
                      analytic gradient (g/tau)(onehot - p) scaled in place. Several chunk sizes
                      are measured and the best is reported (named in "variant").
  logprobs/torch_trl  TRL's selective_log_softmax under no_grad (how TRL gets old/ref logps).
  sample/torch_vllm   vLLM's sort-based top-k/top-p fallback (apply_top_k_top_p: ascending
                      sort, mask below the k-th value, softmax + cumsum for top-p, scatter
                      back), softmax, the exponential-race draw (probs / Exp(1), argmax), and the
                      full-vocabulary logprob of the drawn token (what GRPO keeps as old logp).
  grpoLoss/torch_trl  TRL's loss from per-token logps with autograd backward.
  groupAdvantages/torch_trl  TRL's grouped mean / std / repeat_interleave advantages.
  klPenalty/torch_trl TRL's k3 estimate exp(d) - d - 1 and its analytic gradient 1 - exp(d).
"""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
trial = json.loads(sys.argv[1]) if sys.argv[1] != "--check" else {"params": {}}
P = trial["params"]
REPS = trial.get("reps", 5)
WARMUP = trial.get("warmup", 1)
LOGIT_SCALE = 2.0  # logits ~ N(0, 2^2), as bench/cases/common.js
gen = torch.Generator().manual_seed(1)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def now_ms():
    return time.perf_counter() * 1e3


def summary(samples, method):
    s = sorted(samples)
    return {"median_ms": statistics.median(s), "min_ms": s[0], "max_ms": s[-1], "samples": len(s), "method": method}


def median_of_k(fn, before=None, reps=REPS, warmup=WARMUP):
    t = []
    for i in range(warmup + reps):
        if before:
            before()
        t0 = now_ms()
        fn()
        dt = now_ms() - t0
        if i >= warmup:
            t.append(dt)
    return summary(t, f"median of {reps} after {warmup} warm-up")


def autorange(fn, repeats=15, min_batch_ms=20.0):
    """timeit-style for the small ops: batches of n calls lasting >= 20 ms, median per call."""
    fn()
    n = 1
    while True:
        t0 = now_ms()
        for _ in range(n):
            fn()
        if now_ms() - t0 >= min_batch_ms:
            break
        n *= 2
    t = []
    for _ in range(repeats):
        t0 = now_ms()
        for _ in range(n):
            fn()
        t.append((now_ms() - t0) / n)
    return summary(t, f"timeit-style, {repeats} batches of {n} calls")


def loss_inputs():
    S, T, V = P["S"], P["T"], P["V"]
    N = S * T
    z = (torch.randn(N, V, generator=gen) * LOGIT_SCALE).to(DTYPES[P["dtype"]])
    y = torch.randint(0, V, (N,), generator=gen)
    adv = torch.randn(S, generator=gen)
    mask = torch.ones(S, T)
    return S, T, V, z, y, adv, mask


# ---- TRL as written (trl/trainer/utils.py, trl/trainer/grpo_trainer.py) ----

def selective_log_softmax(logits, index):
    if logits.dtype in [torch.float32, torch.float64]:
        selected_logits = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
        # loop to reduce peak mem consumption
        logsumexp_values = torch.stack([torch.logsumexp(lg, dim=-1) for lg in logits])
        per_token_logps = selected_logits - logsumexp_values
    else:
        per_token_logps = []
        for row_logits, row_labels in zip(logits, index):
            row_logps = F.log_softmax(row_logits, dim=-1)
            row_per_token_logps = row_logps.gather(dim=-1, index=row_labels.unsqueeze(-1)).squeeze(-1)
            per_token_logps.append(row_per_token_logps)
        per_token_logps = torch.stack(per_token_logps)
    return per_token_logps


def entropy_from_logits(logits, chunk_size=128):
    original_shape = logits.shape[:-1]
    num_classes = logits.shape[-1]
    flat_logits = logits.reshape(-1, num_classes)
    entropies = []
    for chunk in flat_logits.split(chunk_size, dim=0):
        logps = F.log_softmax(chunk, dim=-1)
        chunk_entropy = -(torch.exp(logps) * logps).sum(-1)
        entropies.append(chunk_entropy)
    return torch.cat(entropies, dim=0).reshape(original_shape)


def trl_loss_from_logps(per_token_logps, advantages, completion_mask, eps_low=0.2, eps_high=0.2):
    old_per_token_logps = per_token_logps.detach()
    log_ratio = per_token_logps - old_per_token_logps
    coef_1 = torch.exp(log_ratio)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    per_token_loss1 = coef_1 * advantages.unsqueeze(1)
    per_token_loss2 = coef_2 * advantages.unsqueeze(1)
    per_token_loss = -torch.min(per_token_loss1, per_token_loss2)
    loss = (per_token_loss * completion_mask).sum() / completion_mask.sum().clamp(min=1.0)  # dapo
    with torch.no_grad():  # the clip-ratio metrics TRL logs
        is_low = (coef_1 < 1 - eps_low) & (advantages.unsqueeze(1) < 0)
        is_high = (coef_1 > 1 + eps_high) & (advantages.unsqueeze(1) > 0)
        n = completion_mask.sum().clamp(min=1.0)
        metrics = ((is_low * completion_mask).sum() / n, (is_high * completion_mask).sum() / n)
    return loss, metrics


def loss_trl():
    S, T, V, z, y, adv, mask = loss_inputs()
    tau = P["temperature"]
    leaf = z.requires_grad_(True)
    out = {}

    def step():
        leaf.grad = None
        logits = leaf.view(S, T, V) / tau
        logps = selective_log_softmax(logits, y.view(S, T))
        with torch.no_grad():
            entropies = entropy_from_logits(logits)
        loss, _ = trl_loss_from_logps(logps, adv, mask)
        loss.backward()
        out["loss"] = loss.item()
        out["entropy"] = (entropies * mask).sum().item() / mask.sum().item()
        out["logp0"] = logps[0, 0].item()

    t = median_of_k(step)
    return {**t, "check": {"loss": out["loss"], "logp0": out["logp0"]}}


# ---- hand-tuned torch: no autograd, analytic gradient into a preallocated buffer ----

@torch.no_grad()
def tuned_step(z, y, adv_rows, mask, tau, grad, chunk, form, logp, ent):
    """One forward+backward. form 'exp': max, exp into the gradient buffer, sum (torch's own
    ops, exp_ unvectorised in this build); form 'softmax': aten's fused vectorised softmax
    kernel writes p straight into the gradient buffer (ATen's _softmax.out), logp = log p_y."""
    N, V = z.shape
    inv = 1.0 / tau
    count = float(mask.sum().clamp(min=1.0))
    f32 = z.dtype == torch.float32
    work = None if f32 else torch.empty(min(chunk, N), V)
    loss = 0.0
    for r0 in range(0, N, chunk):
        r1 = min(r0 + chunk, N)
        zc = z[r0:r1] if f32 else z[r0:r1].float()
        e = grad[r0:r1] if f32 else work[: r1 - r0]
        yc = y[r0:r1].unsqueeze(1)
        if form == "exp":
            m = zc.amax(1, keepdim=True)
            torch.sub(zc, m, out=e)
            if tau != 1.0:
                e.mul_(inv)
            e.exp_()                                     # e = exp(u - max u)
            s = e.sum(1, keepdim=True)
            su = (e * zc).sum(1, keepdim=True) * inv     # sum e*u (temp stays in cache)
            lse = m * inv + s.log()
            lp = (zc.gather(1, yc) * inv - lse).squeeze(1)
            H = (lse - su / s).squeeze(1)
            e.div_(s)                                    # p
        else:
            if tau != 1.0:
                torch.mul(zc, inv, out=e)
                torch.ops.aten._softmax.out(e, 1, False, out=e)
            else:
                torch.ops.aten._softmax.out(zc, 1, False, out=e)  # p
            uy = zc.gather(1, yc).squeeze(1) * inv
            lp = e.gather(1, yc).squeeze(1).log()
            bad = ~torch.isfinite(lp)                    # p_y underflowed: exact log_softmax there
            if bool(bad.any()):
                lp[bad] = torch.log_softmax(zc[bad] * inv, 1).gather(1, yc[bad]).squeeze(1)
            lse = uy - lp
            H = lse - (e * zc).sum(1) * inv
        logp[r0:r1] = lp
        ent[r0:r1] = H
        # clipped surrogate with old = logp detached: rho = 1, the unclipped term is selected
        a = adv_rows[r0:r1]
        rho = torch.exp(lp - lp)
        c = rho.clamp(0.8, 1.2)
        unclipped = rho * a <= c * a
        mk = mask[r0:r1]
        loss += float((-torch.minimum(rho * a, c * a) * mk).sum()) / count
        g = torch.where(unclipped, -a * rho, torch.zeros_like(a)) * mk / count    # dL/dlogp
        e.mul_((-g * inv).unsqueeze(1))                 # -g p / tau
        e.scatter_add_(1, yc, (g * inv).unsqueeze(1))  # + g onehot / tau
        if not f32:
            grad[r0:r1].copy_(e)
    return loss


def loss_tuned():
    S, T, V, z, y, adv, mask = loss_inputs()
    N = S * T
    tau = P["temperature"]
    grad = torch.empty_like(z)
    logp, ent = torch.empty(N), torch.empty(N)
    adv_rows = adv.repeat_interleave(T)
    mflat = mask.reshape(-1)
    best = None
    for form in P.get("forms", ["softmax", "exp"]):
        for chunk in P.get("chunks", [32, 128, 512]):
            if chunk > N:
                continue
            out = {}

            def step():
                out["loss"] = tuned_step(z, y, adv_rows, mflat, tau, grad, chunk, form, logp, ent)

            t = median_of_k(step)
            t["variant"] = f"{form}, chunk={chunk} rows"
            t["check"] = {"loss": out["loss"], "logp0": float(logp[0])}
            if best is None or t["median_ms"] < best["median_ms"]:
                best = t
    return best


# ---- logprobs (forward only) ----

def logprobs_trl():
    N, V = P["N"], P["V"]
    z = (torch.randn(N, V, generator=gen) * LOGIT_SCALE).to(DTYPES[P["dtype"]])
    y = torch.randint(0, V, (N,), generator=gen)
    tau = P["temperature"]
    S = P.get("S", 16)
    out = {}

    @torch.no_grad()
    def step():
        logits = z.view(S, N // S, V) / tau
        out["lp"] = selective_log_softmax(logits, y.view(S, N // S))

    t = median_of_k(step)
    return {**t, "check": {"logp0": float(out["lp"][0, 0])}}


# ---- sampling: vLLM's sort-based fallback (vllm/v1/sample/ops/topk_topp_sampler.py) ----

def apply_top_k_top_p(logits, k, p):
    logits_sort, logits_idx = logits.sort(dim=-1, descending=False)
    if k is not None:
        top_k_mask = logits_sort.size(1) - k.to(torch.long)
        top_k_mask = logits_sort.gather(1, top_k_mask.unsqueeze(dim=1))
        top_k_mask = logits_sort < top_k_mask
        logits_sort.masked_fill_(top_k_mask, -float("inf"))
    if p is not None:
        probs_sort = logits_sort.softmax(dim=-1)
        probs_sum = torch.cumsum(probs_sort, dim=-1, out=probs_sort)
        top_p_mask = probs_sum <= 1 - p.unsqueeze(dim=1)
        top_p_mask[:, -1] = False
        logits_sort.masked_fill_(top_p_mask, -float("inf"))
    logits = logits_sort.scatter(dim=-1, index=logits_idx, src=logits_sort)
    return logits


def random_sample(probs):
    q = torch.empty_like(probs)
    q.exponential_()
    return probs.div_(q).argmax(dim=-1).view(-1)


def sample_vllm():
    R, V = P["R"], P["V"]
    z0 = torch.randn(R, V, generator=gen) * P.get("scale", LOGIT_SCALE)
    logits = z0.clone()
    temp = torch.full((R,), float(P["temperature"]))
    k = torch.full((R,), int(P["topK"]), dtype=torch.long)
    p = torch.full((R,), float(P["topP"]))
    out = {}

    @torch.no_grad()
    def step():
        x = logits.to(torch.float32)
        x.div_(temp.unsqueeze(dim=1))
        logprobs = x.log_softmax(dim=-1, dtype=torch.float32)  # full-vocab logprob (old logp)
        x = apply_top_k_top_p(x, k, p)
        probs = x.softmax(dim=-1, dtype=torch.float32)
        tok = random_sample(probs)
        out["tok"] = tok
        out["lp"] = logprobs.gather(1, tok.unsqueeze(1))

    t = median_of_k(step, before=lambda: logits.copy_(z0))
    return {**t, "check": {"token0": int(out["tok"][0])}}


# ---- small per-token ops ----

def grpo_loss_trl():
    S, T = P["S"], P["T"]
    logp = -torch.randn(S, T, generator=gen).abs()
    adv = torch.randn(S, generator=gen)
    mask = torch.ones(S, T)
    leaf = logp.requires_grad_(True)
    out = {}

    def step():
        leaf.grad = None
        loss, _ = trl_loss_from_logps(leaf, adv, mask)
        loss.backward()
        out["loss"] = loss

    t = autorange(step)
    return {**t, "check": {"loss": float(out["loss"])}}


def group_adv_trl():
    S, G = P["S"], P["G"]
    rewards = (torch.rand(S, generator=gen) < 0.5).float()
    out = {}

    def step():
        mean_grouped_rewards = rewards.view(-1, G).mean(dim=1)
        std_grouped_rewards = rewards.view(-1, G).std(dim=1)
        is_std_zero = torch.isclose(std_grouped_rewards, torch.zeros_like(std_grouped_rewards))
        mean_grouped_rewards = mean_grouped_rewards.repeat_interleave(G, dim=0)
        std_grouped_rewards = std_grouped_rewards.repeat_interleave(G, dim=0)
        advantages = rewards - mean_grouped_rewards
        advantages = advantages / (std_grouped_rewards + 1e-4)
        out["a"] = advantages
        out["z"] = is_std_zero.float().mean()

    t = autorange(step)
    return {**t, "check": {"a0": float(out["a"][0])}}


def kl_trl():
    n = P["n"]
    logp = torch.randn(n, generator=gen) * 0.5
    ref = torch.randn(n, generator=gen) * 0.5
    out = {}

    @torch.no_grad()
    def step():
        d = ref - logp
        e = torch.exp(d)
        out["kl"] = e - d - 1
        out["grad"] = 1 - e

    t = autorange(step)
    return {**t, "check": {"kl0": float(out["kl"][0])}}


CASES = {
    ("loss", "torch_trl"): loss_trl,
    ("loss", "torch_tuned"): loss_tuned,
    ("logprobs", "torch_trl"): logprobs_trl,
    ("sample", "torch_vllm"): sample_vllm,
    ("grpoLoss", "torch_trl"): grpo_loss_trl,
    ("groupAdvantages", "torch_trl"): group_adv_trl,
    ("klPenalty", "torch_trl"): kl_trl,
}


def check(d):
    """bench/check.js: the loss peers on inputs it wrote to directory d (raw little-endian
    arrays + meta.json); writes each peer's dL/dlogits next to them, prints losses / logps."""
    import numpy as np
    meta = json.load(open(f"{d}/meta.json"))
    S, T, V, tau = meta["S"], meta["T"], meta["V"], meta["temperature"]
    N = S * T
    z = torch.from_numpy(np.fromfile(f"{d}/logits.f32", dtype=np.float32)).view(N, V)
    y = torch.from_numpy(np.fromfile(f"{d}/targets.i32", dtype=np.int32)).long()
    adv = torch.from_numpy(np.fromfile(f"{d}/advantages.f32", dtype=np.float32))
    mask = torch.ones(S, T)
    out = {}
    leaf = z.clone().requires_grad_(True)
    logits = leaf.view(S, T, V) / tau
    logps = selective_log_softmax(logits, y.view(S, T))
    loss, _ = trl_loss_from_logps(logps, adv, mask)
    loss.backward()
    leaf.grad.numpy().tofile(f"{d}/grad_torch_trl.f32")
    out["torch_trl"] = {"loss": loss.item(), "logp": logps.detach().reshape(-1).tolist()}
    for form in ["softmax", "exp"]:
        grad = torch.empty_like(z)
        logp, ent = torch.empty(N), torch.empty(N)
        l = tuned_step(z, y, adv.repeat_interleave(T), mask.reshape(-1), tau, grad, 4, form, logp, ent)
        grad.numpy().tofile(f"{d}/grad_torch_tuned_{form}.f32")
        out[f"torch_tuned_{form}"] = {"loss": l, "logp": logp.tolist(), "entropy": ent.tolist()}
    print("RESULT " + json.dumps(out), flush=True)


def peak_rss_mb():
    """VmHWM: this process's peak resident memory. (ru_maxrss is not reset by exec, so it would
    report the Node parent's peak.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    return None


def main():
    if sys.argv[1] == "--check":
        return check(sys.argv[2])
    fn = CASES.get((trial["kernel"], trial["impl"]))
    if fn is None:
        res = {"skipped": f"no torch peer {trial['impl']} for {trial['kernel']}"}
    else:
        res = fn()
    res["torch"] = torch.__version__
    res["threads"] = torch.get_num_threads()
    res["rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
