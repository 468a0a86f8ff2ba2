"""Shared bench helpers: interleaved timing, foreign-load check, peak RSS, matmul peak, FLOP estimates, tables.

Every comparison runs its runners interleaved in one process (A, B, C, A, B, C, ...) so that load from other
processes hits all of them alike; a runner's number is the median over rounds, and its ratio to the peer is the
median of the per-round ratios.
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

for key, value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
}.items():
    os.environ.setdefault(key, value)
warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "outputs" / "bench"  # tokenizers, run dirs and result JSON (ignored by git)
RESULTS = WORK / "results"
# The recipe every bench gives transferlab and its peers alike: AdamW lr 1e-3 with weight decay 0.01, 6% linear
# warm-up then linear decay, clip 1.0, fp32.
RECIPE = [
    "optimizer.lr=1e-3",
    "optimizer.weight_decay=0.01",
    "scheduler.name=linear",
    "scheduler.warmup_ratio=0.06",
    "trainer.gradient_clip_val=1.0",
    "trainer.precision=32-true",
]


def quiet() -> None:
    """Silence progress bars and framework chatter so the tables stay readable."""
    import logging

    import lightning.pytorch  # noqa: F401  (it sets its own logger to INFO on import; override after)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "transformers", "datasets", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import datasets

    datasets.disable_progress_bars()


def args(description: str, steps: int, repeats: int = 3, options: dict | None = None) -> argparse.Namespace:
    """The options every bench takes, plus its own: {flag: (type, default, help)}."""
    p = argparse.ArgumentParser(description=description)
    for flag, (kind, default, text) in (options or {}).items():
        p.add_argument(flag, type=kind, default=default, help=text)
    p.add_argument("--quick", action="store_true", help="fewer steps (a smoke run; numbers are noisier)")
    p.add_argument("--steps", type=int, default=steps, help="timed optimizer steps per runner per round")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed window")
    p.add_argument("--repeats", type=int, default=repeats, help="rounds (median over them)")
    p.add_argument(
        "--runners",
        default=None,
        help="comma-separated subset of the runners (e.g. transferlab,raw_transferlab "
        "with many --repeats for a tighter overhead number)",
    )
    p.add_argument(
        "--profile", action="store_true", help="after the rounds, torch.profiler top ops of the main runners"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's, one per core); on a shared box "
        "--threads 1 leaves a core to the neighbours and stays stable",
    )
    p.add_argument(
        "--max-foreign",
        type=float,
        default=None,
        help="cores used by other processes during a timed window above "
        "which the call is repeated (default: the cores this run leaves free + 0.25)",
    )
    a = p.parse_args()
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    a.threads = torch.get_num_threads()
    if a.max_foreign is None:
        a.max_foreign = max(0, (os.cpu_count() or 1) - a.threads) + 0.25
    if a.quick:
        a.steps, a.warmup, a.repeats = max(3, a.steps // 3), 2, min(a.repeats, 3)
    return a


# ---------------------------------------------------------------- load, memory, peak


class ForeignLoad:
    """Cores used by *other* processes during a window: busy jiffies system-wide minus this process's CPU time."""

    @staticmethod
    def _busy() -> float:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait

    def __enter__(self):
        self.t, self.busy, self.own = (
            time.perf_counter(),
            self._busy(),
            sum(os.times()[:4]),
        )  # self + waited-for children
        self.loadavg = os.getloadavg()[0]
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t
        own = sum(os.times()[:4]) - self.own
        self.cores = max(0.0, (self._busy() - self.busy - own) / wall) if wall > 0 else 0.0


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 5 ms), in MiB."""

    def __enter__(self):
        import psutil

        self._proc, self._stop, self.peak = psutil.Process(), threading.Event(), 0
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss) / 2**20


def matmul_peak_gflops(n: int = 1024, reps: int = 10) -> float:
    """fp32 GEMM throughput of this machine right now: the ceiling the runners are measured against."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    t = time.perf_counter()
    for _ in range(reps):
        torch.matmul(a, b)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


# ---------------------------------------------------------------- FLOPs


def encoder_flops(batch: int, seq: int, n_layer: int, d: int, ff: int, head_rows: float, head_params: int) -> float:
    """Training FLOPs (forward + backward = 3 x forward) of one batch of a BERT/GPT-2 style stack.

    per token: 6 * N_layers (N_layers = n_layer * (4 d^2 + 2 d ff), the non-embedding matmul weights)
             + 12 * n_layer * seq * d          (attention scores QK^T and the weighted sum AV, over the padded length)
    per batch: + 6 * head_params * head_rows   (the output head, run on head_rows rows: every position for a dense
                                                MLM/CLM head, only the masked positions for the sparse MLM head,
                                                one row per sequence for a classifier)
    Embedding look-ups, layer norms, softmax and the loss are memory-bound and not counted.
    """
    tokens = batch * seq
    return tokens * (6 * n_layer * (4 * d * d + 2 * d * ff) + 12 * n_layer * seq * d) + 6 * head_params * head_rows


def model_dims(config) -> dict:
    """n_layer, d, ff from a transformers BERT or GPT-2 config."""
    n_layer = getattr(config, "num_hidden_layers", None) or config.n_layer
    d = getattr(config, "hidden_size", None) or config.n_embd
    ff = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * d
    return {"n_layer": n_layer, "d": d, "ff": ff}


# ---------------------------------------------------------------- timing


@dataclass
class StepLog:
    """End time, tokens, non-pad tokens and FLOPs of every optimizer step of one run."""

    ends: list = field(default_factory=list)
    tokens: list = field(default_factory=list)
    real: list = field(default_factory=list)
    flops: list = field(default_factory=list)
    warmup: int = 3
    load: object = None

    def batch(self, tokens: int, real: int, flops: float) -> None:
        self.tokens.append(tokens)
        self.real.append(real)
        self.flops.append(flops)

    def step_end(self) -> None:
        self.ends.append(time.perf_counter())
        if len(self.ends) == self.warmup:  # the timed window starts: watch other processes' CPU use from here
            self.load = ForeignLoad().__enter__()

    def window(self) -> dict:
        """Steps warmup..end: from the end of step warmup-1 to the end of the last step (data loading included)."""
        n, warmup = len(self.ends), self.warmup
        if n <= warmup:
            raise RuntimeError(f"only {n} steps ran; need more than warmup={warmup}")
        seconds = self.ends[-1] - self.ends[warmup - 1]
        tok, real, flops = (sum(x[warmup:n]) for x in (self.tokens, self.real, self.flops))
        self.load.__exit__(None, None, None)
        return {
            "foreign_cores": round(self.load.cores, 2),
            "seconds": seconds,
            "tokens_per_s": tok / seconds,
            "real_tokens_per_s": real / seconds,
            "pad_share": 1 - real / tok,
            "gflops": flops / seconds / 1e9,
            "steps": n - warmup,
            "step_ms": [round(1e3 * (b - a), 1) for a, b in zip(self.ends, self.ends[1:])],
        }


def wait_quiet(threshold: float, max_wait: float = 30.0) -> float:
    """Wait (up to max_wait s) until other processes use less than `threshold` cores for two 0.5 s windows in a row.

    Needed on a shared 2-core box: with 2 OpenMP threads, one busy foreign process makes a step ~10x slower.
    """
    start, calm = time.perf_counter(), 0
    while calm < 2 and time.perf_counter() - start < max_wait:
        with ForeignLoad() as load:
            time.sleep(0.5)
        calm = calm + 1 if load.cores < threshold else 0
    return time.perf_counter() - start


def select(runners: dict, names: str | None) -> dict:
    if not names:
        return runners
    unknown = set(names.split(",")) - set(runners)
    if unknown:
        raise SystemExit(f"unknown runners {sorted(unknown)}; choose from {list(runners)}")
    return {k: runners[k] for k in names.split(",")}  # in the order given: flip it to check for order effects


def peer_of(runners: dict, preferred: str = "hf_trainer") -> str:
    return preferred if preferred in runners else next(iter(runners))


def interleave(runners: dict, repeats: int, max_foreign: float, retries: int = 3) -> dict:
    """`repeats` rounds; each round runs every runner once, in order (A, B, C, A, B, C, ...).

    runners: name -> callable returning StepLog.window(...) as a dict. A call whose timed window saw other
    processes use more than max_foreign cores is repeated (after waiting for quiet) up to `retries` times; a call
    still loaded after that is kept and flagged. Returns name -> list of per-round dicts, plus '_rounds'.
    """
    out = {name: [] for name in runners}
    rounds = []
    for r in range(repeats):
        row, waited = {}, 0.0
        waited += wait_quiet(max_foreign)
        peak = matmul_peak_gflops()
        for name, run in runners.items():
            for attempt in range(retries + 1):
                with PeakRSS() as rss:
                    sample = run()
                sample.update(rss_mb=rss.peak, attempts=attempt + 1, loaded=sample["foreign_cores"] > max_foreign)
                if not sample["loaded"]:
                    break
                waited += wait_quiet(max_foreign)
            row[name] = sample
        rounds.append(
            {
                "foreign_cores": {n: row[n]["foreign_cores"] for n in runners},
                "loadavg": round(os.getloadavg()[0], 2),
                "peak_gflops": peak,
                "loaded": any(row[n]["loaded"] for n in runners),
                "waited_s": round(waited, 1),
                "attempts": {n: row[n]["attempts"] for n in runners},
            }
        )
        for name in runners:
            out[name].append({**row[name], "round": r, "peak_gflops": peak})
        summary = "  ".join(f"{n}={row[n]['real_tokens_per_s']:.0f}" for n in runners)
        print(
            f"  round {r + 1}: {summary} tok/s | foreign cores {list(rounds[-1]['foreign_cores'].values())}, "
            f"attempts {list(rounds[-1]['attempts'].values())}, "
            f"waited {waited:.0f}s{' LOADED' if rounds[-1]['loaded'] else ''}",
            flush=True,
        )
    out["_rounds"] = rounds
    return out


def summarize(results: dict, peer: str, metric: str = "real_tokens_per_s") -> list:
    """One row per runner: medians over the clean rounds (all rounds if fewer than 3 are clean)."""
    rounds = results["_rounds"]
    use = list(range(len(rounds)))
    rows = []
    for name, samples in results.items():
        if name.startswith("_"):
            continue
        s = [samples[i] for i in use]
        ratios = [a[metric] / results[peer][i][metric] for a, i in zip(s, use)]
        util = [a["gflops"] / a["peak_gflops"] for a in s]
        rows.append(
            {
                "runner": name,
                "tokens_per_s": statistics.median(a[metric] for a in s),
                "all_tokens_per_s": statistics.median(a["tokens_per_s"] for a in s),
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "pad_share": statistics.median(a["pad_share"] for a in s),
                "rss_mb": max(a["rss_mb"] for a in s),
                "gflops": statistics.median(a["gflops"] for a in s),
                "util": statistics.median(util),
                "rounds": len(use),
                "loaded_calls": sum(a["loaded"] for a in s),
            }
        )
    return rows


def overhead(results: dict, product: str, raw: str, metric: str) -> float | None:
    """1 - product/raw throughput: the median of the per-round ratios (the framework's cost on the same work)."""
    if product not in results or raw not in results:
        return None
    return 1 - statistics.median(p[metric] / r[metric] for p, r in zip(results[product], results[raw]))


def overhead_line(over: float | None, results: dict, metric: str = "tokens_per_s") -> str:
    if over is None:
        return "transferlab overhead vs raw_transferlab: not measured in this run (runner subset)"
    ratios = [p[metric] / r[metric] for p, r in zip(results["transferlab"], results["raw_transferlab"])]
    return (
        f"transferlab overhead vs raw_transferlab (median of per-round ratios): {100 * over:.1f}% "
        f"(per-round transferlab/raw: {[round(x, 3) for x in ratios]})"
    )


def settings_line(cfg) -> str:
    return (
        f"{cfg.data.max_seq_len} tokens, batch {cfg.data.batch_size}, lr {cfg.optimizer.lr:g}, "
        f"warm-up {cfg.scheduler.warmup_ratio:g}, clip {cfg.trainer.gradient_clip_val:g}"
    )


def table(title: str, rows: list, peer: str, metric_name: str = "tokens/s") -> str:
    flops = any(r["gflops"] for r in rows)
    head = f"| runner | {metric_name} (median) | ratio vs {peer} [min-max] | pad share | peak RSS MiB |"
    head += " model GFLOP/s | % of matmul peak |" if flops else ""
    lines = [f"### {title}", "", head, "|" + "---|" * (7 if flops else 5)]
    for r in rows:
        line = (
            f"| {r['runner']} | {r['tokens_per_s']:,.0f} | "
            f"{r['ratio']:.2f}x [{r['ratio_min']:.2f}-{r['ratio_max']:.2f}] | "
            f"{100 * r['pad_share']:.1f}% | {r['rss_mb']:,.0f} |"
        )
        lines.append(line + (f" {r['gflops']:.1f} | {100 * r['util']:.0f}% |" if flops else ""))
    return "\n".join(lines)


def rounds_line(results: dict) -> str:
    r = results["_rounds"]
    peaks = [x["peak_gflops"] for x in r]
    worst = [max(x["foreign_cores"].values()) for x in r]
    return (
        f"rounds: {len(r)} ({sum(x['loaded'] for x in r)} with a call still loaded after retries); worst foreign load "
        f"per round (cores): {worst}; "
        f"retried calls: {sum(sum(x['attempts'].values()) - len(x['attempts']) for x in r)}; "
        f"waited for quiet: {sum(x['waited_s'] for x in r):.0f}s; "
        f"matmul peak median {statistics.median(peaks):.1f} GFLOP/s"
    )


def save(name: str, payload: dict, runners: str | None = None) -> Path:
    """results/<name>.json; a run on a runner subset goes to <name>__<runners>.json and leaves the full one alone."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{name}__{runners.replace(',', '+')}" if runners else name
    path = RESULTS / f"{name}.json"
    payload = {"date": time.strftime("%Y-%m-%d %H:%M"), "python": sys.version.split()[0], **payload}
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path


def versions() -> dict:
    import lightning
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "lightning": lightning.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }


def profile_top(name: str, fn, rows: int = 15) -> str:
    """torch.profiler over one call of fn: the ops that took the most self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    text = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=48)
    return f"#### profile: {name}\n```\n{text}\n```"
