"""CTC prefix beam search with a KenLM word n-gram (`pyctcdecode` + `kenlm`), for the address and prose domains.

The LMs are ARPA files that `make lm` builds (`scripts/build_lm.py`): the address LM from synthetic
addresses over the `vietnamadminunits` database, its words as written; the prose LM from public
Vietnamese text, its words keyed by `vihtr.text.lexicon.lm_key` (syllables without case or punctuation,
numbers as one word), which `KeyedLanguageModel` applies while searching. An LM's vocabulary
(`<lm>.unigrams`) tells the search which partial words are known. Hypotheses are ranked by
    log p_ctc + alpha * log p_lm + beta * words (+ `unk_offset` for a word outside the vocabulary),
so a misread unit name ("Đồng Trn") loses to the one the LM knows ("Đồng Tháp") only when the image
leaves room for it.

A line's characters get the probability the model gave them: the highest frame probability of that
character within the frames pyctcdecode aligned to its word.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from vihtr.models.decoding import FIRST_CHAR_ID, DecodeResult
from vihtr.text.charset import Charset
from vihtr.text.lexicon import NUMBER, PUNCTUATION, is_number, lm_key

# chosen on half of the held-out Kalapa fold 0 writers (see issue 10's note); the other half agreed
DEFAULT_ALPHA = 0.3
DEFAULT_BETA = 1.0
DEFAULT_UNK_OFFSET = -10.0
DEFAULT_BEAM_WIDTH = 8  # 16 read no better on held-out Kalapa and costs twice the time
# prose: chosen on VNOnDB fold 1 lines with an LM built without fold 0's and fold 1's texts (see the
# model card); a beam of 16 read 0.5 points better than 8 there, and 48 no better than 16
PROSE_ALPHA = 0.5
PROSE_BETA = 1.0
PROSE_UNK_OFFSET = -10.0
PROSE_BEAM_WIDTH = 16
LOG10_TO_LN = 2.302585092994046


SURE_BLANK = 0.999  # a frame this sure of the blank only separates characters: runs of them keep one


def drop_sure_blanks(logp: np.ndarray) -> np.ndarray:
    """Frames (T x (1 + chars) log-probs, blank first) without the repeats of near-certain blank frames:
    half the frames of a line, the same beams (measured on held-out Kalapa: identical text), half the time."""
    if len(logp) == 0:
        return logp
    blank = logp[:, 0] > np.log(SURE_BLANK)
    keep = ~blank | np.concatenate([[True], ~blank[:-1]])
    return logp[keep]


def unigrams_path(lm_path: str | os.PathLike) -> Path:
    return Path(f"{lm_path}.unigrams")


def _keyed_language_model(kenlm_model, unigrams: list[str], alpha: float, beta: float, unk_offset: float):
    """A pyctcdecode `LanguageModel` that scores each word by its `lm_key`: "Phải," is scored as "phải",
    a number as `<num>`, punctuation alone not at all (it keeps the state and gets only the word bonus)."""
    import pygtrie
    from pyctcdecode.language_model import LanguageModel, _get_empty_lm_state

    class KeyedLanguageModel(LanguageModel):
        def __init__(self) -> None:
            super().__init__(kenlm_model, None, alpha=alpha, beta=beta, unk_score_offset=unk_offset)
            self._keys = frozenset(k for k in unigrams if k in kenlm_model)
            self._prefixes = pygtrie.CharTrie.fromkeys(self._keys)

        def score_partial_token(self, partial_token: str) -> float:
            key = partial_token.lower().lstrip(PUNCTUATION)
            complete = key.rstrip(PUNCTUATION)
            if not complete or is_number(key):
                return 0.0
            known = self._prefixes.has_node(key) if complete == key else complete in self._keys
            penalty = 0.0 if known else self.unk_score_offset
            return penalty * max(1.0, len(key) / 6)  # as pyctcdecode: long unknown words pay more

        def score(self, prev_state, word: str, is_last_word: bool = False):
            key = lm_key(word)
            if not key:
                score, state = 0.0, prev_state
            else:
                state = _get_empty_lm_state()
                score = self._kenlm_model.BaseScore(prev_state, key, state)
                if key != NUMBER and key not in self._keys:
                    score += self.unk_score_offset
            if is_last_word:
                score += self._get_raw_end_score(state)
            return self.alpha * score * LOG10_TO_LN + self.beta, state

    return KeyedLanguageModel()


class KenLMCTCDecoder:
    """`decoder(log_probs B x T x V, padding mask B x T) -> DecodeResult` over a charset's CTC outputs
    (the signature of `vihtr.models.decoding.ctc_best_path`, which it replaces)."""

    def __init__(
        self,
        charset: Charset,
        lm_path: str | os.PathLike,
        alpha: float = DEFAULT_ALPHA,
        beta: float = DEFAULT_BETA,
        unk_offset: float = DEFAULT_UNK_OFFSET,
        beam_width: int = DEFAULT_BEAM_WIDTH,
        keyed: bool = False,
    ) -> None:
        """`keyed`: the LM counts `lm_key`s (the prose LM), not words as written (the address LM)."""
        try:
            import kenlm
            from pyctcdecode import Alphabet, BeamSearchDecoderCTC, LanguageModel
        except ImportError as e:  # pragma: no cover - both are pinned dependencies
            raise ImportError(f"decoding with a language model needs pyctcdecode and kenlm ({e})") from e
        lm_path = Path(lm_path)
        if not lm_path.is_file():
            raise FileNotFoundError(f"no language model at {lm_path} (build it with `make lm`)")
        words = unigrams_path(lm_path)
        unigrams = words.read_text(encoding="utf-8").split() if words.is_file() else None
        logging.getLogger("pyctcdecode").setLevel(logging.ERROR)  # its warnings are about unigram lists
        self.charset = charset
        # column 0 is the blank; special tokens (never CTC targets) are dropped before decoding
        labels = [""] + list(charset.chars)
        model = kenlm.Model(str(lm_path))
        if keyed:
            language_model = _keyed_language_model(model, unigrams or [], alpha, beta, unk_offset)
        else:
            language_model = LanguageModel(
                model, unigrams, alpha=alpha, beta=beta, unk_score_offset=unk_offset
            )
        self._decoder = BeamSearchDecoderCTC(Alphabet(labels, is_bpe=False), language_model)
        self.beam_width = beam_width

    def __call__(self, log_probs: torch.Tensor, padding_mask: torch.Tensor) -> DecodeResult:
        result = DecodeResult([], [], [])
        lengths = (~padding_mask).sum(dim=1)
        columns = [0, *range(FIRST_CHAR_ID, log_probs.shape[-1])]
        for row, n in zip(log_probs.float().cpu().numpy(), lengths.tolist()):
            logp = row[:n, columns]
            ids, probs = self.decode_line(drop_sure_blanks(logp))
            result.token_ids.append(ids)
            result.token_probs.append(probs)
            result.scores.append(float(logp.max(axis=1).mean()) if n else 0.0)  # as ctc_best_path
        return result

    def decode_line(self, logp: np.ndarray) -> tuple[list[int], list[float]]:
        """One line's T x (1 + chars) log-probabilities -> token ids and per-character probabilities."""
        if logp.shape[0] == 0:
            return [], []
        beams = self._decoder.decode_beams(logp, beam_width=self.beam_width)
        text, _, word_frames, _, _ = beams[0]
        probs = np.exp(logp)
        ids: list[int] = []
        char_probs: list[float] = []
        previous_end = 0
        for i, (word, (start, end)) in enumerate(word_frames):
            span = probs[start : max(end, start + 1)]
            if i:  # the space between two words: its best frame between them
                space = self.charset.encode(" ", add_special=False)[0]
                ids.append(space)
                gap = probs[min(previous_end, start) : start + 1, 1 + space - FIRST_CHAR_ID]
                char_probs.append(float(gap.max()))
            previous_end = end
            for token in self.charset.encode(word, add_special=False):
                ids.append(token)
                char_probs.append(float(span[:, 1 + token - FIRST_CHAR_ID].max()))
        return ids, char_probs
