"""PyTorch CPU peer of grpoLossFromHidden for bench/grpo_loss_from_hidden.js, one trial per process:
    /usr/bin/python3 bench/peers/torch_hidden.py '<trial JSON>'  ->  "RESULT <json>"
The straightforward form a trainer writes: logits = F.linear(h, W) (materialised [N, V]),
log_softmax + gather for the token log-probs, the clipped GRPO loss (token level, eps 0.2,
beta 0, dapo over an all-ones mask), loss.backward() for dL/dh and dL/dW. 2 threads (the box has
2 cores). Prints which BLAS torch runs with. Peak memory: VmHWM minus VmRSS once inputs and grads exist.
"""
import json, resource, sys, time
import torch
import torch.nn.functional as F

spec = json.loads(sys.argv[1])
N, V, D, reps = spec["N"], spec["V"], spec["D"], spec["reps"]
torch.set_num_threads(2)
import os, re, subprocess
m = re.search(r"BLAS_INFO=([^,]+)", torch.__config__.show())
blas = f"BLAS_INFO={m.group(1) if m else '?'}"
try:  # Debian's torch calls libblas.so.3: which implementation the alternatives system points it to
    libs = subprocess.run(["sh", "-c", f"ldd {torch._C.__file__} | grep -i blas"], capture_output=True, text=True).stdout.split()
    blas += ", libblas.so.3 -> " + ", ".join(os.path.realpath(x) for x in libs if x.startswith("/"))
except Exception:
    pass

g = torch.Generator().manual_seed(0)
h = (torch.rand(N, D, generator=g) * 2 - 1).requires_grad_(True)
W = ((torch.rand(V, D, generator=g) * 2 - 1) * 0.08).requires_grad_(True)
targets = torch.arange(N) * 7919 % V
S = 16
adv = (torch.arange(S) % 3 - 1).float().repeat_interleave(N // S)
old = torch.full((N,), -11.9)

def step():
    h.grad.zero_()
    W.grad.zero_()
    logits = F.linear(h, W)
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)
    ratio = torch.exp(logp - old)
    loss = -torch.min(ratio * adv, torch.clamp(ratio, 0.8, 1.2) * adv).sum() / N
    loss.backward()
    return loss.item()

# Gradient buffers exist before the measurement, as in the other variants (autograd keeps them).
h.grad = torch.zeros_like(h)
W.grad = torch.zeros_like(W)
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key))
base = status("VmRSS:")
try:  # reset the high-water mark to the current size (as the node trials do)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
times, cpu = [], []
loss = 0.0
for _ in range(reps):
    c0 = time.process_time(); t0 = time.perf_counter()
    loss = step()
    times.append((time.perf_counter() - t0) * 1e3); cpu.append((time.process_time() - c0) * 1e3)
peak = status("VmHWM:") - base
times.sort(); cpu.sort()
print("RESULT " + json.dumps({"variant": "torch", "median_ms": times[len(times) // 2], "min_ms": times[0], "cpu_ms": cpu[len(cpu) // 2],
                              "extra_peak_MB": peak / 2**20, "loss": loss, "blas": f"torch {torch.__version__}, {blas}"}))
