"""New study: a preset from the literature or a custom grid, validated before anything is queued."""

import json
from pathlib import Path

import streamlit as st
import yaml

from backend.jobs import JOB_KINDS
from backend.specs import PRESETS, TORCHVISION_SETS, SpecError, ViTSpec, canonical_json, unit_names
from backend.specs.presets import check_preset_folder
from backend.specs.probes import SHARPNESS_LADDER
from backend.specs.roots import check_folder
from backend.studies import STUDY_KINDS, fitting_sharpness, parse_study, study_sharpness_cost
from backend.studies.plan import SHARPNESS_BUDGET
from db.submit import check_study, plan_size, planned_shapes, resolve_lab_networks, submit_study
from ui import access, network_file, network_preview, presets, preview, seeds, store
from ui.probes import probes_text, switches
from ui.state import PageState, ints

state = PageState("new")
st.title("New study")

preset_name = st.selectbox("Preset", list(PRESETS), format_func=lambda name: f"{name}: {PRESETS[name].asks}",
                           key=state.bind("preset", presets.DEFAULT, valid=PRESETS.__contains__))
preset = PRESETS[preset_name].spec_dict()
study_kind = STUDY_KINDS[PRESETS[preset_name].study]
st.caption(study_kind.description)
probes_line = st.empty()  # which probes the spec turns on, once the Probes boxes are read
if PRESETS[preset_name].figure:
    st.markdown(f"**What answers it.** {PRESETS[preset_name].figure}")
state.report()
slots: dict[str, st.delta_generator.DeltaGenerator] = {}

uploaded = st.file_uploader("Or import a spec (JSON or YAML)", type=["json", "yaml", "yml"], key="new.import")
imported = None
if uploaded is not None:
    try:
        imported = yaml.safe_load(uploaded.getvalue().decode())
        if not isinstance(imported, dict):
            raise ValueError("the file does not hold a mapping")
        st.info(f"Using the imported spec from {uploaded.name}; the form below is ignored.")
    except (ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
        st.error(f"{uploaded.name} is not a readable spec: {exc}")
        imported = None

data_col, model_col, grid_col = st.columns(3)
with data_col:
    st.subheader("Data")
    preset_data = preset[study_kind.data_field]  # the study's data (the source of a cross-data-set study)
    weights = lab_job = None  # the pretrained network's form, or a lab network's job, when the study transfers from one
    if "pretrained" in study_kind.spec.model_fields:
        mode = st.radio("Source network", [network_file.PRETRAIN, network_file.PRETRAINED, network_file.LAB],
                        horizontal=True, key="new.source_mode")
        if mode == network_file.PRETRAINED:
            weights = network_file.weights_form(slots)
            network_box = st.container()  # its preview, once the Network column is read
        elif mode == network_file.LAB:
            lab_job = st.text_input("Job id or spec hash (8+ characters) of a network this lab trained (from scratch "
                                    "or fine-tuned: a baseA, an AnB+): its architecture and data come with it", "",
                                    key="new.lab_job").strip()
            slots["pretrained.job"] = st.empty()
    data = source = kind = None  # with a pretrained network, the task it was trained on is optional
    if lab_job is None and (weights is None or weights.trained_on_source):
        source = preset_data["source"]
        kinds = ["digits", "synthetic", "torchvision", "folder"]
        kind = st.radio("Source", kinds, index=kinds.index(source["kind"]), horizontal=True, key="new.kind")
        if kind == "torchvision":
            name = st.selectbox("Data set", TORCHVISION_SETS,
                                index=TORCHVISION_SETS.index(source.get("name", "MNIST")), key="new.tv_name")
            root = st.text_input("Root folder (torchvision layout)", source.get("root", "../shared/datasets"),
                                 key="new.tv_root")
            source = {"kind": kind, "name": name, "root": root}
        elif kind == "folder":
            source = {"kind": kind, "root": st.text_input("ImageFolder root (train/ and test/, or one tree)",
                                                          source.get("root", ""), key="new.folder_root")}
        elif kind == "synthetic":
            source = {"kind": kind, "n_classes": st.number_input("Classes", 4, 1000, 10, key="new.syn_classes"),
                      "gap": st.slider("Domain style (gap)", 0.0, 1.0, 0.0, 0.05, key="new.syn_gap")}
        else:
            source = {"kind": "digits"}
        slots["data.source"] = st.empty()
        per_class = st.number_input("Training images per class (0 = all)", 0, 100_000,
                                    preset_data.get("per_class") or 0, key="new.per_class")
        # The form edits these fields; whatever else the preset's data says (explicit classes, other shifts) stays.
        preset_classes, preset_shifts = preset_data.get("classes", {}), preset_data.get("shifts", [])
        edited = {"block_shuffle": "block", "noise": "std"}
        shift_value = {s["kind"]: s[edited[s["kind"]]] for s in preset_shifts if s["kind"] in edited}
        fraction = st.slider("Share of classes kept (diversity)", 0.1, 1.0,
                             float(preset_classes.get("fraction") or 1.0), 0.05, key="new.fraction")
        size = st.number_input("Resize to (pixels, 0 = native)", 0, 512, preset_data.get("size") or 0,
                               key="new.size")
        block = st.number_input("Block shuffle, block size (0 = off)", 0, 512, shift_value.get("block_shuffle", 0),
                                key="new.block")
        noise = st.number_input("Gaussian noise std (0 = off)", 0.0, 1.0, float(shift_value.get("noise", 0.0)),
                                0.05, key="new.noise")
        slots["data"] = st.empty()
        data = {**preset_data, "source": source, "per_class": per_class or None, "size": size or None,
                "classes": {**{k: v for k, v in preset_classes.items() if k != "fraction"},
                            **({"fraction": fraction} if fraction < 1 else {})},
                "shifts": [s for s in preset_shifts if s["kind"] not in edited]
                + ([{"kind": "block_shuffle", "block": block}] if block else [])
                + ([{"kind": "noise", "std": noise}] if noise else [])}
        preview.data_preview(data, st.session_state.get("new.seeds", ",".join(map(str, preset.get("seeds", [])))))
    # Lists of tasks or sources, edited as YAML: field -> (heading, what an entry is).
    lists = {"targets": ("Targets", "One entry per target task: a name, its data (as above) and optionally a "
                                    "strength for the x axis (YAML)"),
             "candidates": ("Candidates", "One entry per candidate: a name and either source (a task to pretrain "
                                          "on, as above) or pretrained (a weights file: path, format, model, input) "
                                          "(YAML)")}
    listed_text = {}
    for field, (heading, label) in lists.items():
        if field in study_kind.spec.model_fields:
            st.subheader(heading)
            listed_text[field] = st.text_area(label, yaml.safe_dump(preset.get(field, []), sort_keys=False),
                                              height=240, key=f"new.{field}.{preset_name}")
            slots[field] = st.empty()

with model_col:
    st.subheader("Network and training")
    model = preset["model"]
    archs = ["convnet", "mlp", "resnet18", "resnet50", "vit"]
    arch = st.selectbox("Network", archs, index=archs.index(model["arch"]), key="new.arch")
    model = {"arch": arch}
    if arch == "convnet":
        model["channels"] = st.text_input("Conv widths", ",".join(map(str, preset["model"].get("channels", [32, 64]))),
                                          key="new.channels")
        model["norm"] = st.selectbox("Normalisation", ["batch", "group", "none"], key="new.norm")
    if arch in ("convnet", "mlp"):
        model["hidden"] = st.text_input("Hidden fc widths", ",".join(map(str, preset["model"].get("hidden", [64]))),
                                        key="new.hidden")
    if arch == "vit":  # timm's names: vit_tiny_patch16 is patch 16, width 192, 12 blocks, 3 heads
        given = {**ViTSpec().model_dump(), **(preset["model"] if preset["model"]["arch"] == "vit" else {})}
        for column, (field, label) in zip(st.columns(4), (("patch", "Patch"), ("dim", "Width"), ("depth", "Blocks"),
                                                          ("heads", "Heads"))):
            model[field] = column.number_input(label, 1, 4096, int(given[field]), key=f"new.vit.{field}")
    if arch.startswith("resnet"):  # off for a network trained on ImageNet-sized images (torchvision, timm)
        imagenet = weights is not None and weights.format in network_file.TORCH_FORMATS
        model["small_input"] = st.checkbox("Small-input stem (3x3, stride 1, no max-pool: images under 64 px)",
                                           not imagenet and preset["model"].get("small_input", True),
                                           key=network_preview.small_input_key(imagenet))
    slots["model"] = st.empty()
    train = preset["train"]
    train = {**train,
             "epochs": st.number_input("Epochs", 1, 10_000, train.get("epochs", 10), key="new.epochs"),
             "batch_size": st.number_input("Batch size", 1, 65_536, train.get("batch_size", 128), key="new.batch"),
             "lr": st.number_input("Learning rate", 1e-6, 10.0, float(train.get("lr", 0.05)), format="%.4f",
                                   key="new.lr"),
             "optimizer": st.selectbox("Optimiser", ["sgd", "adamw"], key="new.optimizer")}
    slots["train"] = st.empty()

with grid_col:
    st.subheader("Grid")
    grid = {}
    for field in (f for f in study_kind.grid if f.path != "seeds"):  # the seeds have a section of their own
        value, key = preset.get(field.path), f"new.{field.path}"
        if field.choices:
            grid[field.path] = st.multiselect(field.label, field.choices, default=list(value or field.choices), key=key)
        else:
            grid[field.path] = st.text_input(field.label, field.text(value), key=key)
        slots[field.path] = st.empty()
    probes = {}
    if "probes" in study_kind.spec.model_fields:
        st.subheader("Probes")
        preset_probes = preset.get("probes", {})
        probe_spec = study_kind.spec.model_fields["probes"].annotation  # StudyProbes, CrossProbes, ...
        defaults = probe_spec.model_validate(preset_probes)
        # A probe is a switch (bool) or optional settings; other fields (treatments, images) keep the preset's.
        for name, default_on in switches(defaults).items():
            on = st.checkbox(f"{name.replace('_', ' ').capitalize()}: {probe_spec.model_fields[name].description}",
                             default_on, key=f"new.probe_{study_kind.spec.__name__}.{name}")
            if isinstance(getattr(defaults, name), bool):
                probes[name] = on
            else:
                probes[name] = (preset_probes.get(name) or {}) if on else None
        slots["probes"] = st.empty()

seeds_field = next(f for f in study_kind.grid if f.path == "seeds")
sequential = "precision" in study_kind.spec.model_fields  # whether the kind can add seeds until precise
if sequential:
    grid["seeds"], precision = seeds.seeds_section(PRESETS[preset_name].study, seeds_field, preset, slots)
else:
    st.subheader("Seeds")
    grid["seeds"], precision = st.text_input(seeds_field.label, seeds_field.text(preset.get("seeds")),
                                             key="new.seeds"), None
    slots["seeds"] = st.empty()


def numbers(text: str, field: str) -> list[int]:
    try:
        return ints(text)
    except ValueError:
        raise SpecError(f"expected comma-separated whole numbers, got {text!r}", field=field) from None


def model_spec() -> dict:
    """The Network column's model as a spec dict."""
    return {k: numbers(v, f"model.{k}") if k in ("channels", "hidden") else v for k, v in model.items()}


def listed_fields() -> dict:
    """The Targets and Candidates boxes as spec fields (those of the study's kind)."""
    fields = {}
    for field, text in listed_text.items():
        try:
            listed = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"the {field} are not readable YAML: {exc}", field=field) from None
        if not isinstance(listed, list):
            raise SpecError(f"the {field} are a list: one '- name: ...' entry each", field=field)
        fields[field] = listed
    return fields


if weights is not None:
    with network_box:
        try:
            network_preview.network_preview(weights, model_spec())
        except SpecError:
            pass  # the Network column's own error, shown under it


def build():
    if imported is not None:
        study = parse_study(imported)
        check_study(study)
        return study
    if source is not None and source.get("root"):
        check_folder(source["root"], "data.source.root")  # before anything lists it
    if kind == "folder":
        preview.folder_counts(source["root"])  # refuses an empty path, a missing or malformed folder
    elif source is not None and source.get("root") is not None and not Path(source["root"]).expanduser().is_dir():
        raise SpecError(f"{source['root']!r} is not a readable folder", field="data.source.root")
    spec = {**preset, **{f.path: grid[f.path] if f.choices else f.parse(grid[f.path]) for f in study_kind.grid},
            study_kind.data_field: data, **listed_fields(), "model": model_spec(), "train": train,
            **({"precision": precision} if sequential else {})}
    if weights is not None:  # pinned: the spec shown and exported records the file's sha256
        spec["pretrained"] = network_preview.pinned_network(weights, spec["model"]).model_dump(mode="json")
    if lab_job is not None:  # the network's own spec, from the store: its architecture, its data
        del spec["model"]
        spec = resolve_lab_networks({**spec, "pretrained": {"kind": "lab", "job": lab_job}}, store.queue())
    if probes:
        spec["probes"] = {**preset.get("probes", {}), **probes}
        if spec["probes"].get("sharpness") == {}:  # turned on here: settings that fit the budget, not the defaults
            spec["probes"]["sharpness"] = fitting_sharpness(spec) or dict(SHARPNESS_LADDER[-1])
    study = parse_study(spec)
    check_preset_folder(preset_name, study)  # a preset's class groups against this folder's classes, by name
    check_study(study)  # the targets' folders too, class ids, and whether each network fits in a worker
    return study


st.divider()
general = st.empty()
try:
    study = build()
except SpecError as exc:
    field = exc.field or ""
    slot = next((slots[p] for p in sorted(slots, key=len, reverse=True) if field.startswith(p)), general)
    slot.error(str(exc))
    if slot is not general:
        general.error(f"Not queued: fix **{field}** above.")
    study = None

if getattr(study, "probes", None) is not None:
    probes_line.caption(probes_text(study.probes))
elif probes:  # an invalid form: the probes as its boxes say, if they validate
    try:
        probes_line.caption(probes_text(probe_spec.model_validate({**preset_probes, **probes})))
    except ValueError:
        pass

if study is not None:
    jobs = plan_size(study)
    # Past runs of the same shape (the same job but for its seed or half) time the planned jobs.
    shapes = planned_shapes(study)
    seconds = store.studies().mean_seconds_by_shape(shapes)
    timed = [seconds[shape] for shape in shapes if shape in seconds]
    units = ", ".join(unit_names(study.model)[:-1])
    estimate = (f"about {sum(timed) / 60:.1f} min on one worker (from past runs of {len(timed)} of {len(shapes)} "
                "jobs' shapes)" if timed else "no past run of these jobs' shapes to estimate from")
    what = "; ".join(f"{n} × {JOB_KINDS[k].description}" for k, n in jobs.items())
    st.markdown(f"**{sum(jobs.values())} jobs** ({what}; transfer units {units}); {estimate}.")
    cost = study_sharpness_cost(study)
    if cost is not None:
        how = ("estimated from the spec: Hessian-vector products × probe images against epochs × training images; "
               f"the budget is {SHARPNESS_BUDGET:g}x")
        said = cost.text()
        (st.warning if cost.over_budget else st.caption)(f"{said[0].upper()}{said[1:]} ({how}).")
    if sequential:
        seeds.seed_cost(study, pilot=imported is None)
    # Edited away from its preset, a study is custom: the preset's name would misdescribe it.
    as_preset = (preset_name if canonical_json(study) == canonical_json(parse_study(PRESETS[preset_name].spec_dict()))
                 else None)
    st.caption(f"Recorded as the preset {preset_name}." if as_preset else
               f"Recorded as a custom study: its spec differs from the preset {preset_name}'s.")
    text = json.dumps(study.model_dump(mode="json"), indent=2)
    left, mid, right = st.columns([2, 1, 1])
    name = left.text_input("Study name", preset_name, key="new.name")
    mid.download_button("Export JSON", text, file_name=f"{name}.json", mime="application/json")
    right.download_button("Export YAML", yaml.safe_dump(json.loads(text), sort_keys=False), file_name=f"{name}.yaml")
    if st.button("Queue study", type="primary", key="new.submit", disabled=access.locked(),
                 help=access.hint("queue studies")):
        study_id = submit_study(store.queue(), study, name=name, preset=as_preset)
        st.success(f"Queued study #{study_id}: {sum(jobs.values())} jobs.")
        # A page link, not a markdown one: it opens in this tab and keeps the session.
        st.page_link("app_pages/jobs.py", label=f"Watch study #{study_id} on the Jobs page",
                     query_params={"study": study_id})
    with st.expander("The validated spec"):
        st.code(text, language="json")

state.sync()
