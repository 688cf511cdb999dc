"""Feature kernels: the one offline definition of every feature, one pass in time order.

Transactions are fed in tie order ``(ts, transaction_id)``; a transaction sees the rows before
it in that order plus itself. ``ts`` is epoch microseconds; customer windows are
``(t - n days, t]``, label-based windows ``(t - d - n days, t - d]`` (``d`` the label delay),
as :mod:`vigil.features.definitions` states. Each customer and each terminal keeps its recent
rows in a ring of a fixed capacity (at least its most rows in any ``d + longest`` days, which
the offline build bounds from daily counts), so memory follows the rows of the last
``d + longest`` days, not the whole history, and the same compiled scan serves an in-memory
frame and a 100M-row stream chunk by chunk. A window's sum of amounts adds its rows left to
right in tie order: a value never depends on how the input was split into chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from vigil.config import FeaturesConfig
from vigil.features import definitions as fd
from vigil.features.definitions import SECONDS_PER_DAY

US_PER_DAY = SECONDS_PER_DAY * 1_000_000
US_PER_HOUR = 3_600 * 1_000_000
RATIO_CAP = fd.AMOUNT_RATIO_CAP


@dataclass(frozen=True)
class KernelSpec:
    """Window lengths in microseconds and the enabled groups, from :class:`FeaturesConfig`."""

    windows_us: np.ndarray  # int64, one per configured window
    delay_us: int
    longest: int  # index of the longest window
    extended: bool
    baseline: bool
    amount_window_us: int
    fraud_run: bool
    night_end_hour: int

    @classmethod
    def from_config(cls, config: FeaturesConfig) -> KernelSpec:
        """The spec of ``config`` (windows, delay, groups)."""
        windows = np.asarray([n * US_PER_DAY for n in config.windows_days], dtype=np.int64)
        return cls(
            windows_us=windows,
            delay_us=config.label_delay_days * US_PER_DAY,
            longest=int(np.argmax(windows)),
            extended=config.extended,
            baseline=fd.CUSTOMER_AMOUNT_BASELINE in config.extra,
            amount_window_us=fd.amount_window_days(config) * US_PER_DAY,
            fraud_run=fd.TERMINAL_FRAUD_RUN in config.extra,
            night_end_hour=config.night_end_hour,
        )

    @property
    def span_days(self) -> int:
        """Days a ring must cover: the longest window plus the label delay."""
        return int((self.windows_us[self.longest] + self.delay_us) // US_PER_DAY)

    @property
    def customer_width(self) -> int:
        """Customer feature columns: counts and means per window, then the enabled groups."""
        return 2 * len(self.windows_us) + 3 * self.extended + 3 * self.baseline

    @property
    def terminal_width(self) -> int:
        """Terminal feature columns: counts and risks per window, then the fraud-run group."""
        return 2 * len(self.windows_us) + 3 * self.fraud_run


@dataclass
class Rings:
    """Per-entity rings in one pool and the scan's pointers into them.

    Entity ``e`` owns pool slots ``offsets[e] .. offsets[e] + capacities[e] - 1``; its row
    number ``j`` (0 for its first row ever) sits in slot ``offsets[e] + j % capacities[e]``.
    ``pointers`` holds row numbers (one low pointer per window, then the scan's others) and
    ``slots`` the matching pool slots, advanced together so that the scan never divides.
    """

    offsets: np.ndarray
    capacities: np.ndarray
    rows: np.ndarray  # rows seen per entity
    pointers: np.ndarray  # (entities, windows + 5) int64 row numbers
    slots: np.ndarray  # same shape: their pool slots
    last_ts: np.ndarray  # (entities, 2) int64: ts of the latest and of the previous instant
    sums: np.ndarray  # (entities, k) float64 running sums (see the kernels)
    ts: np.ndarray
    amount: np.ndarray
    fraud: np.ndarray
    ordered: np.ndarray  # customers: the prior window's amounts, sorted

    @classmethod
    def allocate(cls, capacities: np.ndarray, n_windows: int, amounts: bool) -> Rings:
        """Empty rings of the given capacities (amount and sorted pools for customers only)."""
        capacities = np.maximum(capacities.astype(np.int64), 1)
        offsets = np.concatenate(([0], np.cumsum(capacities)[:-1])).astype(np.int64)
        n, size = len(capacities), int(capacities.sum())
        width = n_windows + 5
        return cls(
            offsets=offsets,
            capacities=capacities,
            rows=np.zeros(n, dtype=np.int64),
            pointers=np.zeros((n, width), dtype=np.int64),
            slots=np.repeat(offsets[:, None], width, axis=1),
            last_ts=np.zeros((n, 2), dtype=np.int64),
            sums=np.zeros((n, 2 * n_windows + 3 if amounts else n_windows), dtype=np.float64),
            ts=np.empty(size, dtype=np.int64),
            amount=np.empty(size if amounts else 0, dtype=np.float64),
            fraud=np.empty(size, dtype=np.int8),
            ordered=np.empty(size if amounts else 0, dtype=np.float64),
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by the pools and the per-entity state."""
        arrays = (self.offsets, self.capacities, self.rows, self.pointers, self.slots)
        pools = (self.last_ts, self.sums, self.ts, self.amount, self.fraud, self.ordered)
        return sum(a.nbytes for a in (*arrays, *pools))


@njit(cache=True, nogil=True)
def _bisect(pool: np.ndarray, start: int, size: int, value: float) -> int:
    """First index in the sorted ``pool[start:start + size]`` holding a value >= ``value``."""
    lo, hi = start, start + size
    while lo < hi:
        mid = (lo + hi) >> 1
        if pool[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _median(pool: np.ndarray, start: int, size: int) -> float:
    """DuckDB's median of the sorted ``pool[start:start + size]``: mean of the middle two."""
    half = start + size // 2
    if size % 2 == 1:
        return pool[half]
    return (pool[half - 1] + pool[half]) / 2.0


@njit(cache=True, nogil=True)
def _ratio(numerator: float, baseline: float, count: int) -> float:
    if count == 0 or baseline == 0.0:
        return 1.0
    return min(numerator / baseline, RATIO_CAP)


@njit(cache=True, nogil=True)
def _add(sums: np.ndarray, e: int, at: int, value: float) -> None:
    """Add ``value`` to the double-double ``sums[e, at:at + 2]`` (error-free two-sum).

    The pair holds a sum of amounts to about 106 bits, so its leading part is the exact sum
    rounded once, whatever rows entered and left before (no drift over a long history).
    """
    hi, lo = sums[e, at], sums[e, at + 1]
    s = hi + value
    bb = s - hi
    err = (hi - (s - bb)) + (value - bb)
    lo += err
    hi = s + lo
    sums[e, at], sums[e, at + 1] = hi, lo - (hi - s)


@njit(cache=True, nogil=True)
def _step(slot: int, offset: int, cap: int) -> int:
    """The slot after ``slot`` in a ring (wraps without dividing)."""
    slot += 1
    return offset if slot == offset + cap else slot


@njit(cache=True, nogil=True)
def _customer_scan(
    order: np.ndarray,
    ts: np.ndarray,
    entity: np.ndarray,
    amount: np.ndarray,
    fraud: np.ndarray,
    windows: np.ndarray,
    delay: int,
    longest: int,
    extended: bool,
    baseline: bool,
    amount_window: int,
    offsets: np.ndarray,
    caps: np.ndarray,
    rows: np.ndarray,
    ptr: np.ndarray,
    pos: np.ndarray,
    last_ts: np.ndarray,
    sums: np.ndarray,
    r_ts: np.ndarray,
    r_amount: np.ndarray,
    r_fraud: np.ndarray,
    ordered: np.ndarray,
    out: np.ndarray,
) -> int:
    """Customer features of rows in tie order per customer; -1, or the row that overflowed.

    ``sums`` columns: a double-double per window (rows ``[low, n)``), one for the prior rows
    ``[low of the longest, instant start)``, then the fraud count of the risk window.
    """
    nw = windows.shape[0]
    risk_lo, risk_hi, recent_lo, prior_hi, peer = nw, nw + 1, nw + 2, nw + 3, nw + 4
    prior, frauds = 2 * nw, 2 * nw + 2
    cap_seconds = float(windows[longest] // 1_000_000)
    for i in order:  # row indices, each entity's rows together, in tie order
        e, t = entity[i], ts[i]
        off, cap, n = offsets[e], caps[e], rows[e]
        if n == 0 or t != last_ts[e, 0]:  # a new instant: every earlier row is prior
            ptr[e, peer] = n
            last_ts[e, 1] = last_ts[e, 0]
            last_ts[e, 0] = t
        start = ptr[e, peer]
        size = ptr[e, prior_hi] - ptr[e, longest]
        if baseline:  # the sorted prior window: rows [low of the longest, start)
            while ptr[e, prior_hi] < start:
                value = r_amount[pos[e, prior_hi]]
                at = _bisect(ordered, off, size, value)
                for j in range(off + size, at, -1):
                    ordered[j] = ordered[j - 1]
                ordered[at] = value
                size += 1
                _add(sums, e, prior, value)
                ptr[e, prior_hi] += 1
                pos[e, prior_hi] = _step(pos[e, prior_hi], off, cap)
        for k in range(nw):
            while ptr[e, k] < n and r_ts[pos[e, k]] <= t - windows[k]:
                value = r_amount[pos[e, k]]
                _add(sums, e, 2 * k, -value)
                if baseline and k == longest:
                    at = _bisect(ordered, off, size, value)
                    for j in range(at, off + size - 1):
                        ordered[j] = ordered[j + 1]
                    size -= 1
                    _add(sums, e, prior, -value)
                ptr[e, k] += 1
                pos[e, k] = _step(pos[e, k], off, cap)
        lowest = ptr[e, longest]
        if extended:
            while ptr[e, risk_hi] < n and r_ts[pos[e, risk_hi]] <= t - delay:
                sums[e, frauds] += r_fraud[pos[e, risk_hi]]
                ptr[e, risk_hi] += 1
                pos[e, risk_hi] = _step(pos[e, risk_hi], off, cap)
            bound = t - delay - windows[longest]
            while ptr[e, risk_lo] < ptr[e, risk_hi] and r_ts[pos[e, risk_lo]] <= bound:
                sums[e, frauds] -= r_fraud[pos[e, risk_lo]]
                ptr[e, risk_lo] += 1
                pos[e, risk_lo] = _step(pos[e, risk_lo], off, cap)
            lowest = min(lowest, ptr[e, risk_lo])
        if baseline:
            while ptr[e, recent_lo] < n and r_ts[pos[e, recent_lo]] <= t - amount_window:
                ptr[e, recent_lo] += 1
                pos[e, recent_lo] = _step(pos[e, recent_lo], off, cap)
        if n + 1 - lowest > cap:
            return i
        slot = off + n % cap
        r_ts[slot], r_fraud[slot], r_amount[slot] = t, fraud[i], amount[i]
        rows[e] = n + 1
        col = 0
        for k in range(nw):
            _add(sums, e, 2 * k, amount[i])
            count = n + 1 - ptr[e, k]
            out[col, i] = float(count)
            out[col + 1, i] = sums[e, 2 * k] / count
            col += 2
        if extended:
            avg = out[2 * longest + 1, i]
            out[col, i] = 1.0 if avg == 0.0 else amount[i] / avg
            if n > start:
                out[col + 1, i] = 0.0
            elif start == 0:
                out[col + 1, i] = cap_seconds
            else:
                out[col + 1, i] = min((t - last_ts[e, 1]) / 1e6, cap_seconds)
            count = ptr[e, risk_hi] - ptr[e, risk_lo]
            out[col + 2, i] = 0.0 if count == 0 else sums[e, frauds] / count
            col += 3
        if baseline:
            largest = amount[i]
            slot = pos[e, recent_lo]
            for _ in range(ptr[e, recent_lo], start):
                largest = max(largest, r_amount[slot])
                slot = _step(slot, off, cap)
            median = _median(ordered, off, size) if size else 0.0
            mean = sums[e, prior] / size if size else 0.0
            out[col, i] = _ratio(amount[i], median, size)
            out[col + 1, i] = _ratio(amount[i], mean, size)
            out[col + 2, i] = _ratio(largest, median, size)
    return -1


@njit(cache=True, nogil=True)
def _terminal_scan(
    order: np.ndarray,
    ts: np.ndarray,
    entity: np.ndarray,
    fraud: np.ndarray,
    windows: np.ndarray,
    delay: int,
    longest: int,
    fraud_run: bool,
    offsets: np.ndarray,
    caps: np.ndarray,
    rows: np.ndarray,
    ptr: np.ndarray,
    pos: np.ndarray,
    last_ts: np.ndarray,
    sums: np.ndarray,
    r_ts: np.ndarray,
    r_fraud: np.ndarray,
    out: np.ndarray,
) -> int:
    """Terminal features of rows in tie order per terminal; -1, or the row that overflowed.

    ``sums`` columns: the known frauds of each window; ``last_ts[:, 0]``: the latest known
    fraud's time.
    """
    nw = windows.shape[0]
    hi, first = nw, nw + 1  # rows at or before t - d; the first known fraud in the window
    for i in order:  # row indices, each entity's rows together, in tie order
        e, t = entity[i], ts[i]
        off, cap, n = offsets[e], caps[e], rows[e]
        while ptr[e, hi] < n and r_ts[pos[e, hi]] <= t - delay:
            label = r_fraud[pos[e, hi]]
            if label > 0:
                for k in range(nw):
                    sums[e, k] += label
                last_ts[e, 0] = r_ts[pos[e, hi]]
            ptr[e, hi] += 1
            pos[e, hi] = _step(pos[e, hi], off, cap)
        for k in range(nw):
            bound = t - delay - windows[k]
            while ptr[e, k] < ptr[e, hi] and r_ts[pos[e, k]] <= bound:
                sums[e, k] -= r_fraud[pos[e, k]]
                ptr[e, k] += 1
                pos[e, k] = _step(pos[e, k], off, cap)
            count = ptr[e, hi] - ptr[e, k]
            out[2 * k, i] = float(count)
            out[2 * k + 1, i] = 0.0 if count == 0 else sums[e, k] / count
        if fraud_run:
            col = 2 * nw
            if ptr[e, first] < ptr[e, longest]:
                ptr[e, first], pos[e, first] = ptr[e, longest], pos[e, longest]
            while ptr[e, first] < ptr[e, hi] and not r_fraud[pos[e, first]] > 0:
                ptr[e, first] += 1
                pos[e, first] = _step(pos[e, first], off, cap)
            if ptr[e, first] < ptr[e, hi]:
                out[col, i] = (t - r_ts[pos[e, first]]) / float(US_PER_DAY)
                out[col + 1, i] = (t - last_ts[e, 0]) / float(US_PER_DAY)
            else:
                out[col, i] = 0.0
                out[col + 1, i] = 0.0
            out[col + 2, i] = sums[e, longest]
        if n + 1 - ptr[e, longest] > cap:
            return i
        slot = off + n % cap
        r_ts[slot], r_fraud[slot] = t, fraud[i]
        rows[e] = n + 1
    return -1


def _by_entity(entity: np.ndarray) -> np.ndarray:
    """Row indices grouping each entity's rows (stable: tie order kept within an entity)."""
    if len(entity) < 2 or bool(np.all(entity[1:] >= entity[:-1])):
        return np.arange(len(entity), dtype=np.int64)
    return np.argsort(entity, kind="stable")


def customer_features(
    spec: KernelSpec,
    rings: Rings,
    ts: np.ndarray,
    customer: np.ndarray,
    amount: np.ndarray,
    fraud: np.ndarray,
) -> np.ndarray:
    """Customer feature columns (one per result row) of rows in tie order, updating ``rings``.

    Rows are visited customer by customer (each ring stays in cache), results in input order.
    """
    out = np.empty((spec.customer_width, len(ts)), dtype=np.float64)
    r = rings
    failed = _customer_scan(
        _by_entity(customer), ts, customer, amount, fraud, spec.windows_us, spec.delay_us,
        spec.longest, spec.extended, spec.baseline, spec.amount_window_us, r.offsets,
        r.capacities, r.rows, r.pointers, r.slots, r.last_ts, r.sums, r.ts, r.amount, r.fraud,
        r.ordered, out,
    )  # fmt: skip
    _check(failed, "customer", customer)
    return out


def terminal_features(
    spec: KernelSpec, rings: Rings, ts: np.ndarray, terminal: np.ndarray, fraud: np.ndarray
) -> np.ndarray:
    """Terminal feature columns (one per result row) of rows in tie order, updating ``rings``."""
    out = np.empty((spec.terminal_width, len(ts)), dtype=np.float64)
    r = rings
    failed = _terminal_scan(
        _by_entity(terminal), ts, terminal, fraud, spec.windows_us, spec.delay_us,
        spec.longest, spec.fraud_run, r.offsets, r.capacities, r.rows, r.pointers, r.slots,
        r.last_ts, r.sums, r.ts, r.fraud, out,
    )  # fmt: skip
    _check(failed, "terminal", terminal)
    return out


def _check(failed: int, kind: str, entity: np.ndarray) -> None:
    if failed >= 0:
        raise RuntimeError(
            f"{kind} ring overflow at row {failed} ({kind} index {entity[failed]}): "
            "rows out of time order or capacities from other data"
        )


def row_features(spec: KernelSpec, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``tx_during_weekend`` and ``tx_during_night`` (UTC wall clock) as float64."""
    days = np.floor_divide(ts, US_PER_DAY)
    weekend = ((days + 3) % 7 >= 5).astype(np.float64)  # 1970-01-01 was a Thursday
    hours = np.floor_divide(ts - days * US_PER_DAY, US_PER_HOUR)
    return weekend, (hours <= spec.night_end_hour).astype(np.float64)
