"""New study from a pretrained network: the weights file, its preview before anything is queued, and a
model selection study's candidates."""

import json

import pytest

from backend.specs.pretrained import sha256_of
from tests.pages.test_new_study import job_count

CROSS = "amount-digits-halves"  # digits (8x8 grey) to digits: a file network of 8x8 grey input fits it
TINY = {"arch": "convnet", "channels": [4, 8], "hidden": [8]}
INPUT = {"size": 8, "channels": 1, "mean": [0.5], "std": [0.25]}


def write_network(path, model=TINY, classes=10):
    """A lab-format network (tensors `body.<unit>.`) as safetensors, its input in the header's metadata."""
    from safetensors.torch import save_file

    from backend.models import build_model
    from backend.specs import ConvNetSpec

    net = build_model(ConvNetSpec(**model), (1, 8, 8), classes)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(net.state_dict(), str(path), metadata={"input": json.dumps(INPUT)})
    return path


def pretrained_form(at, path):
    at.query_params["preset"] = CROSS
    at.run()
    at.radio(key="new.source_mode").set_value("pretrained model").run()
    return at.text_input(key="new.weights_path").input(str(path)).run()


def test_a_safetensors_network_is_previewed_at_once_and_queued_with_its_sha256(empty_app, tmp_path):
    from db.results import Results
    from db.session import get_engine

    make, url = empty_app
    path = write_network(tmp_path / "weights" / "tiny.safetensors")
    at = pretrained_form(make("new_study.py"), path)
    assert not at.exception
    # The preset's network is wider than the file's: said under the Network column, the file's units shown.
    assert any("the file holds a convnet 4,8 | fc 8 (batch norm)" in e.value for e in at.columns[1].error)
    at.button(key="new.use_file_model").click().run()
    assert not at.exception
    assert at.text_input(key="new.channels").value == "4,8" and at.text_input(key="new.hidden").value == "8"
    at.text_input(key="new.seeds").input("0").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    captions = " ".join(c.value for c in at.columns[0].caption)
    assert "Input (from the file): 8x8 grey, mean [0.5], std [0.25]" in captions
    # conv1 4*1*9 + 2*4, conv2 8*4*9 + 2*8, fc1 8*32 + 8, classifier 10*8 + 10: BatchNorm statistics are not parameters
    assert ("The network: 4 units, 702 parameters; a classifier of 10 classes; it takes 8x8 grey images, "
            "mean [0.5], std [0.25]") in captions
    assert sha256_of(path) in captions
    units = at.columns[0].dataframe[0].value
    assert list(units["unit"]) == ["conv1", "conv2", "fc1", "classifier"]
    assert list(units["parameters"]) == [44, 304, 264, 90]
    assert job_count(url) == 0  # previewed without a worker or a job
    at.button(key="new.submit").click().run()
    assert not at.exception and "Queued study #1" in at.success[0].value
    spec = Results(get_engine(url)).study_spec(1)
    assert spec["pretrained"]["sha256"] == sha256_of(path) and spec["pretrained"]["input"]["size"] == 8
    assert spec["source"] is None and spec["model"]["channels"] == [4, 8]


def test_a_weights_file_outside_the_data_roots_is_refused_and_not_read(empty_app, tmp_path, monkeypatch):
    make, url = empty_app
    path = write_network(tmp_path / "private" / "tiny.safetensors")
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(tmp_path / "public"))
    at = pretrained_form(make("new_study.py"), path)
    assert not at.exception
    assert any("pretrained.path" in e.value and "outside the folders data may be read from" in e.value
               for e in at.columns[0].error)
    assert not any("The network:" in c.value or "from the file" in c.value for c in at.caption)  # nothing read
    assert not [b for b in at.button if b.key in ("new.submit", "new.use_file_model")] and job_count(url) == 0


def test_an_upload_is_saved_by_its_sha256_and_its_missing_input_is_asked_for(empty_app, tmp_path):
    from safetensors.torch import save_file

    from backend import settings
    from backend.models import build_model
    from backend.specs import ConvNetSpec

    make, _ = empty_app
    path = tmp_path / "bare.safetensors"
    save_file(build_model(ConvNetSpec(**TINY), (1, 8, 8), 10).state_dict(), str(path))  # no input metadata
    at = make("new_study.py")
    at.query_params["preset"] = CROSS
    at.run()
    at.radio(key="new.source_mode").set_value("pretrained model").run()
    at.radio(key="new.weights_from").set_value("upload").run()
    at.file_uploader(key="new.weights_upload").set_value(("bare.safetensors", path.read_bytes(),
                                                          "application/octet-stream")).run()
    assert not at.exception
    saved = settings.var_dir() / "uploads" / f"{sha256_of(path)}.safetensors"
    assert saved.read_bytes() == path.read_bytes()
    assert any(str(saved) in c.value for c in at.columns[0].caption)
    at.button(key="new.use_file_model").click().run()
    assert not at.exception
    # The RGB default disagrees with the file's first layer: the button set the channels to its 1.
    assert at.radio(key="new.input_channels.False").value == 1
    at.number_input(key="new.input_size.False").set_value(8)
    at.text_input(key="new.input_mean.1").input("0.5")
    at.text_input(key="new.input_std.1").input("0.25, 2").run()
    assert any("pretrained.input.std" in e.value and "1 channels need 1 values" in e.value
               for e in at.columns[0].error)
    at.text_input(key="new.input_std.1").input("0.25").run()
    at.text_input(key="new.seeds").input("0").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert json.loads(at.code[-1].value)["pretrained"]["input"] == INPUT


def test_a_torch_file_is_previewed_by_its_import_job_which_the_study_reuses(empty_app, tmp_path):
    import torch
    import torchvision
    from sqlalchemy import select

    from backend.worker import Worker
    from db.queue import Queue
    from db.schema import Job
    from db.session import get_engine, session_scope

    make, url = empty_app
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), path)
    at = make("new_study.py")
    at.query_params["preset"] = CROSS
    at.run()
    at.radio(key="new.source_mode").set_value("pretrained model").run()
    at.text_input(key="new.weights_path").input(str(path)).run()
    assert at.selectbox(key="new.weights_format.torchvision").value == "torchvision"
    at.selectbox(key="new.arch").set_value("resnet18").run()
    assert not at.exception
    assert at.checkbox(key="new.small_input.imagenet").value is False  # ImageNet's stem
    at.button(key="new.preview_model").click().run()
    assert not at.exception
    assert any("Model preview (job #1)" in i.value and "waiting for a worker" in i.value for i in at.info)
    assert Worker(Queue(get_engine(url)), "cpu", artifacts=tmp_path / "artifacts").serve(max_jobs=1) == 1
    at.run()
    assert not at.exception
    captions = " ".join(c.value for c in at.columns[0].caption)
    assert "The network: 6 units, 11,181,642 parameters; a classifier of 10 classes" in captions
    assert "224x224 RGB" in captions and "imported by job #1" in captions
    assert list(at.columns[0].dataframe[0].value["unit"]) == ["stem", "layer1", "layer2", "layer3", "layer4", "fc"]
    at.text_input(key="new.seeds").input("0").run()
    at.button(key="new.submit").click().run()
    assert not at.exception and "Queued study #1" in at.success[0].value
    with session_scope(get_engine(url)) as s:
        [(status, earlier)] = s.execute(select(Job.status, Job.result_of)
                                        .where(Job.study_id == 1, Job.kind == "import"))
    assert (status, earlier) == ("succeeded", 1)  # the preview's import, not run again


def test_a_model_selection_s_candidates_are_edited_and_errors_are_said_under_the_box(empty_app, tmp_path):
    from db.results import Results
    from db.session import get_engine

    make, url = empty_app
    at = make("new_study.py")
    at.query_params["preset"] = "selection-digits"
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    box = "new.candidates.selection-digits"
    assert "digits 0-4 inverted" in at.text_area(key=box).value
    at.text_area(key=box).input("- name: [unclosed").run()
    assert not at.exception
    assert any("candidates" in e.value and "YAML" in e.value for e in at.columns[0].error)
    at.text_area(key=box).input("- {name: only, source: {source: {kind: digits}}}").run()  # one is no choice
    assert not at.exception and any("candidates" in e.value for e in at.columns[0].error)
    assert not [b for b in at.button if b.key == "new.submit"] and job_count(url) == 0
    path = write_network(tmp_path / "tiny.safetensors", {**TINY, "channels": [32, 64, 64], "hidden": [64, 64]})
    at.text_area(key=box).input(f"""
- name: digits 0-4
  source: {{source: {{kind: digits}}, classes: {{include: [0, 1, 2, 3, 4]}}}}
- name: from a file
  pretrained: {{path: {path}, model: {{channels: [32, 64, 64], hidden: [64, 64]}}}}
""").run()
    at.text_input(key="new.seeds").input("0").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.button(key="new.submit").click().run()
    assert not at.exception and "Queued study #1" in at.success[0].value
    spec = Results(get_engine(url)).study_spec(1)
    assert spec["candidates"][1]["pretrained"]["sha256"] == sha256_of(path)


def test_a_network_of_this_lab_is_found_by_its_job_id(app, seeded_store):
    from db.results import Results
    from db.session import get_engine

    url, study_id = seeded_store
    base_a = int(Results(get_engine(url)).jobs(study_id, kind="train", labels={"treatment": "baseA"}).id.iloc[0])
    at = app("new_study.py")
    at.query_params["preset"] = CROSS
    at.run()
    at.radio(key="new.source_mode").set_value("a network of this lab").run()
    at.text_input(key="new.lab_job").input("999999").run()
    assert not at.exception and any("no job 999999" in e.value for e in at.error)
    at.text_input(key="new.lab_job").input(str(base_a)).run()
    assert not at.exception
    spec = json.loads(at.code[-1].value)
    assert spec["pretrained"]["kind"] == "lab" and spec["model"] == spec["pretrained"]["network"]["model"]
    assert spec["source"] is None  # the network's own data is the source
