from cellprobe.training.sampling import Draw, EpochSampler


def test_draws_depend_only_on_seed_and_epoch():
    a, b = EpochSampler(10, seed=3, views=8), EpochSampler(10, seed=3, views=8)
    a.set_epoch(2)
    list(b)  # iterating epoch 0 first changes nothing for epoch 2
    b.set_epoch(2)
    assert list(a) == list(b)
    a.set_epoch(3)
    assert list(a) != list(b)
    assert sorted(d.index for d in a) == list(range(10))
    assert {d.view for d in a} <= set(range(8))


def test_unshuffled_identity_view():
    s = EpochSampler(4, seed=0, shuffle=False)
    assert [d.index for d in s] == [0, 1, 2, 3] and all(d.view == 0 for d in s)
    assert isinstance(next(iter(s)), Draw)


def test_ranks_get_disjoint_equal_shards():
    shards = [list(EpochSampler(7, seed=1, rank=r, world=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 4
    seen = [d.index for d in shards[0] + shards[1]]
    assert set(seen) == set(range(7)) and len(seen) == 8  # one item repeated to even the shards


def test_without_repeats_the_draws_are_unchanged():
    """Runs from before repeats existed resume with the very same draws: one permutation of range(n)."""
    import numpy as np

    s = EpochSampler(9, seed=5, views=8)
    s.set_epoch(4)
    rng = np.random.default_rng([5, 4])
    order, views, seeds = rng.permutation(9), rng.integers(0, 8, 9), rng.integers(0, 2**31 - 1, 9)
    assert list(s) == [Draw(int(i), int(v), int(k)) for i, v, k in zip(order, views, seeds, strict=True)]
    assert list(EpochSampler(9, seed=5, views=8, repeats=np.ones(9, int))) == list(EpochSampler(9, seed=5, views=8))


def test_repeats_are_weighted_draws():
    import numpy as np

    repeats = np.array([1, 3, 1, 5, 2])
    a, b = EpochSampler(5, seed=2, views=8, repeats=repeats), EpochSampler(5, seed=2, views=8, repeats=repeats)
    assert len(a) == a.draws_per_epoch == 12
    a.set_epoch(3)
    list(b)
    b.set_epoch(3)
    draws = list(a)
    assert draws == list(b)  # a pure function of (seed, epoch): resumes see the same draws
    assert np.bincount([d.index for d in draws], minlength=5).tolist() == repeats.tolist()
    assert len({d.seed for d in draws}) == len(draws)  # every draw of a repeated item augments anew
    a.set_epoch(4)
    assert list(a) != draws
    assert [d.index for d in EpochSampler(5, seed=0, shuffle=False, repeats=repeats)] == \
        [0, 1, 1, 1, 2, 3, 3, 3, 3, 3, 4, 4]
    shards = [list(EpochSampler(5, seed=1, rank=r, world=5, repeats=repeats)) for r in range(5)]
    assert [len(s) for s in shards] == [3] * 5  # 12 draws padded to 15
    seen = np.bincount([d.index for s in shards for d in s], minlength=5)
    assert seen.sum() == 15 and (seen >= repeats).all()  # every weighted draw, 3 wrapped around


def test_bad_repeats_are_refused():
    import numpy as np
    import pytest

    with pytest.raises(ValueError, match="one count >= 1 per item"):
        EpochSampler(3, seed=0, repeats=np.array([1, 0, 2]))
    with pytest.raises(ValueError, match="one count >= 1 per item"):
        EpochSampler(3, seed=0, repeats=np.array([1, 2]))


def test_validation_shards_draw_each_item_once():
    """Validation is not padded: 7 patches on 2 ranks are scored 4 + 3 times, none twice (padding would count
    one patch twice in val_pq); fewer patches than ranks still give every rank a step."""
    shards = [list(EpochSampler(7, seed=1, shuffle=False, rank=r, world=2, pad=False)) for r in range(2)]
    assert [len(s) for s in shards] == [4, 3]
    assert sorted(d.index for s in shards for d in s) == list(range(7))
    assert [len(EpochSampler(7, seed=1, rank=r, world=2, pad=False)) for r in range(2)] == [4, 3]
    few = [list(EpochSampler(2, seed=1, shuffle=False, rank=r, world=3, pad=False)) for r in range(3)]
    assert [len(s) for s in few] == [1, 1, 1]
