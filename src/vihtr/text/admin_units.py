"""Vietnam's administrative units (province, district, ward), read from the `vietnamadminunits` database.

One home for the unit list: the address corrector matches against it and the synthetic address
generator writes from it. Both tables: the legacy one (three levels, before the 2025 reform) and the
current one (ward and province).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Unit:
    province: str
    province_type: str  # "Thành phố" or "Tỉnh"
    district: str | None  # None after the 2025 reform (two levels)
    district_type: str | None
    ward: str
    ward_type: str


@lru_cache(maxsize=2)
def load_units(post_2025: bool) -> tuple[Unit, ...]:
    """Every ward of the database with its district and province (legacy table: before the 2025 reform)."""
    from vietnamadminunits.database import query

    if post_2025:
        rows = query("SELECT DISTINCT province, provinceShort, ward, wardShort, wardType FROM admin_units")
    else:
        rows = query(
            "SELECT DISTINCT province, provinceShort, districtShort, districtType, ward, wardShort, wardType "
            "FROM admin_units_legacy WHERE wardShort IS NOT NULL"
        )
    return tuple(
        Unit(
            province=r["provinceShort"],
            province_type="Thành phố" if r["province"].startswith("Thành phố") else "Tỉnh",
            district=r.get("districtShort"),
            district_type=r.get("districtType"),
            ward=r["wardShort"],
            ward_type=r["wardType"],
        )
        for r in rows
    )


@lru_cache(maxsize=1)
def place_names() -> tuple[str, ...]:
    """Ward names without a number: the pool for village, hamlet and street names (many streets share them)."""
    return tuple(sorted({u.ward for u in load_units(False) if not any(c.isdigit() for c in u.ward)}))
