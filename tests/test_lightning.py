"""examples/lightning_datamodule.py under a real Lightning ``Trainer`` on the CPU: the
DataLoader keeps our sampler (``use_distributed_sampler=False``), every epoch trains the
sampler's order for that epoch, two gloo DDP processes train disjoint shards whose union is
the single-process epoch, and checkpoints carry the sampler so a resumed fit continues it."""
import atexit
import json
import os
import socket
import sys
import types

import pytest

L = pytest.importorskip("lightning", reason="the Lightning example needs lightning "
                                              "(pip install 'longtail[lightning]')")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from longtail.datasets import MultilabelDataset, make_long_tail, write_dataset  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples")
sys.path.insert(0, EXAMPLES)

import lightning_datamodule as X  # noqa: E402

pytestmark = [
    # num_workers=0 hints, and the "dataloader is not resumable" note of a mid-epoch
    # resume (the sampler is resumable: the tests below check it)
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
    pytest.mark.filterwarnings("ignore::longtail.samplers.ExposureWarning"),
    # Lightning's own: torch's LeafSpec deprecation, the empty validation loader (no val
    # set), the ModelCheckpoint of the first run not passed to the resumed one
    pytest.mark.filterwarnings("ignore:.*LeafSpec"),
    pytest.mark.filterwarnings("ignore:Total length of `list` across ranks is zero"),
    pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`"),
]

N_TRAIN, BATCH = 480, 64


@pytest.fixture(scope="module")
def data():
    d = make_long_tail("small", seed=0, n_examples=600)
    train = MultilabelDataset(d.features[:N_TRAIN], d.labels.take(np.arange(N_TRAIN)))
    val = MultilabelDataset(d.features[N_TRAIN:], d.labels.take(np.arange(N_TRAIN, 600)))
    return train, val


def _destroy_process_group():
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


class Recorder(X.LongtailModule):
    """The example's module, recording the dataset indices of every trained batch per epoch
    (and, with ``out_dir``, writing them to ``rank<r>.json``: DDP spawns other processes),
    and which loader each epoch used."""

    def __init__(self, train, out_dir=None):
        super().__init__(train.n_features, train.n_labels,
                         torch.from_numpy(train.labels.prevalence()), hidden=16)
        self.out_dir = out_dir
        self.seen: dict[int, list[list[int]]] = {}
        self.loaders: list[DataLoader] = []

    def on_train_epoch_start(self):
        self.loaders.append(self.trainer.train_dataloader)

    def on_fit_start(self):
        # Lightning destroys a gloo process group nowhere (only NCCL's, at exit): left to
        # the C++ static destructors, its threads made a spawned rank abort at exit now
        # and then ("terminate called without an active exception", about 1 run in 5 of
        # this file after the other sampler tests, before and after issue 14's changes)
        if torch.distributed.is_initialized():
            atexit.register(_destroy_process_group)

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(self.current_epoch, []).append(batch[2].tolist())
        return super().training_step(batch, batch_idx)

    def on_train_end(self):
        if self.out_dir is not None:
            dm = self.trainer.datamodule
            replay = dm.replay
            out = {"seen": self.seen, "world_size": self.trainer.world_size,
                   "digest": None if replay is None else replay.digest()}
            with open(os.path.join(self.out_dir, f"rank{self.global_rank}.json"), "w") as f:
                json.dump(out, f)


def make_trainer(**overrides):
    kwargs = dict(accelerator="cpu", devices=1, max_epochs=2, use_distributed_sampler=False,
                  enable_progress_bar=False, logger=False, enable_checkpointing=False,
                  enable_model_summary=False, num_sanity_val_steps=0,
                  callbacks=[X.SamplerEpoch()])
    kwargs.update(overrides)
    return L.Trainer(**kwargs)


def expected_batches(dm, epoch, num_replicas=1, rank=0):
    """What a fresh sampler of ``dm``'s kind yields for ``epoch``, cut into the batches the
    DataLoader makes of it."""
    s = dm.build_sampler(num_replicas, rank)
    s.set_epoch(epoch)
    if dm.is_batch_sampler:
        return [list(b) for b in s]
    order = list(s)
    return [order[i:i + dm.batch_size] for i in range(0, len(order), dm.batch_size)]


def flat(batches):
    return [i for b in batches for i in b]


# ------------------------------------------------------------------ (a) one process, Trainer
@pytest.mark.parametrize("kind", ["shuffle", "class_aware", "stratified"])
def test_trainer_keeps_the_sampler_and_trains_its_epochs(data, kind, tmp_path):
    train, val = data
    if kind == "stratified":   # from an ArrowDataset file, as in the DataModule's docs
        path = tmp_path / "train.arrow"
        write_dataset(path, train.features, train.labels)
        train = str(path)
    dm = X.LongtailDataModule(train, val if kind == "shuffle" else None, sampler=kind,
                              batch_size=BATCH, seed=3)
    model = Recorder(dm.train_set)
    trainer = make_trainer()
    trainer.fit(model, datamodule=dm)

    where = "batch_sampler" if dm.is_batch_sampler else "sampler"
    assert len(model.loaders) == 2
    for loader in model.loaders:   # not replaced, not wrapped: our very object
        assert getattr(loader, where) is dm.sampler
    for epoch in (0, 1):
        assert model.seen[epoch] == expected_batches(dm, epoch), f"epoch {epoch}"
    # set_epoch reached the sampler (Lightning alone never calls it on a batch sampler)
    assert dm.sampler.epoch == 1 and model.seen[0] != model.seen[1]
    if kind != "class_aware":   # without replacement: every example once per epoch
        assert sorted(flat(model.seen[1])) == list(range(N_TRAIN))
    if kind == "shuffle":       # validation macro AP from longtail.metrics, logged
        ap = float(trainer.callback_metrics["val_ap_macro"])
        assert 0.0 < ap <= 1.0


def test_replay_gets_feedback_from_training_step(data):
    train, _ = data
    dm = X.LongtailDataModule(train, sampler="replay", batch_size=BATCH, seed=0)
    model = Recorder(train)
    make_trainer().fit(model, datamodule=dm)
    sampler = dm.sampler
    assert all(loader.batch_sampler is sampler for loader in model.loaders)
    batches = len(model.seen[0]) + len(model.seen[1])
    assert batches == 2 * len(sampler) == sampler.step
    state = sampler.state_dict()
    assert state["updates"] == batches          # one update() per training_step
    assert not np.all(sampler.priorities == 1.0)  # the losses set the priorities


def test_setup_refuses_a_trainer_without_the_epoch_callback(data):
    dm = X.LongtailDataModule(data[0], sampler="stratified", batch_size=BATCH)
    with pytest.raises(ValueError, match="SamplerEpoch"):
        make_trainer(callbacks=[]).fit(Recorder(data[0]), datamodule=dm)


def test_sampler_epoch_refuses_a_replaced_sampler_and_sets_the_epoch(data):
    dm = X.LongtailDataModule(data[0], sampler="shuffle", batch_size=BATCH)
    dm.sampler = dm.build_sampler(1, 0)
    callback = X.SamplerEpoch()
    ours = types.SimpleNamespace(datamodule=dm, current_epoch=4,
                                 train_dataloader=DataLoader(data[0], sampler=dm.sampler))
    callback.on_train_epoch_start(ours, None)
    assert dm.sampler.epoch == 4
    replaced = types.SimpleNamespace(datamodule=dm, current_epoch=5,
                                     train_dataloader=DataLoader(data[0], shuffle=True))
    with pytest.raises(RuntimeError, match="use_distributed_sampler=False"):
        callback.on_train_epoch_start(replaced, None)
    assert dm.sampler.epoch == 4


def test_datamodule_checks_its_arguments(data):
    with pytest.raises(ValueError, match="sampler must be one of"):
        X.LongtailDataModule(data[0], sampler="uniform")
    with pytest.raises(TypeError, match="train must be"):
        X.LongtailDataModule(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="no 'sampler'"):
        X.LongtailDataModule(data[0]).load_state_dict({})


# ------------------------------------------------------------------ (b) two processes, gloo
@pytest.mark.slow   # about 10-15 s each: two spawned processes import torch and Lightning
@pytest.mark.parametrize("kind", ["shuffle", "replay"])
def test_two_process_ddp_shards_the_epoch(data, kind, tmp_path, monkeypatch):
    train, _ = data
    # Lightning writes the rendezvous into os.environ and leaves it there: a fresh port
    # for this run, restored afterwards
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    dm = X.LongtailDataModule(train, sampler=kind, batch_size=BATCH, seed=5)
    trainer = make_trainer(devices=2, strategy="ddp_spawn")
    trainer.fit(Recorder(train, out_dir=str(tmp_path)), datamodule=dm)
    ranks = []
    for r in (0, 1):
        with open(tmp_path / f"rank{r}.json") as f:
            ranks.append(json.load(f))
    assert [r["world_size"] for r in ranks] == [2, 2]
    if kind == "replay":   # update() all-gathered: both ranks hold the same priorities
        assert ranks[0]["digest"] == ranks[1]["digest"]
        assert all(len(r["seen"][e]) == -(-N_TRAIN // (2 * BATCH))
                   for r in ranks for e in ("0", "1"))
        return
    for epoch in (0, 1):
        whole = flat(expected_batches(dm, epoch))   # the single-process epoch
        parts = [flat(r["seen"][str(epoch)]) for r in ranks]
        assert set(parts[0]).isdisjoint(parts[1])
        assert sorted(parts[0] + parts[1]) == sorted(whole) == list(range(N_TRAIN))
        for r in (0, 1):   # the DistributedSampler layout: items r, r + 2, ...
            assert parts[r] == whole[r::2]


def test_ddp_without_the_switch_is_refused(data, monkeypatch):
    """The check in setup (no processes are started: the trainer reports 2 ranks)."""
    dm = X.LongtailDataModule(data[0], sampler="shuffle", batch_size=BATCH)
    trainer = make_trainer(use_distributed_sampler=True)
    monkeypatch.setattr(type(trainer), "world_size", property(lambda self: 2))
    dm.trainer = trainer
    with pytest.raises(ValueError, match="use_distributed_sampler=False"):
        dm.setup("fit")


# ------------------------------------------------------------------ (c) checkpoints, resume
def _checkpoints(tmp_path, **every):
    return ModelCheckpoint(dirpath=str(tmp_path), save_top_k=-1, **every)


class DrawnAhead(L.Callback):
    """The sampler's own position after each trained batch (what the DataLoader drew)."""

    def __init__(self):
        self.drawn = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.drawn[trainer.global_step] = trainer.datamodule.sampler.state_dict()["yielded"]


@pytest.mark.parametrize("kind,workers", [
    ("shuffle", 0), ("shuffle", 2), ("stratified", 0),
    ("stratified", 2)])
def test_mid_epoch_checkpoint_resumes_at_the_first_untrained_batch(data, kind, workers,
                                                                   tmp_path):
    train, _ = data
    steps = len(expected_batches(X.LongtailDataModule(train, sampler=kind,
                                                      batch_size=BATCH), 0))
    stop = steps + 3   # three batches into the second epoch
    full, ahead = Recorder(train), DrawnAhead()
    dm = X.LongtailDataModule(train, sampler=kind, batch_size=BATCH, seed=1,
                              num_workers=workers)
    make_trainer(enable_checkpointing=True,
                 callbacks=[X.SamplerEpoch(), ahead,
                            _checkpoints(tmp_path, every_n_train_steps=stop)]
                 ).fit(full, datamodule=dm)
    ckpt = tmp_path / f"epoch=1-step={stop}.ckpt"
    saved = torch.load(ckpt, weights_only=True)["LongtailDataModule"]["sampler"]
    # the batches trained, not the ones the workers had drawn ahead
    per_batch = 1 if dm.is_batch_sampler else BATCH
    assert saved["epoch"] == 1 and saved["yielded"] == 3 * per_batch
    assert (ahead.drawn[stop] > saved["yielded"]) == (workers > 0)

    resumed = Recorder(train)
    dm2 = X.LongtailDataModule(train, sampler=kind, batch_size=BATCH, seed=1,
                               num_workers=workers)
    make_trainer().fit(resumed, datamodule=dm2, ckpt_path=str(ckpt))
    assert list(resumed.seen) == [1]
    assert resumed.seen[1] == full.seen[1][3:]


def test_replay_resumes_from_an_epoch_checkpoint_as_if_uninterrupted(data, tmp_path):
    train, _ = data
    full = Recorder(train)
    dm = X.LongtailDataModule(train, sampler="replay", batch_size=BATCH, seed=2)
    make_trainer(max_epochs=3, enable_checkpointing=True,
                 callbacks=[X.SamplerEpoch(), _checkpoints(tmp_path, every_n_epochs=1)]
                 ).fit(full, datamodule=dm)
    steps = len(full.seen[0])
    ckpt = tmp_path / f"epoch=0-step={steps}.ckpt"
    saved = torch.load(ckpt, weights_only=True)["LongtailDataModule"]["sampler"]
    assert saved["step"] == steps and isinstance(saved["prio"], torch.Tensor)

    resumed = Recorder(train)   # other initial weights: the checkpoint restores them
    dm2 = X.LongtailDataModule(train, sampler="replay", batch_size=BATCH, seed=2)
    make_trainer(max_epochs=3).fit(resumed, datamodule=dm2, ckpt_path=str(ckpt))
    assert list(resumed.seen) == [1, 2]
    assert resumed.seen[1] == full.seen[1] and resumed.seen[2] == full.seen[2]
    # the same priorities at the end (a sampler that had not loaded the state would have
    # drawn epoch 1 from step 0 with every priority 1: other batches)
    assert dm2.sampler.digest() == dm.sampler.digest()
