"""BatchStream / val_batches: which tokens each rank reads, in which order, and how shards are crossed.

Shards here hold tokens whose values encode their position (value = base + offset), so every row read back
says exactly where it came from.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speedrun.data.shards import ShardError
from speedrun.data.stream import BatchStream, StreamPosition, check_val_size, row_index, val_batches

SEQ = 64
BATCH = 8 * SEQ  # fixed global batch: world size x accumulation = 8 rows
WORLD_SIZES = [1, 2, 4, 8]


@pytest.fixture
def three_shards(make_shard, tmp_path):
    """Shards of 1200, 1100 and 2000 tokens; token value = 10000 * shard index + offset."""
    sizes = [1200, 1100, 2000]
    folder = tmp_path / "train"
    paths = [make_shard(10000 * i + np.arange(n), name=f"train_{i:06d}.bin", folder=folder)
             for i, n in enumerate(sizes)]
    return folder, paths, sizes


def _step_rows_all_ranks(files, world_size, steps, loop=False, batch=BATCH, seq=SEQ, position=None, **stream_args):
    """[step][row]: the (shard, offset) rows of all ranks in row order, one stream per rank (each started at a copy
    of `position`), plus the streams."""
    streams = [BatchStream(files, batch, seq, rank=r, world_size=world_size, loop=loop, **stream_args,
                           position=None if position is None else StreamPosition(**vars(position)))
               for r in range(world_size)]
    out = []
    for _ in range(steps):
        rows = {}
        for r, s in enumerate(streams):
            for m, row in enumerate(s.next_rows()):
                rows[row_index(m, r, world_size)] = row
        out.append([rows[i] for i in range(len(rows))])
    return out, streams


def test_row_index():
    assert [row_index(m, r, 4) for m in range(2) for r in range(4)] == list(range(8))
    assert row_index(3, 1, 8) == 25


def test_accumulation_steps(three_shards):
    folder, _, _ = three_shards
    for ws in WORLD_SIZES:
        s = BatchStream(folder, BATCH, SEQ, rank=0, world_size=ws)
        assert s.accum == 8 // ws
        assert len(s.next_rows()) == 8 // ws


def test_batch_must_divide_into_rows(three_shards):
    folder, _, _ = three_shards
    with pytest.raises(ValueError, match="whole number"):
        BatchStream(folder, BATCH, SEQ, rank=0, world_size=3)
    with pytest.raises(ValueError):
        BatchStream(folder, BATCH + 1, SEQ)


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_each_step_reads_one_contiguous_range(three_shards, world_size):
    folder, _, _ = three_shards
    steps, _ = _step_rows_all_ranks(folder, world_size, 4)
    for rows in steps:
        shard_ids = {sh for sh, _ in rows}
        assert len(shard_ids) == 1, "a step never straddles shards"
        offsets = [off for _, off in rows]
        # row i of the step starts at base + i * SEQ: union of ranks' rows = one contiguous BATCH range
        assert offsets == [offsets[0] + i * SEQ for i in range(8)]


def test_same_rows_for_every_world_size(three_shards):
    folder, _, _ = three_shards
    n_steps = 5  # 2 in shard 0, 2 in shard 1, 1 in shard 2 (see test_shard_switch)
    reference, _ = _step_rows_all_ranks(folder, 1, n_steps)
    assert [rows[0] for rows in reference] == [(0, 0), (0, 512), (1, 0), (1, 512), (2, 0)]
    for ws in WORLD_SIZES[1:]:
        got, _ = _step_rows_all_ranks(folder, ws, n_steps)
        assert got == reference, f"world size {ws} reads different rows"


def test_same_rows_for_every_world_size_across_passes(three_shards):
    folder, _, _ = three_shards
    n_steps = 20  # several passes over the three shards
    reference, ref_streams = _step_rows_all_ranks(folder, 1, n_steps, loop=True)
    for ws in WORLD_SIZES[1:]:
        got, streams = _step_rows_all_ranks(folder, ws, n_steps, loop=True)
        assert got == reference
        assert {(s.position.shard, s.position.offset, s.position.passes) for s in streams} == \
            {(ref_streams[0].position.shard, ref_streams[0].position.offset, ref_streams[0].position.passes)}


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_tensors_match_rows_and_are_shifted_by_one(three_shards, world_size):
    folder, _, _ = three_shards
    ws1 = BatchStream(folder, BATCH, SEQ)
    ranks = [BatchStream(folder, BATCH, SEQ, rank=r, world_size=world_size) for r in range(world_size)]
    for _ in range(5):
        full = ws1.next_step()
        assert len(full) == 8
        per_rank = [s.next_step() for s in ranks]
        for r in range(world_size):
            for m, (inputs, targets) in enumerate(per_rank[r]):
                assert inputs.dtype == torch.int32 and targets.dtype == torch.int64
                assert inputs.shape == (SEQ,) and targets.shape == (SEQ,)
                assert inputs.device.type == "cpu"
                ref_in, ref_tg = full[row_index(m, r, world_size)]
                assert torch.equal(inputs, ref_in) and torch.equal(targets, ref_tg)
                # consecutive token values (value = position in shard): targets are inputs shifted by one
                assert torch.equal(targets[:-1], inputs[1:].long())
                assert targets[-1].item() == inputs[-1].item() + 1
                assert torch.equal(inputs.long(), torch.arange(SEQ) + inputs[0].item())


def test_first_step_contents(three_shards):
    s = BatchStream(three_shards[0], BATCH, SEQ, rank=1, world_size=4)
    (in0, tg0), (in1, tg1) = s.next_step()
    # rank 1 of 4: rows 1 and 5 of the first step
    assert in0[0].item() == 1 * SEQ and tg0[-1].item() == 2 * SEQ
    assert in1[0].item() == 5 * SEQ and tg1[-1].item() == 6 * SEQ


def test_shard_switch_skips_the_tail(three_shards):
    """Shard 0 has 1200 tokens: steps at 0 and 512 fit (512 + 513 <= 1200); 1024 + 513 does not."""
    folder, _, sizes = three_shards
    s = BatchStream(folder, BATCH, SEQ, loop=False)
    seen: set[int] = set()
    for _ in range(5):
        for inputs, targets in s.next_step():
            seen.update(inputs.tolist())
            seen.update(targets.tolist())
    shard0 = {v for v in seen if v < 10000}
    shard1 = {v - 10000 for v in seen if 10000 <= v < 20000}
    shard2 = {v - 20000 for v in seen if v >= 20000}
    # each step reads batch + 1 tokens (the last target is the token after the batch)
    assert shard0 == set(range(2 * BATCH + 1))  # tokens 1025..1199 are never read
    assert shard1 == set(range(2 * BATCH + 1))  # tokens 1025..1099 are never read
    assert shard2 == set(range(BATCH + 1))


def test_exactly_batch_plus_one_tokens_is_one_step(make_shard, tmp_path):
    make_shard(np.arange(BATCH + 1), name="a.bin", folder=tmp_path / "d")
    make_shard(np.arange(BATCH) + 30000, name="b.bin", folder=tmp_path / "d")  # one token short: never used
    make_shard(np.arange(BATCH + 1) + 40000, name="c.bin", folder=tmp_path / "d")
    s = BatchStream(tmp_path / "d", BATCH, SEQ)
    assert s.next_rows()[0] == (0, 0)
    assert s.next_rows()[0] == (2, 0)
    with pytest.raises(StopIteration):
        s.next_rows()


def test_no_loop_stops_at_the_end(three_shards):
    folder, _, _ = three_shards
    s = BatchStream(folder, BATCH, SEQ, loop=False)
    # 2 + 2 + 3 steps fit (shard 2: 2000 tokens -> offsets 0, 512, 1024 since 1024 + 513 <= 2000)
    for _ in range(7):
        s.next_step()
    with pytest.raises(StopIteration):
        s.next_step()
    assert s.position.passes == 0
    assert len(list(BatchStream(folder, BATCH, SEQ, loop=False))) == 7


@pytest.mark.parametrize("world_size", [1, 2])
def test_steps_left_is_what_the_stream_yields_from_every_position(make_shard, tmp_path, world_size):
    # sizes around the edges: one step exactly (BATCH + 1), one token short, tails of every length
    rng = np.random.default_rng(0)
    sizes = [BATCH + 1, BATCH, 3 * BATCH + 1, 2 * BATCH, *rng.integers(1, 4 * BATCH, 6)]
    for i, n in enumerate(sizes):
        make_shard(np.arange(n), name=f"s_{i:02d}.bin", folder=tmp_path / "d")
    stream = BatchStream(tmp_path / "d", BATCH, SEQ, rank=world_size - 1, world_size=world_size)
    lefts = []
    while True:
        lefts.append(stream.steps_left())
        # a stream resumed here (a checkpoint's position) counts the same
        resumed = BatchStream(tmp_path / "d", BATCH, SEQ, position=StreamPosition(**vars(stream.position)))
        assert resumed.steps_left() == lefts[-1]
        try:
            stream.next_rows()
        except StopIteration:
            break
    taken = len(lefts) - 1
    assert taken >= 8 and lefts == list(range(taken, -1, -1))  # one fewer per step, 0 where it stops
    assert BatchStream(tmp_path / "d", BATCH, SEQ, loop=True).steps_left() is None


def test_stays_exhausted(three_shards):
    s = BatchStream(three_shards[0], BATCH, SEQ, loop=False)
    list(s)
    for _ in range(2):
        with pytest.raises(StopIteration):
            s.next_rows()


def test_loop_wraps_and_counts_passes(three_shards):
    folder, _, _ = three_shards
    s = BatchStream(folder, BATCH, SEQ, loop=True)
    first_pass = [s.next_step() for _ in range(7)]
    assert s.position.passes == 0
    again = s.next_step()
    assert s.position.passes == 1
    assert s.position.shard == 0
    for (a_in, a_tg), (b_in, b_tg) in zip(first_pass[0], again):
        assert torch.equal(a_in, b_in) and torch.equal(a_tg, b_tg)
    for _ in range(7 * 2):
        s.next_rows()
    assert s.position.passes == 3


def test_resume_from_position(three_shards):
    folder, _, _ = three_shards
    a = BatchStream(folder, BATCH, SEQ, loop=True)
    for _ in range(3):
        a.next_rows()
    pos = StreamPosition(a.position.shard, a.position.offset, a.position.passes)
    b = BatchStream(folder, BATCH, SEQ, rank=1, world_size=2, loop=True, position=pos)
    c = BatchStream(folder, BATCH, SEQ, rank=1, world_size=2, loop=True)
    for _ in range(3):
        c.next_rows()
    for _ in range(10):
        assert b.next_rows() == c.next_rows()


@pytest.mark.parametrize("loop", [False, True])
def test_upcoming_targets_are_every_ranks_next_targets_and_leave_the_stream_alone(three_shards, loop):
    folder, _, _ = three_shards
    world = 2
    streams = [BatchStream(folder, BATCH, SEQ, rank=r, world_size=world, loop=loop) for r in range(world)]
    for s in streams:
        s.next_rows()  # not from the start: from where a resumed run stands
    at = vars(StreamPosition(**vars(streams[0].position)))
    ahead = list(streams[0].upcoming_targets(20))  # 7 steps a pass: looping crosses passes, else the files end
    assert vars(streams[0].position) == at
    assert [a for a, _ in ahead] == list(range(20 if loop else 6))
    for _, rows in ahead:
        step = [s.next_step() for s in streams]  # rank r's micro-step m is row m * world + r
        wanted = [step[i % world][i // world][1].numpy() for i in range(len(rows))]
        assert len(rows) == world * len(step[0]) and all(np.array_equal(a, b) for a, b in zip(rows, wanted))


def test_all_shards_smaller_than_one_batch(make_shard, tmp_path):
    make_shard(np.arange(BATCH), name="a.bin", folder=tmp_path / "d")
    make_shard(np.arange(100), name="b.bin", folder=tmp_path / "d")
    with pytest.raises(ShardError, match="no shard holds a whole train batch") as info:
        BatchStream(tmp_path / "d", BATCH, SEQ)
    assert "\n" not in str(info.value) and str(info.value).endswith("; add text, or lower batch_tokens and seq_len")
    assert str(tmp_path / "d") in str(info.value)
    with pytest.raises(ShardError, match=r"a whole validation batch .* make a larger val shard \(`speedrun data tokenize "
                                         r"--val-tokens N`\) or lower val_seq_len and val_tokens$"):
        BatchStream(tmp_path / "d", BATCH, BATCH, role="validation")


def test_bad_shard_is_found_up_front(make_shard, tmp_path):
    make_shard(np.arange(5000), name="a.bin", folder=tmp_path / "d")
    (tmp_path / "d" / "b.bin").write_bytes(b"junk")
    with pytest.raises(ShardError, match="b.bin"):
        BatchStream(tmp_path / "d", BATCH, SEQ)


# ---------------------------------------------------------------------------------------------------------
# validation batches

VAL_SEQ = 32
VAL_TOKENS = 8 * VAL_SEQ


@pytest.fixture
def val_shard(make_shard):
    return make_shard(np.arange(300), name="val_000000.bin")


def _collect(files, rank, ws, val_tokens=VAL_TOKENS):
    return [(i.clone(), t.clone()) for i, t in val_batches(files, val_tokens, VAL_SEQ, rank, ws)]


def test_val_batches_from_the_start_every_call(val_shard):
    a = _collect(val_shard, 0, 1)
    b = _collect(val_shard, 0, 1)
    assert len(a) == 8
    for (ai, at), (bi, bt) in zip(a, b):
        assert torch.equal(ai, bi) and torch.equal(at, bt)
    assert [x[0].item() for x, _ in a] == [k * VAL_SEQ for k in range(8)]
    for inputs, targets in a:
        assert inputs.dtype == torch.int32 and targets.dtype == torch.int64
        assert torch.equal(targets[:-1], inputs[1:].long()) and targets[-1].item() == inputs[-1].item() + 1


@pytest.mark.parametrize("world_size", [2, 4, 8])
def test_val_batches_spread_over_ranks(val_shard, world_size):
    reference = _collect(val_shard, 0, 1)
    union = {}
    for r in range(world_size):
        got = _collect(val_shard, r, world_size)
        assert len(got) == 8 // world_size
        for i, pair in enumerate(got):
            union[i * world_size + r] = pair  # batch i of rank r is global row i * world_size + r
    assert sorted(union) == list(range(8))
    for k, (inputs, targets) in union.items():
        assert torch.equal(inputs, reference[k][0]) and torch.equal(targets, reference[k][1])


def test_val_tokens_must_divide(val_shard):
    with pytest.raises(ValueError, match="multiple"):
        list(val_batches(val_shard, VAL_TOKENS + VAL_SEQ, VAL_SEQ, 0, world_size=2))


def test_check_val_size_boundary(make_shard, tmp_path):
    enough = make_shard(np.arange(VAL_TOKENS + 1), name="ok.bin")  # the last target is one token further
    check_val_size(enough, VAL_TOKENS, VAL_SEQ)
    check_val_size(enough, VAL_TOKENS, VAL_SEQ, world_size=8)
    short = make_shard(np.arange(VAL_TOKENS), name="short.bin")
    with pytest.raises(ShardError) as info:
        check_val_size(short, VAL_TOKENS, VAL_SEQ)
    msg = str(info.value)
    assert "\n" not in msg and "short.bin" in msg and f"{VAL_TOKENS:,}" in msg and "val_tokens" in msg


def test_check_val_size_much_too_small(make_shard):
    tiny = make_shard(np.arange(10), name="tiny_val.bin")
    with pytest.raises(ShardError) as info:
        check_val_size(tiny, VAL_TOKENS, VAL_SEQ)
    # names the folder of the val files (not the file itself)
    assert "\n" not in str(info.value) and str(tiny.parent) in str(info.value)



def test_val_rows_independent_of_world_size_across_val_shards(make_shard, tmp_path):
    folder = tmp_path / "val"
    make_shard(np.arange(90), name="val_000000.bin", folder=folder)
    make_shard(np.arange(90) + 1000, name="val_000001.bin", folder=folder)
    seq, val_tokens = 16, 8 * 16
    ref = sorted(i[0].item() for i, _ in val_batches(folder, val_tokens, seq, 0, 1))
    got = sorted(i[0].item() for r in range(2) for i, _ in val_batches(folder, val_tokens, seq, r, 2))
    assert got == ref
