"""The simulated world: deterministic, decaying gains, unlikes, deletions, rounding, ids."""

from __future__ import annotations

import itertools

import pytest

from creatorpulse.sources.simulator.world import PLATFORMS, Ids, World, round_3_significant

T0 = 1_790_000_000.0
HOUR = 3600.0


def posts_where(world: World, platform: str, predicate, count: int = 1):
    found = []
    for i, k in itertools.product(range(world.size), range(40)):
        post = world.post(world.account(platform, i), k)
        if predicate(post):
            found.append(post)
            if len(found) == count:
                return found
    raise AssertionError("no such post in the seeded world")


def test_same_seed_same_numbers_other_seed_other_numbers() -> None:
    a, b, c = World(7, 50, T0), World(7, 50, T0), World(8, 50, T0)
    t = T0 + 5 * HOUR
    for platform in PLATFORMS:
        for i in (0, 17, 49):
            pa, pb = a.account(platform, i), b.account(platform, i)
            assert pa == pb
            assert [a.counters(p, t) for p in itertools.islice(a.posts(pa, t), 5)] == \
                [b.counters(p, t) for p in itertools.islice(b.posts(pb, t), 5)]
    assert a.account("x", 3).base_followers != c.account("x", 3).base_followers


def test_new_posts_gain_on_a_decaying_curve() -> None:
    world = World(3, 30, T0)
    (post,) = posts_where(world, "instagram", lambda p: p.viral_at is None
                          and p.unlike_at is None and p.deleted_after is None
                          and p.reach > 1000)
    likes = [world.counters(post, post.published + h * post.tau / 2).likes for h in range(8)]
    gains = [b - a for a, b in itertools.pairwise(likes)]
    assert likes[0] == 0
    assert all(g >= 0 for g in gains)
    assert gains[0] > gains[2] > gains[5]
    c = world.counters(post, post.published + 3 * post.tau)
    assert c.views > c.likes > c.comments >= 0 and c.shares >= 0


def test_viral_posts_get_a_second_burst() -> None:
    world = World(3, 60, T0)
    (post,) = posts_where(world, "tiktok", lambda p: p.viral_at is not None)
    assert post.viral_at is not None
    before = world.counters(post, post.published + post.viral_at).likes
    later = world.counters(post, post.published + post.viral_at + 3 * post.tau).likes
    assert later > before * 3


def test_unlikes_make_the_counter_fall() -> None:
    world = World(5, 30, T0)
    for post in posts_where(world, "x", lambda p: p.unlike_at is not None and p.reach > 500, 3):
        assert post.unlike_at is not None
        at = post.published + post.unlike_at
        assert world.counters(post, at + 1).likes < world.counters(post, at - 60).likes


def test_followers_grow_and_new_posts_appear() -> None:
    world = World(1, 10, T0)
    account = world.account("youtube", 4)
    assert account.followers(T0 + 86_400) > account.followers(T0)
    assert world.latest(account, T0 + 3 * 86_400) > world.latest(account, T0) >= 0
    newest = world.post(account, world.latest(account, T0 + 86_400))
    assert T0 < newest.published <= T0 + 86_400


def test_deleted_posts_disappear_by_fate_and_by_hand() -> None:
    world = World(2, 40, T0)
    (post,) = posts_where(world, "facebook", lambda p: p.deleted_after is not None)
    assert post.deleted_after is not None
    gone = post.published + post.deleted_after
    assert world.exists(post, gone - 1) and not world.exists(post, gone + 1)
    listed = [p.id for p in world.posts(post.account, gone + 1, post.k)]
    assert post.id not in listed

    other = world.post(world.account("facebook", 0), 2)
    t = max(T0, other.published + 10)
    assert world.exists(other, t)
    world.delete(other, t)
    assert not world.exists(other, t) and world.exists(other, t - 1)


@pytest.mark.parametrize(("n", "shown"), [
    (0, 0), (999, 999), (1000, 1000), (1234, 1230), (99_999, 99_900), (1_234_567, 1_230_000),
    (2_345_678_901, 2_340_000_000)])
def test_youtube_subscribers_round_down_to_3_significant_digits(n: int, shown: int) -> None:
    assert round_3_significant(n) == shown


@pytest.mark.parametrize("platform", PLATFORMS)
def test_ids_have_the_platform_shape_and_read_back(platform: str) -> None:
    ids = Ids(seed=9)
    for i, k in ((0, 0), (123, 45), (9999, 2000)):
        account, post = ids.account(platform, i), ids.post(platform, i, k)
        assert ids.account_index(platform, account) == i
        assert ids.post_index(platform, post) == (i, k)
    assert ids.account("youtube", 5).startswith("UC") and len(ids.account("youtube", 5)) == 24
    assert len(ids.post("youtube", 5, 6)) == 11
    assert len(ids.post("tiktok", 5, 6)) == 19 and len(ids.post("x", 5, 6)) == 19
    assert ids.account("instagram", 5).startswith("17841")
    assert ids.account_index(platform, "nonsense") is None


def test_handles_find_their_accounts() -> None:
    world = World(4, 20, T0)
    for platform in PLATFORMS:
        account = world.account(platform, 13)
        assert world.find_handle(platform, account.handle) == account
        assert world.find_handle(platform, "@" + account.handle) == account
    assert world.find_handle("x", "nobody") is None
