"""Correction region choice: from the receiver position (or fixed_position), an explicit region, or a one-region plan.

Pure logic, no I/O: the pipeline feeds positions, the MQTT input asks for the resulting topic.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable

REGION_SWITCH_SECONDS = 60.0  # a moving gateway switches only after this long of good fixes in the new region
FIX_GAP = 30.0  # seconds without a good fix that restart the switch timer (the fixes must be continuous)

# (latNorth, latSouth, lonEast, lonWest) from sparkfun/SparkFun_RTK_Everywhere_Firmware
# Firmware/RTK_Everywhere/settings.h Regional_Information_Table
BOXES: dict[str, tuple[float, float, float, float]] = {
    "us": (50.0, 25.0, -60.0, -125.0),
    "eu": (72.0, 36.0, 32.0, -11.0),
    "au": (-25.0, -45.0, 154.0, 113.0),
    "kr": (39.0, 34.0, 129.5, 125.0),
    "jp": (46.0, 31.0, 146.0, 129.5),
}
# centres (lat, lon) from REGION_MAPPING of the u-blox PointPerfect sample client pointperfect_client.py (public copy:
# bsamaha/pointperfect_amqp_client docker/app/pointperfect_client.py); Japan has two
CENTRES: tuple[tuple[str, float, float], ...] = (
    ("au", -26.55, 134.70),
    ("eu", 52.45, 11.85),
    ("jp", 38.95, 139.60),
    ("jp", 33.10, 132.20),
    ("kr", 36.30, 128.20),
    ("us", 39.20, -96.60),
)


def in_box(region: str, lat: float, lon: float) -> bool:
    box = BOXES.get(region)
    if box is None:
        return False
    north, south, east, west = box
    return south <= lat <= north and west <= lon <= east


def _distance(lat: float, lon: float, clat: float, clon: float) -> float:
    """Equirectangular distance in degrees (the longitude difference scaled by cos(lat)), as the sample client."""
    dlon = (lon - clon + 180.0) % 360.0 - 180.0
    return math.hypot(lat - clat, dlon * math.cos(math.radians((lat + clat) / 2)))


def nearest(lat: float, lon: float, regions: Iterable[str]) -> str | None:
    """The region among `regions` whose (nearest) centre is closest; None when none of them has a known centre."""
    wanted = set(regions)
    best = [(_distance(lat, lon, clat, clon), name) for name, clat, clon in CENTRES if name in wanted]
    return min(best)[1] if best else None


def candidate(lat: float, lon: float, available: Iterable[str]) -> str | None:
    """The plan's region for a position: the box that contains it (the nearest centre among several), else the
    nearest centre."""
    regions = sorted(set(available))
    inside = [r for r in regions if in_box(r, lat, lon)]
    if len(inside) == 1:
        return inside[0]
    return nearest(lat, lon, inside or regions)


class RegionSelector:
    """Chooses one region and keeps it: explicit (`inventory`), the plan's only one (`plan`), or by position.

    A position chooses at once when nothing is chosen yet. Once chosen, a moving gateway switches only when its
    position lies outside the current region's box and another region has been the candidate for `switch_after`
    seconds of continuous good fixes. Thread-safe.
    """

    def __init__(
        self,
        available: Iterable[str],
        explicit: str | None = None,
        *,
        switch_after: float = REGION_SWITCH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.explicit = explicit
        self.switch_after = switch_after
        self._clock = clock
        self._lock = threading.Lock()
        self.available: list[str] = []
        self.selected: str | None = None
        self.source: str | None = None
        self._pending: tuple[str, float] | None = None  # (candidate, time of its first fix)
        self._last_fix: float | None = None
        self.set_available(available)

    def set_available(self, regions: Iterable[str]) -> bool:
        """New set of regions to choose from (L-band: the frequency table's keys); True when the choice changed."""
        with self._lock:
            before = self.selected
            self.available = sorted(set(regions))
            if self.explicit:
                self.selected, self.source = self.explicit, "inventory"
            elif len(self.available) == 1:
                self.selected, self.source = self.available[0], "plan"
            elif self.selected not in self.available or self.source == "plan":
                self.selected = self.source = None  # chosen again from the next position
            self._pending = None
            return self.selected != before

    def update(self, lat: float, lon: float, source: str = "position", at: float | None = None) -> bool:
        """One good fix (`source` position or fixed_position, `at` = its monotonic time); True when the region
        changed."""
        now = self._clock() if at is None else at
        with self._lock:
            if self.explicit or len(self.available) <= 1:
                return False
            gap = self._last_fix is not None and now - self._last_fix > FIX_GAP
            self._last_fix = now
            new = candidate(lat, lon, self.available)
            if self.selected is None:
                if new is None:
                    return False
                self.selected, self.source, self._pending = new, source, None
                return True
            if new is None or new == self.selected or in_box(self.selected, lat, lon):
                self._pending = None
                self.source = source  # the region stays; say what backs it now
                return False
            if not self._held(new, now, gap):
                return False
            self.selected, self.source, self._pending = new, source, None
            return True

    def _held(self, new: str, now: float, gap: bool) -> bool:
        """True when `new` has been the candidate for switch_after seconds of fixes without a gap; else it becomes
        (or stays) the pending candidate."""
        if self._pending is None or self._pending[0] != new or gap:
            self._pending = (new, now)
            return False
        return not (now - self._pending[1] < self.switch_after)

    def status(self) -> dict:
        with self._lock:
            return {"selected": self.selected, "source": self.source, "available": list(self.available)}
