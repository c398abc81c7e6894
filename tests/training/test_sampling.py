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
