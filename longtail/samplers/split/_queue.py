"""A bucket queue for Numba kernels: items keyed by a small non-negative count, the lowest
count first, O(1) per update.

Iterative stratification keeps every label in it, keyed by its remaining positives, and
pops the rarest one; with 670,000 labels a heap would cost O(log n) per update, and many
labels change count after every pass. ``head[c]`` is the first item filed under count
``c`` (-1: none), each item's node row links it to the previous and next item of its
bucket, and ``cur[0]`` never exceeds the lowest non-empty count (filing an item lower
lowers it; a pop scans up from it).

The node rows hold ``QUEUE_COLS`` columns (:data:`FILED`, :data:`PREV`, :data:`NEXT`,
:data:`KEY`); :func:`queue_new` may add columns for the caller's own per-item data, so that
touching an item costs one cache line. The caller changes an item's ``KEY`` freely (e.g.
counts positives off it) and moves it with :func:`queue_refile`. Within a bucket the last
item filed comes out first (LIFO), so ties go to the item that reached its count most
recently.

Example
-------
>>> q = queue_new(np.array([2, 0, 1, 1]), QUEUE_COLS)
>>> [int(queue_pop(q)) for _ in range(3)], int(queue_pop(q))
([3, 2, 0], -1)
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

#: ``head`` int64[max key + 1], ``node`` int64[n, width], ``cur`` int64[1]
Queue = namedtuple("Queue", ["head", "node", "cur"])

#: node row columns: the count an item is filed under (0: not in the queue), the previous
#: and next item of its bucket (-1: none), and its key (what it is filed under next)
FILED = 0
PREV = 1
NEXT = 2
KEY = 3
#: columns of the queue in every node row (a caller may ask for more)
QUEUE_COLS = 4


@njit(cache=True, nogil=True)
def queue_new(keys, width):
    """A queue of items ``0 .. len(keys) - 1`` keyed by ``keys`` (int64; those > 0 are
    filed, in item order), with ``width`` >= QUEUE_COLS columns per node row (the extra
    ones zero)."""
    n = keys.shape[0]
    top = 0
    for i in range(n):
        top = max(top, keys[i])
    q = Queue(np.full(top + 1, -1, dtype=np.int64), np.zeros((n, width), dtype=np.int64),
              np.full(1, top + 1, dtype=np.int64))
    q.node[:, KEY] = keys
    queue_refile(q, np.arange(n), n)
    return q


@njit(cache=True, nogil=True)
def queue_pop(q):
    """The item filed under the lowest count (among those, the one filed last), taken out
    of the queue; -1 when the queue is empty."""
    head, node, cur = q
    top = head.shape[0] - 1
    c = cur[0]
    while c <= top and head[c] < 0:
        c += 1
    cur[0] = c
    if c > top:
        return -1
    item = head[c]
    nxt = node[item, NEXT]
    head[c] = nxt
    if nxt >= 0:
        node[nxt, PREV] = -1
    node[item, FILED] = 0
    return item


@njit(cache=True, nogil=True)
def queue_refile(q, items, n):
    """File each of ``items[:n]`` (int64), in order, under its key: out of the bucket it
    is in (if any), then at the head of bucket ``node[item, KEY]`` if that is > 0 (else
    out of the queue). One call per batch of items: the link updates stay in one loop."""
    head, node, cur = q
    for a in range(n):
        item = items[a]
        old = node[item, FILED]
        if old > 0:
            pa = node[item, PREV]
            pb = node[item, NEXT]
            if pa >= 0:
                node[pa, NEXT] = pb
            else:
                head[old] = pb
            if pb >= 0:
                node[pb, PREV] = pa
        key = node[item, KEY]
        node[item, FILED] = max(key, 0)
        if key > 0:
            h = head[key]
            node[item, PREV] = -1
            node[item, NEXT] = h
            if h >= 0:
                node[h, PREV] = item
            head[key] = item
            cur[0] = min(cur[0], key)
