"""torch.compile on CPU (inductor) for the tiny models: transferlab with compile=false vs compile=true, interleaved.

For each objective (the same pinned settings as mlm.py, classification.py and clm.py): steady tokens/s after the
warm-up (which absorbs compilation and, for classification's varying lengths, the dynamic-shape recompile), the
extra wall time of the first call (compilation), and how many graphs dynamo captured (0 = the compiled module
was never called).
"""

import os
import sys
import tempfile
import time
from pathlib import Path

# A fresh inductor cache: the first compiled call pays the full compilation, as on a new machine.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="bench_inductor_"))

sys.path.insert(0, str(Path(__file__).resolve().parent))
import classification  # noqa: E402
import clm  # noqa: E402
import mlm  # noqa: E402
from common import WORK, args, interleave, quiet, rounds_line, save, summarize, table, versions  # noqa: E402
from runners import TransferlabRunner  # noqa: E402

OBJECTIVES = {
    "mlm": (mlm.PINNED, "mlm_run"),
    "classification": (classification.PINNED, "cls_run"),
    "clm": (clm.PINNED, "clm_run"),
}


class Counted:
    """A runner that also reports its call's wall time and the graphs dynamo compiled during it."""

    def __init__(self, runner):
        self.runner = runner

    def __call__(self):
        import torch._dynamo.utils as dynamo_utils

        before = dynamo_utils.counters["stats"]["unique_graphs"]
        start = time.perf_counter()
        try:
            sample = self.runner()
        except Exception as e:  # a failing compile is a result, not a crash of the bench
            raise RuntimeError(f"compile=true failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
        sample["call_s"] = time.perf_counter() - start
        sample["graphs"] = dynamo_utils.counters["stats"]["unique_graphs"] - before
        return sample


def main():
    a = args(__doc__.splitlines()[0], steps=6)
    a.warmup = max(a.warmup, 4)
    quiet()
    out, texts = {}, []
    for name, (pinned, run_dir) in OBJECTIVES.items():
        if a.quick and name == "clm":
            continue  # the slowest compile; the full run covers it
        runners = {
            f"{name}_eager": Counted(
                TransferlabRunner([*pinned, "compile=false"], WORK / run_dir, a.steps, a.warmup, lambda b: 0.0)
            ),
            f"{name}_compiled": Counted(
                TransferlabRunner([*pinned, "compile=true"], WORK / run_dir, a.steps, a.warmup, lambda b: 0.0)
            ),
        }
        metric = "real_tokens_per_s" if name == "classification" else "tokens_per_s"
        print(f"{name}:", flush=True)
        try:
            results = interleave(runners, a.repeats, a.max_foreign)
        except RuntimeError as e:
            texts.append(f"### torch.compile, {name}: FAILED\n\n{e}")
            out[name] = {"error": str(e)}
            continue
        rows = summarize(results, peer=f"{name}_eager", metric=metric)
        eager, compiled = results[f"{name}_eager"], results[f"{name}_compiled"]
        first_extra = compiled[0]["call_s"] - eager[0]["call_s"]
        graphs = [s["graphs"] for s in compiled]
        texts.append(
            table(f"torch.compile, {name} ({a.threads} torch threads)", rows, f"{name}_eager")
            + (
                f"\n\nfirst call: +{first_extra:.1f} s for compilation (empty inductor cache); "
                f"graphs compiled per call: {graphs}"
            )
            + f"\n{rounds_line(results)}"
        )
        out[name] = {"rows": rows, "first_call_extra_s": first_extra, "graphs": graphs, "rounds": results["_rounds"]}
        print(texts[-1], flush=True)
    save("compile", {"versions": versions(), "args": vars(a), "results": out, "table": "\n\n".join(texts)})


if __name__ == "__main__":
    main()
