"""The simulated world: accounts, their content and every counter, as pure functions of time.

Nothing ticks. An account's profile, the time each of its posts is published, how each post's
likes, comments, shares and views grow, whether it goes viral, loses likes or is deleted, all
derive from a hash of ``(seed, platform, account, post)``; a counter at time ``t`` is a closed
formula of ``t``. Serving 10,000 accounts costs memory only for what was asked.

Content ``k`` of an account (``k = 0, 1, 2, ...``, oldest first) is published at
``first + k * interval + jitter_k`` (jitter below the interval, so order is kept). An account
starts with a backlog of posts before the world's ``origin`` and keeps posting after it.

A post's engagement follows a saturating curve ``reach * (1 - exp(-age / tau))``: fast gains
while new, decaying with age. Some posts go viral (a second, larger burst after a delay), some
lose a share of their likes at one moment (unlikes: the counter falls), some are deleted.

The only mutable part is :class:`World`'s set of posts deleted by hand (the admin surface).
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import threading
from dataclasses import dataclass
from functools import lru_cache

PLATFORMS = ("instagram", "facebook", "youtube", "tiktok", "x")

_WORDS_A = ("sunny", "urban", "quiet", "bold", "happy", "wild", "cozy", "daily", "lucky", "neon",
            "retro", "fresh", "tiny", "grand", "swift", "calm")
_WORDS_B = ("chef", "coder", "runner", "artist", "gamer", "traveler", "baker", "dancer", "maker",
            "reader", "rider", "singer", "trainer", "painter", "hiker", "stylist")
_TOPICS = ("recipe", "workout", "travel diary", "tutorial", "behind the scenes", "review",
           "challenge", "vlog", "Q&A", "haul", "tips", "story time")


_SIXTEEN_U32 = struct.Struct(">16I")
_TO_UNIT = 2.0**-32


def uniforms(*parts: object) -> tuple[float, ...]:
    """Sixteen deterministic numbers in [0, 1) for ``parts`` (stable across runs and machines)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=64).digest()
    return tuple([n * _TO_UNIT for n in _SIXTEEN_U32.unpack(digest)])


def round_3_significant(n: int) -> int:
    """Round down to 3 significant digits, as YouTube shows subscribers (1234567 -> 1230000)."""
    if n < 1000:
        return n
    scale = 10 ** (len(str(n)) - 3)
    return n // scale * scale


@dataclass(frozen=True)
class Account:
    """One seeded account of one platform."""

    platform: str
    index: int
    id: str
    handle: str
    name: str
    base_followers: int
    follower_rate: float  # new followers per second
    following: int
    interval: float  # seconds between posts
    first: float  # publication time of post 0 (unix seconds)
    reach: float  # likes a typical post ends with
    origin: float

    def followers(self, t: float) -> int:
        return max(0, self.base_followers + math.floor(self.follower_rate * (t - self.origin)))

    def published_count(self, t: float) -> int:
        """How many posts (deleted ones included) were published at or before ``t``."""
        if t < self.first:
            return 0
        k = math.floor((t - self.first) / self.interval)
        while k >= 0 and publish_time(self, k) > t:
            k -= 1
        return k + 1


@dataclass(frozen=True)
class Post:
    """One post's fixed traits: when it was published and how its engagement will unfold."""

    account: Account
    k: int
    id: str
    published: float
    tau: float  # seconds: the curve's time constant
    reach: float  # likes it tends to
    viral_at: float | None  # age of the viral burst
    viral_boost: float
    unlike_at: float | None  # age at which likes are withdrawn
    unlike_share: float
    deleted_after: float | None  # age at which it is deleted
    comment_ratio: float
    share_ratio: float
    save_ratio: float
    view_ratio: float
    is_video: bool
    duration: int  # seconds
    likes_hidden: bool
    title: str


@dataclass(frozen=True)
class Counters:
    likes: int
    comments: int
    shares: int
    saves: int
    views: int
    reach: int


def publish_time(account: Account, k: int) -> float:
    return account.first + k * account.interval + _jitter(account.platform, account.index,
                                                          account.first, k) * account.interval


@lru_cache(maxsize=200_000)
def _jitter(platform: str, index: int, first: float, k: int) -> float:
    digest = hashlib.blake2b(f"jitter:{platform}:{index}:{first}:{k}".encode(),
                             digest_size=4).digest()
    return int.from_bytes(digest, "big") * _TO_UNIT * 0.6


# --- ids: readable from the index, and back -------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Ids:
    """Each platform's id formats, reversible to ``(account index, post k)``."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._mask = int.from_bytes(hashlib.sha256(f"ids:{seed}".encode()).digest()[:8], "big")

    def account(self, platform: str, i: int) -> str:
        if platform == "instagram":
            return f"17841{400_000_000_000 + i}"
        if platform == "facebook":
            return f"1048{i:011d}"
        if platform == "youtube":
            head = _b64(hashlib.sha256(f"yt:{self.seed}:{i}".encode()).digest())[:18]
            return "UC" + head + _b64(i.to_bytes(3, "big"))
        if platform == "tiktok":
            return str(_uuid(self.seed, i))
        return f"15{i:08d}"

    def account_index(self, platform: str, ident: str) -> int | None:
        try:
            if platform == "instagram" and ident.startswith("17841") and len(ident) == 17:
                i = int(ident[5:]) - 400_000_000_000
            elif platform == "facebook" and ident.startswith("1048") and len(ident) == 15:
                i = int(ident[4:])
            elif platform == "youtube" and len(ident) == 24 and ident[:2] in ("UC", "UU"):
                i = int.from_bytes(_unb64(ident[-4:]), "big")
                ident = "UC" + ident[2:]
            elif platform == "tiktok" and len(ident) == 36:
                i = int(ident[-12:], 16) ^ _uuid_mask(self.seed)
            elif platform == "x" and ident.startswith("15") and len(ident) == 10:
                i = int(ident[2:])
            else:
                return None
        except ValueError:
            return None
        return i if i >= 0 and self.account(platform, i) == ident else None

    def post(self, platform: str, i: int, k: int) -> str:
        if platform == "instagram":
            return f"179{i:07d}{k:07d}"
        if platform == "facebook":
            return f"{self.account(platform, i)}_122{k:012d}"
        if platform == "youtube":
            return _b64(((i << 32 | k) ^ self._mask).to_bytes(8, "big"))
        if platform == "tiktok":
            return f"73{i:08d}{k:09d}"
        return f"18{i:08d}{k:09d}"

    def post_index(self, platform: str, ident: str) -> tuple[int, int] | None:
        try:
            if platform == "instagram" and len(ident) == 17 and ident.startswith("179"):
                return int(ident[3:10]), int(ident[10:])
            if platform == "facebook" and "_" in ident:
                page, _, post = ident.partition("_")
                i = self.account_index(platform, page)
                if i is None or len(post) != 15 or not post.startswith("122"):
                    return None
                return i, int(post[3:])
            if platform == "youtube" and len(ident) == 11:
                value = int.from_bytes(_unb64(ident), "big") ^ self._mask
                return value >> 32, value & 0xFFFFFFFF
            if platform in ("tiktok", "x") and len(ident) == 19 and ident.isdigit():
                prefix = "73" if platform == "tiktok" else "18"
                if ident.startswith(prefix):
                    return int(ident[2:10]), int(ident[10:])
        except ValueError:
            return None
        return None


def _uuid(seed: int, i: int) -> str:
    """A uuid-shaped open_id whose last group hides the index."""
    h = hashlib.sha256(f"tt:{seed}:{i}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{i ^ _uuid_mask(seed):012x}"


def _uuid_mask(seed: int) -> int:
    return int(hashlib.sha256(f"ttmask:{seed}".encode()).hexdigest()[:12], 16)


# --- the world ------------------------------------------------------------------------------


class World:
    """``size`` accounts per platform, seeded by ``seed``, whose story starts at ``origin``.

    >>> w = World(seed=7, size=10, origin=1_700_000_000.0)
    >>> a = w.account("x", 3)
    >>> w.counters(w.post(a, 0), 1_700_000_000.0) == w.counters(w.post(a, 0), 1_700_000_000.0)
    True
    """

    def __init__(self, seed: int, size: int, origin: float) -> None:
        self.seed = seed
        self.size = size
        self.origin = origin
        self.ids = Ids(seed)
        self._deleted: dict[tuple[str, int, int], float] = {}
        self._lock = threading.Lock()
        self._account = lru_cache(maxsize=65_536)(self._make_account)
        self._post = lru_cache(maxsize=262_144)(self._make_post)

    # accounts

    def account(self, platform: str, i: int) -> Account:
        if not 0 <= i < self.size:
            msg = f"no account {i} on {platform}"
            raise KeyError(msg)
        return self._account(platform, i)

    def find_account(self, platform: str, ident: str) -> Account | None:
        i = self.ids.account_index(platform, ident)
        return self.account(platform, i) if i is not None and i < self.size else None

    def find_handle(self, platform: str, handle: str) -> Account | None:
        digits = handle.lstrip("@").rstrip("_")
        tail = len(digits) - len(digits.rstrip("0123456789"))
        if not tail:
            return None
        i = int(digits[-tail:])
        if i >= self.size:
            return None
        account = self.account(platform, i)
        return account if account.handle.lower() == handle.lstrip("@").lower() else None

    def handle(self, i: int) -> str:
        r = uniforms("handle", self.seed, i)
        return f"{_WORDS_A[int(r[0] * 16)]}_{_WORDS_B[int(r[1] * 16)]}{i}"

    def _make_account(self, platform: str, i: int) -> Account:
        r = uniforms("account", self.seed, platform, i)
        base = int(10 ** (3 + r[0] * 3.5))  # 1,000 .. 3,000,000, log-uniform
        interval = 3600 * (2 + r[1] * 22)  # a post every 2 to 24 hours
        backlog = 5 + int(r[2] * 30)
        handle = self.handle(i)
        return Account(
            platform=platform, index=i, id=self.ids.account(platform, i), handle=handle,
            name=handle.replace("_", " ").title(), base_followers=base,
            follower_rate=base * (0.001 + r[3] * 0.01) / 86_400,
            following=20 + int(r[4] * 800), interval=interval,
            first=self.origin - backlog * interval - r[5] * interval,
            reach=base * (0.01 + r[6] * 0.07), origin=self.origin,
        )

    # posts

    def post(self, account: Account, k: int) -> Post:
        return self._post(account.platform, account.index, k)

    def find_post(self, platform: str, ident: str) -> Post | None:
        found = self.ids.post_index(platform, ident)
        if found is None or not 0 <= found[0] < self.size or found[1] < 0:
            return None
        post = self.post(self.account(platform, found[0]), found[1])
        return post if post.id == ident else None

    def _make_post(self, platform: str, i: int, k: int) -> Post:
        account = self.account(platform, i)
        r = uniforms("post", self.seed, account.platform, account.index, k)
        s = r[8:]
        tau = 3600 * (1 + r[0] * 11)
        viral = r[1] < 0.05
        unlikes = r[2] < 0.3
        deleted = r[3] < 0.03
        return Post(
            account=account, k=k, id=self.ids.post(account.platform, account.index, k),
            published=publish_time(account, k), tau=tau,
            reach=account.reach * (0.3 + 1.4 * r[4]) ** 2,
            viral_at=tau * (0.5 + 2 * s[0]) if viral else None,
            viral_boost=5 + 20 * s[1],
            unlike_at=tau * (3 + 3 * s[2]) if unlikes else None,
            unlike_share=0.02 + 0.04 * s[3],
            deleted_after=tau * (1 + 9 * s[4]) if deleted else None,
            comment_ratio=0.01 + 0.07 * r[5], share_ratio=0.005 + 0.05 * r[6],
            save_ratio=0.01 + 0.04 * r[7], view_ratio=8 + 40 * s[5],
            is_video=account.platform in ("youtube", "tiktok") or s[6] < 0.5,
            duration=int(15 + s[7] * 600) if account.platform != "tiktok" else int(8 + s[7] * 170),
            likes_hidden=account.platform == "youtube" and s[6] < 0.05,
            title=f"{_TOPICS[int(s[6] * len(_TOPICS))]} #{k + 1}",
        )

    def deleted_at(self, post: Post) -> float | None:
        """When ``post`` is (or will be) deleted, by its own fate or by hand; None: never."""
        fate = post.published + post.deleted_after if post.deleted_after is not None else None
        by_hand = self._deleted.get((post.account.platform, post.account.index, post.k))
        if by_hand is None:
            return fate
        return by_hand if fate is None else min(fate, by_hand)

    def exists(self, post: Post, t: float) -> bool:
        if post.published > t:
            return False
        gone = self.deleted_at(post)
        return gone is None or t < gone

    def delete(self, post: Post, t: float) -> None:
        """Delete ``post`` at time ``t`` (the admin surface)."""
        with self._lock:
            key = (post.account.platform, post.account.index, post.k)
            self._deleted[key] = min(t, self._deleted.get(key, t))

    def latest(self, account: Account, t: float) -> int:
        """The index of the newest post published at or before ``t`` (-1: none yet)."""
        return account.published_count(t) - 1

    def posts(self, account: Account, t: float, start: int | None = None):
        """Existing posts newest first, from index ``start`` (default: the newest) down."""
        k = self.latest(account, t) if start is None else min(start, self.latest(account, t))
        while k >= 0:
            post = self.post(account, k)
            if self.exists(post, t):
                yield post
            k -= 1

    # counters

    def counters(self, post: Post, t: float) -> Counters:
        age = max(0.0, t - post.published)
        f = -math.expm1(-age / post.tau)
        if post.viral_at is not None and age > post.viral_at:
            f += post.viral_boost * -math.expm1(-(age - post.viral_at) / post.tau)
        engaged = post.reach * f
        likes = math.floor(engaged)
        comments = math.floor(engaged * post.comment_ratio)
        if post.unlike_at is not None and age >= post.unlike_at:
            likes -= math.ceil(likes * post.unlike_share)
            comments -= math.floor(comments * post.unlike_share / 2)
        views = math.floor(engaged * post.view_ratio)
        return Counters(
            likes=max(0, likes), comments=max(0, comments),
            shares=math.floor(engaged * post.share_ratio),
            saves=math.floor(engaged * post.save_ratio), views=views,
            reach=math.floor(views * 0.62),
        )

    def totals(self, account: Account, t: float) -> Counters:
        """The sum of the counters of ``account``'s existing posts at ``t``."""
        sums = [0, 0, 0, 0, 0, 0]
        for post in self.posts(account, t):
            c = self.counters(post, t)
            for n, value in enumerate((c.likes, c.comments, c.shares, c.saves, c.views, c.reach)):
                sums[n] += value
        return Counters(*sums)

    def post_count(self, account: Account, t: float) -> int:
        return sum(1 for _ in self.posts(account, t))
