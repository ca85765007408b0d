"""A network's CKA representations computed once: cached ones reproduce fresh ones bit for bit, a
damaged cache file is refused, recomputed and logged, and every comparison of a study reuses them."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from backend.data import Images, TaskData
from backend.models import build_model
from backend.checkpoints import state_digest
from backend.probes.representations import RepresentationCache, representation_key
from backend.probes.similarity import cka_matrix, cka_of_representations, unit_representations
from backend.runners import run_similarity
from backend.specs import ConvNetSpec, DataSpec, ProbeImages, SimilarityJobSpec, SimilaritySettings
from backend.train import Normalization
from backend.transfer import SourceNet


def convnet(seed: int):
    torch.manual_seed(seed)
    return build_model(ConvNetSpec(channels=[4, 8], hidden=[16]), (1, 8, 8), 5).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def reps_of(net, x, kernel="linear"):
    return list(net.unit_names), unit_representations(net, x, kernel=kernel, batch_size=16)


def same(a, b) -> bool:
    """Bit for bit: the same units, norms and tensors (features or Gram) or the same absence."""
    (units_a, reps_a), (units_b, reps_b) = a, b
    return units_a == units_b and all(
        ra.norm == rb.norm and all((s is None and t is None) or (s is not None and t is not None and torch.equal(s, t))
                                   for s, t in ((ra.features, rb.features), (ra.gram, rb.gram)))
        for ra, rb in zip(reps_a, reps_b, strict=True))


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_cka_from_representations_equals_cka_matrix(images, kernel):
    a, b = convnet(0), convnet(1)
    fresh = cka_matrix(a, images, b, kernel=kernel, batch_size=16).matrix
    from_reps = cka_of_representations(reps_of(a, images, kernel)[1], reps_of(b, images, kernel)[1])
    assert torch.equal(fresh, from_reps)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("batch", [16, 40, 64])  # batches of 16, 16, 8; one of all 40 images; one short of batch
def test_minibatch_representations_give_cka_matrix_minibatch(images, kernel, batch):
    """Each batch's U-centred Grams, kept per network: their products are the summed unbiased HSICs."""
    a, b = convnet(0), convnet(1)
    with torch.no_grad():  # fc1 onwards constant: the dead units' rows and columns are 0 on both paths
        b.body["conv2"][0].weight.zero_()
    fresh = cka_matrix(a, images, b, kernel=kernel, estimator="minibatch", batch_size=batch)
    reps_a, reps_b = (unit_representations(net, images, kernel=kernel, estimator="minibatch", batch_size=batch)
                      for net in (a, b))
    assert torch.allclose(cka_of_representations(reps_a, reps_b), fresh.matrix, rtol=0, atol=1e-6)
    dead = [u for u, r in zip(b.unit_names, reps_b) if r.norm == 0]
    assert fresh.constant_b == dead == ["conv2", "fc1", "classifier"]
    assert torch.allclose(cka_of_representations(reps_a, reps_a), cka_matrix(a, images, kernel=kernel,
                          estimator="minibatch", batch_size=batch).matrix, rtol=0, atol=1e-6)


def test_a_cached_network_reproduces_fresh_representations_bit_for_bit(tmp_path, images):
    net = convnet(0)
    cache = RepresentationCache(tmp_path)
    first = cache.get("k" * 64, lambda: reps_of(net, images), torch.device("cpu"))
    assert (cache.computed, cache.reused) == (1, 0) and cache.path("k" * 64).exists()
    again = RepresentationCache(tmp_path)  # another worker: from disk
    loaded = again.get("k" * 64, lambda: pytest.fail("recomputed a valid cache file"), torch.device("cpu"))
    assert (again.computed, again.reused) == (0, 1)
    assert same(loaded, first) and same(loaded, reps_of(net, images))
    assert again.get("k" * 64, lambda: pytest.fail("not kept in memory"), torch.device("cpu")) is loaded


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "foreign sidecar"])
def test_a_damaged_cache_file_is_refused_recomputed_and_logged(tmp_path, images, caplog, damage):
    net = convnet(0)
    key = "d" * 64
    RepresentationCache(tmp_path).get(key, lambda: reps_of(net, images), torch.device("cpu"))
    path = RepresentationCache(tmp_path).path(key)
    data = bytearray(path.read_bytes())
    if damage == "flip a byte":
        data[-5] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        path.with_suffix(".json").write_text(path.with_suffix(".json").read_text().replace(key, "e" * 64))
    cache = RepresentationCache(tmp_path)
    with caplog.at_level(logging.WARNING, logger="transferlab.representations"):
        value = cache.get(key, lambda: reps_of(net, images), torch.device("cpu"))
    assert cache.computed == 1 and "refused" in caplog.text and str(path) in caplog.text
    assert same(value, reps_of(net, images))
    healed = RepresentationCache(tmp_path)  # rewritten: read back without recomputing
    healed.get(key, lambda: pytest.fail("the rewritten file was refused"), torch.device("cpu"))


def test_the_disk_cache_keeps_the_most_recently_used_within_its_size(tmp_path, images):
    one = RepresentationCache(tmp_path)
    one.get("a" * 64, lambda: reps_of(convnet(0), images), torch.device("cpu"))
    size = one.path("a" * 64).stat().st_size
    cache = RepresentationCache(tmp_path, capacity=0, disk_bytes=int(2.5 * size))  # room for two files
    cache.get("b" * 64, lambda: reps_of(convnet(1), images), torch.device("cpu"))
    os.utime(cache.path("a" * 64), (1, 1))  # long unused
    os.utime(cache.path("b" * 64), (2, 2))
    cache.get("b" * 64, lambda: pytest.fail("on disk"), torch.device("cpu"))  # used now
    cache.get("c" * 64, lambda: reps_of(convnet(2), images), torch.device("cpu"))
    kept = {f.stem[0] for f in tmp_path.rglob("*.safetensors")}
    assert kept == {"b", "c"} and not cache.path("a" * 64).with_suffix(".json").exists()


def test_memory_keeps_the_most_recent_networks():
    cache = RepresentationCache(capacity=2)
    for key in ("a", "b", "a", "c"):
        cache.get(key, lambda: ([], []), torch.device("cpu"))
    assert list(cache.memory) == ["a", "c"] and (cache.computed, cache.reused) == (3, 1)


def test_the_key_names_network_images_and_feature_settings():
    images = {"data": {"source": {"kind": "digits"}}, "split": "test", "images": 64, "seed": 0}
    settings = {"kernel": "linear", "pool": "flatten", "rbf_width": 0.8, "batch_size": 256, "estimator": "full",
                "seed": 0}
    base = representation_key("a" * 64, images, settings)
    assert base == representation_key("a" * 64, images, {**settings, "seed": 5})  # not a feature setting
    assert base != representation_key("b" * 64, images, settings)
    assert base != representation_key("a" * 64, {**images, "images": 65}, settings)
    assert base != representation_key("a" * 64, images, {**settings, "pool": "mean"})
    assert base != representation_key("a" * 64, images, settings, weights="f" * 64)  # the network run again


def test_the_key_names_the_estimator_and_the_data_fingerprint():
    images = {"data": {"source": {"kind": "digits"}}, "split": "test", "images": 64, "seed": 0}
    settings = {"kernel": "linear", "pool": "flatten", "rbf_width": 0.8, "batch_size": 256, "estimator": "full"}
    base = representation_key("a" * 64, images, settings, data="1" * 32)
    assert base != representation_key("a" * 64, images, {**settings, "estimator": "minibatch"})
    assert base != representation_key("a" * 64, images, settings, data="2" * 32)  # same spec, other files


@pytest.mark.parametrize("estimator", ["full", "minibatch"])
def test_the_same_spec_over_changed_data_does_not_reuse_representations(images, estimator):
    """A folder task whose files changed keeps its spec but not its fingerprint: its comparisons are
    computed on the new images, not read from the old ones' representations."""
    nets = {k * 64: SourceNet({n: t.clone() for n, t in convnet(seed).state_dict().items()},
                              Normalization((0.5,), (0.25,)), ConvNetSpec(channels=[4, 8], hidden=[16]), (1, 8, 8), 5)
            for k, seed in (("a", 0), ("b", 1))}
    data = DataSpec.model_validate({"source": {"kind": "digits"}})
    spec = SimilarityJobSpec(a="a" * 64, b="b" * 64, images=ProbeImages(data=data, split="test", images=24),
                             settings=SimilaritySettings(estimator=estimator, batch_size=32))

    def task(seed: int) -> TaskData:  # the same spec, other image files
        x = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
        split = Images(x, torch.arange(40) % 5)
        return TaskData(split, split, tuple("abcde"))

    cache, cpu = RepresentationCache(), torch.device("cpu")
    before, after = task(0), task(1)
    assert before.fingerprint != after.fingerprint
    old = run_similarity(spec, nets, cpu, lambda f, m: None, load=lambda d: before, representations=cache)
    new = run_similarity(spec, nets, cpu, lambda f, m: None, load=lambda d: after, representations=cache)
    assert (cache.computed, cache.reused) == (4, 0)
    alone = run_similarity(spec, nets, cpu, lambda f, m: None, load=lambda d: after)  # a fresh cache
    assert (new.arrays["cka"] == alone.arrays["cka"]).all() and not (new.arrays["cka"] == old.arrays["cka"]).all()
    assert new.tables["data_fingerprint"] == after.fingerprint
    run_similarity(spec, nets, cpu, lambda f, m: None, load=lambda d: before, representations=cache)
    assert (cache.computed, cache.reused) == (4, 2)


def test_the_state_digest_sees_every_weight():
    state = convnet(0).state_dict()
    digest = state_digest(state)
    assert digest == state_digest({k: v.clone() for k, v in state.items()})
    changed = {k: v.clone() for k, v in state.items()}
    next(t for t in changed.values() if t.is_floating_point()).view(-1)[0] += 1e-6
    assert state_digest(changed) != digest
