"""Vietnamese addresses written the way people fill in forms, from the `vietnamadminunits` database.

An address is `[lead] [ward] [district] province`, each part optional, each unit name with its type
word written out (`Thị Trấn`), abbreviated (`Tt`, `P`, `Q`, `Tp`) or left off, as in the Kalapa labels.
The lead is a house number and street (`452/8d Trần Hưng Đạo`, `Số 7 Ngõ 12`), a hamlet or residential
group (`Thôn 8`, `Ấp An Phú B`, `Tổ 17 Khu 6`, `Tdp 3`) or a village name. Pre-2025 addresses have three
levels; post-2025 ones (after the reform) have two: ward and province.

The probabilities below were measured once on the 2,160 Kalapa labels (labels.tsv, November 2026) by
matching each label's tail against the legacy database's province, district and ward short names
(tone style folded, case-insensitive) and counting the type words left before each matched name and the
first word of what remained (the lead). Mean words per label 8.6; 14.6% start with a digit; no commas;
every word title-cased; tone marks always in the old style (`Hoà`, `Thuỷ`).
"""

from __future__ import annotations

import random
from itertools import accumulate

from vihtr.text.admin_units import Unit, load_units, place_names
from vihtr.text.normalize import normalize_text

# share of labels where the part is present (province 2100/2160, district 1937/2160, ward 1740/2160)
P_PROVINCE, P_DISTRICT, P_WARD = 0.97, 0.90, 0.81

# type words before a unit name: (written, weight). Weights from the counts of matched units, split by
# the unit's type in the database where the labels allow (e.g. a city district is the one that carries
# `Thành Phố`/`Tp`, 146 + 100 of 1937 districts).
DISTRICT_PREFIX = {
    "Quận": (("", 0.88), ("Quận", 0.06), ("Q", 0.06)),
    "Huyện": (("", 0.93), ("Huyện", 0.05), ("H", 0.02)),
    "Thành phố": (("", 0.25), ("Thành Phố", 0.42), ("Tp", 0.33)),
    "Thị xã": (("", 0.35), ("Thị Xã", 0.55), ("Tx", 0.10)),
}
WARD_PREFIX = {
    "Xã": (("", 0.93), ("Xã", 0.05), ("X", 0.02)),
    "Phường": (("", 0.80), ("Phường", 0.08), ("P", 0.12)),
    "Thị trấn": (("", 0.15), ("Thị Trấn", 0.65), ("Tt", 0.20)),
}
# provinces: 142 `Tp` + 5 `Thành Phố` of 2100 provinces, nearly all before a centrally governed city
CITY_PROVINCE_PREFIX = (("", 0.5), ("Tp", 0.45), ("Thành Phố", 0.05))
PROVINCE_PREFIX = (("", 0.985), ("T", 0.01), ("Tỉnh", 0.005))
HCM_SHORT = ("Hcm", 0.1)  # 13 labels write Hồ Chí Minh as `Hcm`

# first word of the lead (what is left before the ward) over the 2,160 labels: none 702, a number 315,
# Thôn 301, Ấp 165, Tổ 126, a plain village name ~260, Khu 53, Xóm 47, Tdp 25, Số 21, Kp 18, Khóm 15, ...
# "none" and "village" were then moved (702 -> 480, 260 -> 420) because a ward name the database spells
# differently from the label counted as "no lead": this brings the mean word count to 8.1 (labels 8.6).
LEAD_WEIGHTS = {
    "none": 480,
    "street": 336,
    "Thôn": 301,
    "Ấp": 165,
    "Tổ": 126,
    "village": 420,
    "Khu": 53,
    "Xóm": 47,
    "Tdp": 25,
    "Kp": 18,
    "Khóm": 15,
    "Bản": 8,
    "Đội": 5,
    "Khối": 4,
    "Làng": 3,
    "Cụm": 3,
}
# house numbers (digit-shape counts: `9` 517, `99` 288, `999` 64; a letter suffix in ~15%, `/` in ~25%)
HOUSE_DIGITS = ((1, 0.45), (2, 0.42), (3, 0.12), (4, 0.01))
STREET_WORDS = (("", 0.80), ("Đường", 0.07), ("Ngõ", 0.05), ("Ngách", 0.03), ("Hẻm", 0.03), ("Kiệt", 0.02))
# text variants beyond the labels' own style: forms in the wild also use commas, sentence case,
# capitals and the new tone style
COMMA_PROB = 0.05
CASING = (("title", 0.92), ("sentence", 0.05), ("upper", 0.03))
OLD_TONE_PROB = 0.85
POST_2025_PROB = 0.15
SENTENCE_CASE = {
    "Thành Phố": "Thành phố",
    "Thị Trấn": "Thị trấn",
    "Thị Xã": "Thị xã",
    "Khu Phố": "Khu phố",
    "Tổ Dân Phố": "Tổ dân phố",
    "Số Nhà": "Số nhà",
}


def _pick(rng: random.Random, options) -> str:
    values, weights = zip(*options)
    return rng.choices(values, weights)[0]


def _urban_cum_weights(units: tuple[Unit, ...]) -> list[float]:
    """Urban wards (Phường) hold most people and most of the labels' addresses: drawn 3x as often."""
    return list(accumulate(3.0 if u.ward_type == "Phường" else 1.0 for u in units))


class AddressGenerator:
    """`generate(rng)` -> one address line (NFC; style variants as configured; not yet tone-normalised)."""

    def __init__(
        self,
        post_2025_prob: float = POST_2025_PROB,
        comma_prob: float = COMMA_PROB,
        old_tone_prob: float = OLD_TONE_PROB,
        casing: tuple[tuple[str, float], ...] = CASING,
    ) -> None:
        self.post_2025_prob = post_2025_prob
        self.comma_prob = comma_prob
        self.old_tone_prob = old_tone_prob
        self.casing = tuple(tuple(c) for c in casing)
        self._legacy = load_units(False)
        self._reformed = load_units(True)
        self._legacy_weights = _urban_cum_weights(self._legacy)
        self._reformed_weights = _urban_cum_weights(self._reformed)
        self._places = place_names()

    def generate(self, rng: random.Random) -> str:
        post_2025 = rng.random() < self.post_2025_prob
        units, weights = (
            (self._reformed, self._reformed_weights) if post_2025 else (self._legacy, self._legacy_weights)
        )
        unit = rng.choices(units, cum_weights=weights)[0]
        parts = [self._lead(rng)]
        if rng.random() < P_WARD:
            parts.append(self._ward(unit, rng))
        if unit.district and rng.random() < P_DISTRICT:
            parts.append(self._district(unit, rng))
        if rng.random() < P_PROVINCE or not any(parts):
            parts.append(self._province(unit, rng))
        parts = [p for p in parts if p]
        text = (", " if rng.random() < self.comma_prob else " ").join(parts)
        text = normalize_text(text, "old" if rng.random() < self.old_tone_prob else "new")
        return self._case(text, rng)

    # --- parts -----------------------------------------------------------------------------------

    def _lead(self, rng: random.Random) -> str:
        kind = rng.choices(list(LEAD_WEIGHTS), list(LEAD_WEIGHTS.values()))[0]
        if kind == "none":
            return ""
        if kind == "street":
            return self._street_address(rng)
        if kind == "village":
            return self._name(rng)
        if kind == "Tổ":
            group = f"Tổ {rng.randint(1, 40)}"
            follow = rng.random()
            if follow < 0.35:  # a residential group inside a hamlet or quarter
                return (
                    f"{group} {rng.choice(('Khu', 'Ấp', 'Khu Phố', 'Kp', 'Thôn'))} {self._hamlet_name(rng)}"
                )
            if follow < 0.5:
                return f"Tổ Dân Phố {self._hamlet_name(rng)}"
            return group
        if kind == "Khu":
            return f"{rng.choice(('Khu', 'Khu Phố', 'Khu Phố'))} {self._hamlet_name(rng)}"
        if kind == "Kp":
            n = rng.randint(1, 12)
            return f"Kp{n}" if rng.random() < 0.4 else f"Kp {n}"
        return f"{kind} {self._hamlet_name(rng)}"

    def _name(self, rng: random.Random) -> str:
        return rng.choice(self._places)

    def _hamlet_name(self, rng: random.Random) -> str:
        """`8`, `Tân An`, `Hải Phúc 4`, `An Phú B`: a number, a name, or a name with a number or letter."""
        roll = rng.random()
        if roll < 0.25:
            return str(rng.randint(1, 20))
        name = self._name(rng)
        if roll < 0.8:
            return name
        if roll < 0.95:
            return f"{name} {rng.randint(1, 9)}"
        return f"{name} {rng.choice('ABC')}"

    def _house_number(self, rng: random.Random) -> str:
        digits = int(_pick(rng, HOUSE_DIGITS))
        number = str(rng.randint(1 if digits == 1 else 10 ** (digits - 1), 10**digits - 1))
        if rng.random() < 0.04:  # lot or block letters: K5/98, C74/435
            number = rng.choice("ABCDEK") + number
        if rng.random() < 0.15:
            number += rng.choice("abcdeg")
        for _ in range(rng.choices((0, 1, 2), (0.72, 0.22, 0.06))[0]):
            number += f"/{rng.randint(1, 150)}"
            if rng.random() < 0.1:
                number += rng.choice("abcd")
        return number

    def _street_address(self, rng: random.Random) -> str:
        number = self._house_number(rng)
        roll = rng.random()
        if roll < 0.05:
            number = f"Số Nhà {number}"
        elif roll < 0.12:
            number = f"Số {number}"
        street_word = _pick(rng, STREET_WORDS)
        if street_word in ("Ngõ", "Ngách", "Hẻm", "Kiệt") and rng.random() < 0.6:
            street = f"{street_word} {self._house_number(rng)} {self._name(rng)}"
        elif street_word == "Đường" and rng.random() < 0.3:
            street = f"Đường {rng.randint(1, 60)}"
        else:
            street = f"{street_word} {self._name(rng)}".strip()
        if rng.random() < 0.15:  # a quarter after the street: `Kp7`, `Khu Phố 4`, `Tổ 8`
            street += " " + rng.choice(
                (f"Kp{rng.randint(1, 9)}", f"Khu Phố {rng.randint(1, 9)}", f"Tổ {rng.randint(1, 30)}")
            )
        return f"{number} {street}"

    def _ward(self, unit: Unit, rng: random.Random) -> str:
        name = unit.ward
        if unit.ward_type == "Phường" and name.startswith("Phường "):  # numbered wards keep their word
            number = name.split(" ", 1)[1]
            return rng.choices((name, f"P {number}", f"P{number}"), (0.6, 0.25, 0.15))[0]
        prefix = _pick(rng, WARD_PREFIX.get(unit.ward_type, (("", 1.0),)))
        return f"{prefix} {name}".strip()

    def _district(self, unit: Unit, rng: random.Random) -> str:
        name = unit.district
        if unit.district_type == "Quận" and name.startswith("Quận "):  # Quận 1 .. Quận 12
            number = name.split(" ", 1)[1]
            return rng.choices((name, f"Q {number}", f"Q{number}"), (0.6, 0.25, 0.15))[0]
        prefix = _pick(rng, DISTRICT_PREFIX.get(unit.district_type, (("", 1.0),)))
        return f"{prefix} {name}".strip()

    def _province(self, unit: Unit, rng: random.Random) -> str:
        if unit.province == "Hồ Chí Minh" and rng.random() < HCM_SHORT[1]:
            return HCM_SHORT[0]
        prefix = _pick(rng, CITY_PROVINCE_PREFIX if unit.province_type == "Thành phố" else PROVINCE_PREFIX)
        return f"{prefix} {unit.province}".strip()

    def _case(self, text: str, rng: random.Random) -> str:
        casing = _pick(rng, self.casing)
        if casing == "upper":
            return text.upper()
        if casing == "sentence":  # type words as printed on documents: `Thành phố`, `Thị trấn`, `Khu phố`
            for title, sentence in SENTENCE_CASE.items():
                text = text.replace(title, sentence)
            return text
        return " ".join(w[:1].upper() + w[1:] for w in text.split(" "))
