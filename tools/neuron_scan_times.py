"""How long the MLP-neuron scan takes for the bundled model, and how it grows with the text's length.

    python -m tools.neuron_scan_times [--rounds 3] [--threads 2]

Scans 1/8, 1/4, 1/2 and all of the page's share of the validation text (neurons.MAX_TOKENS tokens),
and the whole validation split, interleaved round by round; prints the median seconds of each.
"""

import argparse
import statistics
import time

import torch

from gptviz import neurons
from gptviz.checkpoints import CHECKPOINT_DIR, load_checkpoint
from gptviz.data import TokenData


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ck = load_checkpoint(CHECKPOINT_DIR / "shakespeare-char.safetensors")
    val = TokenData.from_corpus("tinyshakespeare", ck.tokenizer).val
    sizes = [neurons.MAX_TOKENS // 8, neurons.MAX_TOKENS // 4, neurons.MAX_TOKENS // 2, neurons.MAX_TOKENS, len(val)]
    times = {n: [] for n in sizes}
    for _ in range(args.rounds):
        for n in sizes:
            start = time.perf_counter()
            neurons.scan(ck.model, val[:n])
            times[n].append(time.perf_counter() - start)
    print(f"{'tokens':>8}  {'median s':>8}  {'µs/token':>8}")
    for n, ts in times.items():
        m = statistics.median(ts)
        print(f"{n:>8,}  {m:8.2f}  {1e6 * m / n:8.1f}")


if __name__ == "__main__":
    main()
