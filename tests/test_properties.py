"""Property-based tests (hypothesis) of what outsiders type: the spec parser, the pages' URL state and
the share reader. Whatever comes in, the only exception is the project's own SpecError naming a field,
and nothing is queued or stored. CI runs at least 1,000 inputs each (`CI=true`); a local run, fewer.

Every study kind's spec goes through the whole submit path (parse, data roots, class ids, memory) 1,000
times, locally too, and a sample of the accepted ones runs its first job: a spec the submit path
accepts must not fail on a worker.
"""

import copy
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from backend.specs import CROSS_TREATMENTS, PRESETS, TORCHVISION_SETS, TREATMENTS, SpecError
from backend.studies import STUDY_KINDS, parse_study

ROOT = Path(__file__).resolve().parents[1]
MANY = 1000 if os.environ.get("CI") == "true" else 200
PAGE_RUNS = 200  # examples that each run a whole page (AppTest, ~0.25 s each)
# Every parameter a page reads from its URL, and the values a tamperer tries.
PARAMS = ["archived", "at_n", "colour", "curve", "dots", "every", "facet", "fit", "job", "jobs", "kind", "live",
          "measure", "metric", "page", "path", "preset", "q", "scope", "score", "status", "study", "studies", "x",
          "y", "zoom", "share", "treatments", "seed", "n", "target", "amount"]
TEXT = st.one_of(st.text(max_size=20), st.sampled_from(["", "1", "0", "-1", "1,2", "999999", "1e400", "nan", "all",
                                                         "<script>", "1,,x", "AnB", "gain", "../../etc"]),
                 st.integers(-10**12, 10**12).map(str))
JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**15, 10**15),
                              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12)),
                    lambda inner: st.one_of(st.lists(inner, max_size=4),
                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=8)


def paths(tree, prefix=()):
    """Every (path, value) of a nested spec dict, lists included."""
    yield prefix, tree
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from paths(v, (*prefix, i))


@st.composite
def tampered_specs(draw):
    """A preset's spec with one to three of its fields replaced, removed or misspelt."""
    spec = copy.deepcopy(PRESETS[draw(st.sampled_from(sorted(PRESETS)))].spec_dict(quick=True))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from([p for p, _ in paths(spec) if p]))
        parent = spec
        for step in where[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "remove", "misspell"]))
        if action == "replace":
            parent[where[-1]] = draw(JSON)
        elif action == "remove" and isinstance(parent, dict):
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[f"{where[-1]}_"] = parent.pop(where[-1])
        if not isinstance(spec, dict):
            break
    return spec


@settings(max_examples=MANY, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tampered_specs())
def test_the_spec_parser_raises_only_spec_errors_that_name_a_field(spec):
    try:
        study = parse_study(spec)
    except SpecError as exc:
        assert str(exc) and (exc.field or ": " in str(exc)), repr(exc)
    else:
        json.dumps(study.model_dump(mode="json"))  # a valid one round-trips


@settings(max_examples=MANY, deadline=None)
@given(JSON)
def test_any_json_at_all_is_refused_cleanly(obj):
    try:
        parse_study(obj if isinstance(obj, dict) else {"study": obj})
    except SpecError:
        pass


@pytest.fixture(scope="module")
def shares(tmp_path_factory):
    from db.session import get_engine
    from db.shares import Shares

    store = Shares(get_engine(f"sqlite:///{tmp_path_factory.mktemp('shares') / 'store.db'}"))
    kept = store.create("layers", {"study": "1"}, [{"n": 1, "final": 50.0}], caption="kept")
    return store, kept


@settings(max_examples=MANY, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(TEXT)
def test_the_share_reader_answers_any_id_with_a_snapshot_or_none(shares, share_id):
    store, kept = shares
    snapshot = store.get(share_id)
    assert snapshot is None or snapshot.id == share_id == kept


def bound_page():
    """A page's kinds of URL state: a list of ids, a choice, a number, a switch, free text."""
    import streamlit as st_

    from ui.state import PageState, flag, ints, joined, shown

    state = PageState("prop")
    st_.multiselect("Studies", [1, 2, 3], key=state.bind("studies", [1], ints, lambda v: set(v) <= {1, 2, 3},
                                                            show=joined))
    st_.selectbox("y", ["gain", "accuracy"], key=state.bind("y", "gain", valid=["gain", "accuracy"].__contains__))
    st_.number_input("n", 0, 9, key=state.bind("n", 1, int, lambda v: 0 <= v <= 9))
    st_.toggle("fit", key=state.bind("fit", False, flag, show=shown))
    st_.text_input("q", key=state.bind("q", ""))
    state.report()
    state.sync()


@settings(max_examples=PAGE_RUNS, deadline=None)
@given(st.dictionaries(st.sampled_from(["studies", "y", "n", "fit", "q", "other"]), TEXT, max_size=5))
def test_url_state_takes_a_valid_value_or_falls_back_with_a_message(params):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(bound_page)
    at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception
    assert set(at.multiselect[0].value) <= {1, 2, 3} and at.selectbox[0].value in ("gain", "accuracy")
    assert 0 <= at.number_input[0].value <= 9


# ---------------------------------------------------------------- every study kind through the whole submit path

SUBMITS = 1000  # generated specs per study kind, locally and in CI (issue 19: at least 1,000)
RUNS = 40  # generated specs per study kind whose first job runs when accepted (about a third are)
# Integers a typist or a script might send: small ones near the edges, and ones no int64 holds.
INTS = st.one_of(st.integers(-2, 12), st.sampled_from([0, -1, 10**12, 2**31, 2**63, -(2**63), 2**64]),
                 st.integers(-10**20, 10**20))
FLOATS = st.one_of(st.sampled_from([0.0, 0.1, 0.35, 0.5, 1.0, -0.5, 1.5, 1e308]),
                   st.floats(allow_nan=True, allow_infinity=True))
WIDTHS = st.lists(st.one_of(st.integers(-2, 64), st.sampled_from([0, -1, 10**6, 10**12])), max_size=4)
# Roots inside the test's data roots (../shared/datasets), outside them, empty, missing, and the wrong layout.
ROOTS = st.sampled_from(["../shared/datasets", "../shared/datasets/cifar10-5k", "../shared/datasets/usps",
                         "../shared/datasets/MNIST", "../shared/datasets/none-here", "/etc", "/", "", "  "])


def optional(**fields):
    """A dict holding any subset of the fields."""
    return st.fixed_dictionaries({}, optional=fields)


def shifts(ints=INTS):
    shift = st.one_of(optional(kind=st.just("block_shuffle"), block=ints, seed=ints),
                      st.fixed_dictionaries({"kind": st.sampled_from(["pixel_shuffle", "inversion", "warp"])}),
                      st.fixed_dictionaries({"kind": st.just("noise"), "std": FLOATS}),
                      st.fixed_dictionaries({"kind": st.just("blur"), "sigma": FLOATS}),
                      st.fixed_dictionaries({"kind": st.just("contrast"), "factor": FLOATS}),
                      st.fixed_dictionaries({"kind": st.just("rotation"), "degrees": FLOATS}))
    return st.lists(shift, max_size=2)


def sources(runnable):
    """Sources to submit; `runnable`: only the built-ins, at sizes a test trains in a second."""
    small = st.integers(-1, 12) if runnable else INTS
    synthetic = optional(kind=st.just("synthetic"), n_classes=small, size=st.integers(-1, 24) if runnable else INTS,
                         train_per_class=st.integers(-1, 10) if runnable else INTS, test_per_class=small, gap=FLOATS,
                         class_seed=INTS)
    built_in = st.one_of(st.just({"kind": "digits"}), optional(kind=st.just("digits"), test_fraction=FLOATS),
                         synthetic.map(lambda s: {"kind": "synthetic", **s}))
    if runnable:
        return built_in
    return st.one_of(built_in, optional(kind=st.just("torchvision"), name=st.sampled_from([*TORCHVISION_SETS, "ImageNet"]),
                                        root=ROOTS, split=st.sampled_from(["balanced", "letters", "byclass", "x"])),
                     optional(kind=st.just("folder"), root=ROOTS, test_fraction=FLOATS))


def data_fields(runnable):
    """(field, values) of a data spec: its source, classes, amounts, format and shifts."""
    amount = st.one_of(st.none(), st.integers(-1, 10)) if runnable else st.one_of(st.none(), INTS)
    return {"source": sources(runnable),
            "classes": optional(include=st.lists(INTS if not runnable else st.integers(-1, 12), max_size=6), first=INTS,
                                half=st.sampled_from(["A", "B", None, "C"]), fraction=FLOATS, seed=INTS),
            "per_class": amount, "test_per_class": amount, "seed": INTS,
            "size": st.one_of(st.none(), st.integers(-1, 40) if runnable else INTS),
            "channels": st.sampled_from([None, 1, 3, 2]), "shifts": shifts(st.integers(-1, 9) if runnable else INTS)}


def study_fields(kind, runnable):
    """(field, values) of a study of `kind`, beyond its data: the grid, the network, the training, the probes."""
    fields = {
        "seeds": st.lists(INTS, min_size=0, max_size=3), "n": st.one_of(st.none(), st.lists(INTS, max_size=3)),
        "model": st.one_of(st.fixed_dictionaries({"arch": st.just("convnet"), "channels": WIDTHS, "hidden": WIDTHS},
                                                 optional={"norm": st.sampled_from(["batch", "group", "none", "layer"]),
                                                           "dropout": FLOATS}),
                           st.fixed_dictionaries({"arch": st.just("mlp"), "hidden": WIDTHS}),
                           st.fixed_dictionaries({"channels": WIDTHS}),
                           *(() if runnable else [optional(arch=st.sampled_from(["resnet18", "resnet50", "vgg"]),
                                                           small_input=st.booleans())])),
        "model.channels": WIDTHS, "model.hidden": WIDTHS,
        "train.epochs": st.just(1) if runnable else INTS, "train.batch_size": INTS, "train.lr": FLOATS,
        "train.eval_batch_size": st.one_of(st.none(), INTS), "train.stop_after": st.one_of(st.none(), INTS),
        "train.seed": INTS, "train.warmup_epochs": FLOATS, "train.momentum": FLOATS,
        "train.augment": st.sampled_from(["none", "crop", "flip_crop", "mixup"]),
        "train.optimizer": st.sampled_from(["sgd", "adamw", "lbfgs"]),
        "train.weight_decay": FLOATS, "train.label_smoothing": FLOATS, "model.dropout": FLOATS,
        "model.norm": st.sampled_from(["batch", "group", "none"]),
        "train.schedule": st.sampled_from(["cosine", "step", "constant", "linear"]),
    }
    if kind == "yosinski":
        fields.update({"treatments": st.lists(st.sampled_from([*TREATMENTS, "XnY"]), max_size=3),
                       "groups": st.one_of(st.none(), st.lists(st.lists(INTS, max_size=5), max_size=3)),
                       "probes.sharpness": st.one_of(st.none(), optional(images=INTS, top_k=INTS)),
                       "probes.similarity": st.one_of(st.none(), optional(images=INTS, batch_size=INTS))})
        fields.update({f"data.{k}": v for k, v in data_fields(runnable).items()})
        return fields
    fields["input"] = optional(size=st.one_of(st.none(), INTS), channels=st.sampled_from([None, 1, 3, 0]))
    if kind == "model_selection":
        fields.update({"amounts": st.lists(st.one_of(st.none(), INTS), max_size=3), "n": st.one_of(st.none(), INTS),
                       "baseline": st.booleans(), "pretrain.epochs": st.just(1) if runnable else INTS,
                       "pretrain.batch_size": INTS, "scores.images": INTS,
                       "candidates.0.name": st.text(max_size=3), "candidates.1.model": fields["model"],
                       "candidates.0.pretrained": optional(path=st.sampled_from(["../../etc/passwd", "m.pth"]),
                                                           format=st.sampled_from(["timm", "onnx"])),
                       **{f"target.{k}": v for k, v in data_fields(runnable).items()},
                       **{f"candidates.0.source.{k}": v for k, v in data_fields(runnable).items()}})
        return fields
    fields.update({"targets.0.data": st.fixed_dictionaries({"source": sources(runnable)}),
                   **{f"source.{k}": v for k, v in data_fields(runnable).items()},
                   **{f"targets.0.data.{k}": v for k, v in data_fields(runnable).items()}})
    if kind == "cross_dataset":
        fields.update({"treatments": st.lists(st.sampled_from([*CROSS_TREATMENTS, "BnB"]), max_size=2),
                       "amounts": st.lists(st.one_of(st.none(), INTS), max_size=3),
                       "class_fractions": st.lists(st.one_of(st.none(), FLOATS), max_size=3),
                       "depths": st.one_of(st.none(), st.lists(INTS, max_size=3)),
                       "source_epochs": st.one_of(st.none(), st.lists(INTS, max_size=3)),
                       "probes.gap": st.one_of(st.none(), optional(images=INTS, space=st.sampled_from(["pixels", "x"]))),
                       "probes.smoothness": st.one_of(st.none(), optional(points=INTS, images=INTS))})
    else:
        fields.update({"runs": INTS, "n": st.one_of(st.none(), INTS),
                       "probes.plane": st.one_of(st.none(), optional(resolution=INTS, span=FLOATS)),
                       "probes.criticality": st.one_of(st.none(), optional(samples=INTS, alphas=st.lists(FLOATS, max_size=3)))})
    return fields


def put(tree, path, value):
    """Set a dotted path (list indices included) in a spec's dict form, creating groups on the way."""
    *parents, leaf = [int(p) if p.isdigit() else p for p in path.split(".")]
    for key in parents:
        if isinstance(tree, list):
            if key >= len(tree):
                return
            tree = tree[key]
        else:
            tree = tree.setdefault(key, {})
        if not isinstance(tree, (dict, list)):
            return
    if isinstance(tree, dict) or (isinstance(tree, list) and leaf < len(tree)):
        tree[leaf] = value


# Sizes at which an offline preset's first job trains in about a second.
FAST = {"train.epochs": 1, "train.batch_size": 32, "seeds": [0], "data.per_class": 10, "data.test_per_class": 10,
        "source.per_class": 10, "source.test_per_class": 10, "model.channels": [8, 8], "model.hidden": [16],
        "pretrain.epochs": 1, "pretrain.batch_size": 32}


@st.composite
def study_specs(draw, kind, runnable=False):
    """A preset of `kind` with one to four of its fields set to values of the right shape, in range or not;
    `runnable`: an offline preset at a size whose first job trains in about a second, one or two fields."""
    names = sorted(n for n, p in PRESETS.items() if p.study == kind and (
        not runnable or "needs" not in p.asks and "--root" not in p.asks))
    spec = PRESETS[draw(st.sampled_from(names))].spec_dict(quick=True)
    if runnable:
        for path, value in FAST.items():
            if path.split(".")[0] in spec or path.startswith(("train", "model", "seeds")):
                put(spec, path, copy.deepcopy(value))
    fields = study_fields(kind, runnable)
    for path in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=2 if runnable else 4, unique=True)):
        put(spec, path, draw(fields[path]))
    return spec


def submitted(spec):
    """The whole submit path (parse, data roots, class ids, memory): the study, or None when refused
    with a SpecError naming a field. Any other exception fails the test."""
    from hypothesis import event

    from db.submit import check_study

    try:
        study = parse_study(spec)
        check_study(study)
    except SpecError as exc:
        assert str(exc) and (exc.field or ": " in str(exc)), repr(exc)
        event(f"refused at {(exc.field or 'several fields').split('.')[0]}")
        return None
    event("accepted")
    return study


@pytest.mark.parametrize("kind", sorted(STUDY_KINDS))
def test_every_study_kind_is_refused_with_a_spec_error_or_accepted_at_submit(kind):
    seen = {"accepted": 0, "refused": 0}

    @settings(max_examples=SUBMITS, deadline=None, suppress_health_check=list(HealthCheck))
    @given(study_specs(kind))
    def check(spec):
        seen["refused" if submitted(spec) is None else "accepted"] += 1

    check()
    # all of them generated, and both outcomes common: the generator explores both sides of the edge
    assert sum(seen.values()) >= SUBMITS and min(seen.values()) >= SUBMITS // 10, seen


@pytest.mark.parametrize("kind", sorted(STUDY_KINDS))
def test_an_accepted_study_runs_its_first_job(kind):
    from backend.studies import expand
    from backend.studies.local import run_local

    ran = []

    @settings(max_examples=RUNS, deadline=None, suppress_health_check=list(HealthCheck))
    @given(study_specs(kind, runnable=True))
    def check(spec):
        study = submitted(spec)
        if study is not None:
            [outcome] = run_local(expand(study)[:1], "cpu")
            assert outcome.output.scalars
            ran.append(outcome.job.kind)

    check()
    assert len(ran) >= 3, ran
