"""Choose the prose domain's LM weight, word bonus and unknown-word penalty on a training fold, never fold 0.

    python scripts/tune_prose_lm.py                       # fold 1 of VNOnDB, the shipped default
    python scripts/tune_prose_lm.py --fold 2 --limit 0    # another fold, all its lines

The LM searched is built for the purpose without the texts of fold 0's and the tuning fold's writers
(`scripts/build_lm.py prose --held-out-folds 0 <fold>`), so the tuning lines are as new to it as fold 0's
are to the shipped LM. The model did train on the tuning fold's images, which makes its readings there
a little better than on unseen writers (plain CER about 20 % against 23 % on fold 0). Prints CER and WER
of the plain reading and of each setting, and the ms per line the search adds.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import torch

import vihtr  # noqa: F401  (torchvision fix first)
from vihtr.inference.ctc_lm import KenLMCTCDecoder
from vihtr.inference.predictor import Predictor
from vihtr.models.decoding import ctc_best_path
from vihtr.paths import REPO_ROOT
from vihtr.text.metrics import LineMetrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_lm  # noqa: E402
import release  # noqa: E402


def frame_log_probs(predictor: Predictor, lines) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each line's CTC log-probs (1 x T x V) and padding mask, read alone by the predictor's model."""
    preprocess = predictor.preprocesses[0]
    out = []

    def capture(log_probs, padding_mask):
        out.append((log_probs.clone(), padding_mask.clone()))
        return ctc_best_path(log_probs, padding_mask)

    for line in lines:
        tensor = predictor._bucketed(preprocess(line.image), preprocess)
        batch = [(tensor[None], torch.tensor([tensor.shape[-1]]))]
        predictor.decoder(batch, method="ctc", ctc_decoder=capture)
    return out


def error_rates(readings: list[str], targets: list[str]) -> tuple[float, float]:
    metrics = LineMetrics()
    metrics.update(readings, targets)
    scores = metrics.compute()
    return scores["cer"], scores["wer"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(REPO_ROOT / "models" / "vihtr-lite1"))
    parser.add_argument("--fold", type=int, default=1, help="the tuning fold (not 0)")
    parser.add_argument("--limit", type=int, default=400, help="seeded lines of the fold (0: all)")
    parser.add_argument("--alpha", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    parser.add_argument("--beta", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--unk-offset", type=float, nargs="+", default=[-5.0, -10.0])
    parser.add_argument("--beam-width", type=int, nargs="+", default=[16])
    parser.add_argument("--prune-below", type=int, default=1, help="as build_lm.py")
    parser.add_argument("--order", type=int, default=3, help="as build_lm.py")
    args = parser.parse_args(argv)
    if args.fold == 0:
        parser.error("fold 0 is held out: tune on a training fold")

    with tempfile.TemporaryDirectory() as tmp:
        lm = Path(tmp) / "prose.arpa.gz"
        build_lm.main(["prose", "--held-out-folds", "0", str(args.fold), "-o", str(lm),
                       "--prune-below", str(args.prune_below), "--order", str(args.order)])  # fmt: skip
        predictor = Predictor.from_release(args.model, backend="onnx", threads=2)
        held = argparse.Namespace(
            fold=args.fold, data_root=str(release.DEFAULT_DATA), limit=args.limit or None, sources=["vnondb"]
        )
        lines = release.held_out(held, predictor)["vnondb"]
        targets = [line.text for line in lines]
        frames = frame_log_probs(predictor, lines)
        plain = [predictor.charset.decode(ctc_best_path(*f).token_ids[0]) for f in frames]
        cer, wer = error_rates(plain, targets)
        print(f"\n{len(lines)} VNOnDB lines of fold {args.fold}; plain reading: CER {100 * cer:.2f} %, "
              f"WER {100 * wer:.2f} %\n")  # fmt: skip
        print("| alpha | beta | unk offset | beam | CER | WER | ms per line |\n|---|---|---|---|---|---|---|")
        grid = itertools.product(args.alpha, args.beta, args.unk_offset, args.beam_width)
        for alpha, beta, unk, beam in grid:
            search = KenLMCTCDecoder(
                predictor.charset, lm, alpha=alpha, beta=beta, unk_offset=unk, beam_width=beam, keyed=True
            )
            start = time.perf_counter()
            readings = [predictor.charset.decode(search(*f).token_ids[0]) for f in frames]
            ms = (time.perf_counter() - start) * 1000 / len(frames)
            cer, wer = error_rates(readings, targets)
            print(f"| {alpha} | {beta} | {unk} | {beam} | {100 * cer:.2f} % | {100 * wer:.2f} % | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
