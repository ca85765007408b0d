"""Command line.

    python -m backend train --data digits --model convnet --epochs 10
    python -m backend presets                             # the ready-made studies
    python -m backend sweep --preset yosinski-digits      # run a study here, print its table
    python -m backend submit --preset yosinski-digits     # queue it for the workers
    python -m backend worker --device cuda:0              # run queued jobs
    python -m backend workers slurm --workers 8           # workers as a Slurm array job (--dry-run prints it)
    python -m backend findings --out docs/findings.md     # what the preset studies found, against the papers
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from backend import settings, slurm
from backend.specs import (
    PRESETS, TORCHVISION_SETS, TREATMENTS, Spec, SpecError, TrainJobSpec, canonical_json, parse, set_field, spec_hash,
)
from backend.specs.presets import check_preset_folder
from backend.specs.roots import check_data_roots
from backend.studies import parse_study

MODELS = ("convnet", "mlp", "resnet18", "resnet50", "vit")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # examples, one a line
    commands = parser.add_subparsers(dest="command", required=True)
    device = {"default": settings.get("device"), "help": "auto, cpu, cuda or cuda:N (default: the device setting)"}
    train = commands.add_parser("train", help="train one network and print its test accuracy per epoch")
    add_job_arguments(train, "a JSON or YAML TrainJobSpec (one network's training) to start from")
    train.add_argument("--device", **device)
    train.add_argument("--save", metavar="PATH", help="write a checkpoint (.safetensors + .json)")
    train.add_argument("--print-spec", action="store_true", help="print the validated spec and stop")
    commands.add_parser("presets", help="list the ready-made studies: name, study kind, what each asks")
    sweep = commands.add_parser("sweep", help="run a study here, in this process, and print its tables")
    submit = commands.add_parser("submit", help="queue a study's jobs for the workers")
    for p in (sweep, submit):
        p.add_argument("--preset", choices=sorted(PRESETS), default="yosinski-digits")
        p.add_argument("--quick", action="store_true", help="the preset's quick size (a few minutes on a laptop CPU)")
        add_job_arguments(p, "a JSON or YAML study spec to start from, of any study kind (as --print-spec prints one)")
        p.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2")
        p.add_argument("--n", help="units transferred, e.g. 1,3,5 (default 1..L)")
        p.add_argument("--treatments", help=f"comma-separated, from {','.join(TREATMENTS)}")
        p.add_argument("--until", metavar="QUANTITY=HALF_WIDTH", help="sequential seeds: after --seeds, add one "
                       "seed at a time until QUANTITY's 95%% interval is at most +/- HALF_WIDTH, e.g. "
                       "anb_plus_gain=1.0 (quantities: python -m backend presets)")
        p.add_argument("--max-seeds", type=int, default=12, help="with --until: the seed budget (default 12)")
        p.add_argument("--print-spec", action="store_true", help="print the validated spec and stop")
    sweep.add_argument("--device", **device)
    sweep.add_argument("--out", metavar="DIR", help="where the CSV and JSON go (default var/results)")
    for p in (sweep, submit):
        p.add_argument("--name", help="the study's name, and the stem of sweep's results files (default: the "
                       "preset's, or the study kind's for --spec)")
    submit.add_argument("--priority", type=_priority, default=0, help="higher runs first")
    worker = commands.add_parser("worker", help="run queued jobs (one worker per GPU)")
    worker.add_argument("--device", **device)
    worker.add_argument("--gpus", metavar="all|0,1", help="one worker process per GPU, each pinned with "
                        "CUDA_VISIBLE_DEVICES, stopped together (replaces --device; no GPU: one CPU worker)")
    worker.add_argument("--once", action="store_true", help="run at most one job, then exit")
    worker.add_argument("--max-jobs", type=int, help="exit after this many jobs")
    worker.add_argument("--idle-exit", type=float, metavar="SECONDS", help="exit after this long with nothing to do")
    worker.add_argument("--lease", type=float, default=30.0, help="seconds a job is held without a heartbeat")
    slurm.add_parser(commands)  # workers slurm: an sbatch array job of workers
    findings = commands.add_parser("findings", help="write a Markdown report of what the store's preset studies "
                                   "measured, beside what their papers reported")
    findings.add_argument("--out", default="docs/findings.md", metavar="PATH", help="the Markdown file written")
    findings.add_argument("--database", metavar="URL", help="the store (default TRANSFERLAB_DATABASE_URL, else "
                          "var/transferlab.db)")
    args = parser.parse_args(argv)
    if args.command == "worker":
        return run_worker(args)
    if args.command == "workers":
        return slurm.run(args)
    if args.command == "findings":
        return run_findings(args)
    if args.command == "presets":
        return list_presets()
    try:
        if args.command == "train":
            spec = spec_from_args(args, TrainJobSpec, {"data": {"source": {"kind": "digits"}}})
        else:
            spec = spec_from_args(args, _study, PRESETS[args.preset].spec_dict(quick=args.quick),
                                  {"seeds": _ints(args.seeds, "--seeds"), "n": _ints(args.n, "--n"),
                                   "treatments": args.treatments and args.treatments.split(","),
                                   "precision": _precision(args.until, args.max_seeds)})
        if args.print_spec:
            print(json.dumps(spec.model_dump(mode="json"), indent=2))
            return 0
        if args.command == "train":
            from db.submit import check_job

            check_job(spec)  # the data roots, class ids and memory that sweep and submit check
            return run_train(spec, args.device, args.save)
        if not args.spec:
            check_data_roots(spec)  # before the preset's folder is listed
            check_preset_folder(args.preset, spec)
        if args.spec and canonical_json(spec) != canonical_json(parse_study(PRESETS[args.preset].spec_dict())):
            args.preset = None  # a spec file is a preset's study only when it is that preset's spec, as on the page
        say_sharpness_cost(spec)
        if args.command == "submit":
            return run_submit(spec, args)
        return run_sweep(spec, args.name or args.preset or spec.study, args.device, args.out)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _study(tree: dict[str, Any]) -> Spec:
    """A study typed at the command line, its lab networks given by job id or hash looked up in the store."""
    from db.submit import resolve_lab_networks

    return parse_study(resolve_lab_networks(tree))


def add_job_arguments(p: argparse.ArgumentParser, spec: str) -> None:
    """The flags train, sweep and submit share; `spec`: --spec's help, what its file holds for this command."""
    p.add_argument("--spec", metavar="FILE", help=spec)
    p.add_argument("--data", help="digits, synthetic, a torchvision name (mnist, cifar10, ...) or a folder")
    p.add_argument("--root", help="folder torchvision reads the data set from; with a folder preset, the ImageFolder")
    p.add_argument("--size", type=int, help="resize images to SIZE x SIZE")
    p.add_argument("--model", choices=MODELS, help="network (default convnet)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--shift", action="append", default=[], metavar="KIND[:k=v,...]",
                   help="target shift, e.g. block_shuffle:block=4 or noise:std=0.1 (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="any spec field, e.g. train.optimizer=adamw or data.classes.half=A")


def spec_from_args(args: argparse.Namespace, validate: type | Callable[[dict], Spec], base: dict[str, Any],
                   extra: dict[str, Any] | None = None):
    """`base` (or --spec's file), then the flags, then --set overrides, validated by `validate` (a spec
    class, or a function of the dict such as `parse_study`)."""
    spec: dict[str, Any] = _read_spec_file(args.spec) if args.spec else base
    if args.data:
        spec.setdefault("data", {})["source"] = data_source(args.data, args.root)
    elif args.root and spec.get("data", {}).get("source", {}).get("kind") in ("torchvision", "folder"):
        spec["data"]["source"]["root"] = args.root
    flags = {"data.size": args.size, "model.arch": args.model, "train.epochs": args.epochs,
             "train.batch_size": args.batch_size, "train.lr": args.lr, "train.seed": args.seed,
             **(extra or {})}
    for path, value in flags.items():
        if value is not None:
            set_field(spec, path, value)
    if args.shift:
        spec.setdefault("data", {})["shifts"] = [parse_shift(s) for s in args.shift]
    for item in args.set:
        path, sep, raw = item.partition("=")
        if not sep:
            raise SpecError(f"expected PATH=VALUE, got {item!r}", field="--set")
        set_field(spec, path.strip(), _value(raw))
    return parse(validate, spec) if isinstance(validate, type) else validate(spec)


def data_source(name: str, root: str | None) -> dict[str, Any]:
    if name in ("digits", "synthetic"):
        return {"kind": name}
    by_lower = {n.lower(): n for n in TORCHVISION_SETS}
    if name.lower() in by_lower:
        if not root:
            raise SpecError(f"{name} needs --root (the folder torchvision reads)", field="--root")
        return {"kind": "torchvision", "name": by_lower[name.lower()], "root": root}
    folder = name.removeprefix("folder:")
    if Path(folder).expanduser().is_dir():
        return {"kind": "folder", "root": folder}
    raise SpecError(f"{name!r} is neither digits, synthetic, a torchvision data set "
                    f"({', '.join(TORCHVISION_SETS)}) nor a folder", field="--data")


def parse_shift(text: str) -> dict[str, Any]:
    kind, _, rest = text.partition(":")
    shift: dict[str, Any] = {"kind": kind}
    for pair in filter(None, rest.split(",")):
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SpecError(f"expected key=value in {text!r}", field="--shift")
        shift[key.strip()] = _value(raw)
    return shift


def run_train(job: TrainJobSpec, device: str, save: str | None) -> int:
    from tqdm import tqdm

    from backend.checkpoints import save_checkpoint
    from backend.runners import checkpoint_meta
    from backend.train import Progress, train_job

    bar: tqdm | None = None

    def report(p: Progress) -> None:
        nonlocal bar
        if p.phase == "train":
            if bar is None:
                bar = tqdm(total=p.steps, desc=f"epoch {p.epoch}/{p.epochs}", leave=False, unit="step")
            bar.set_postfix(loss=f"{p.loss:.3f}")
            bar.update(p.step - bar.n)
        else:
            if bar is not None:
                bar.close()
                bar = None
            print(f"epoch {p.epoch:3d}/{p.epochs}  train loss {p.loss:.4f}  "
                  f"test accuracy {100 * p.accuracy:6.2f}%", flush=True)

    trained = train_job(job, device, progress=report)
    data = trained.data
    print(f"data: {data.n_classes} classes, {len(data.train)} train / {len(data.test)} test images of "
          f"{'x'.join(map(str, data.image_shape))}, fingerprint {data.fingerprint[:12]}")
    result = trained.result
    print(f"final test accuracy {100 * result.final_accuracy:.2f}%, best-10 mean "
          f"{100 * result.best_mean(10):.2f}%, {result.images_seen / result.train_seconds:,.0f} images/s")
    if save:
        path = save_checkpoint(save, trained.model, checkpoint_meta(job, trained))
        print(f"saved {path}")
    return 0


def list_presets() -> int:
    width = max(map(len, PRESETS))
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  {preset.study:<10}  {preset.asks}")
    from backend.specs.seeds import SEED_QUANTITIES

    print("\nQuantities sequential seeds can stop on (--until QUANTITY=HALF_WIDTH):")
    for kind, quantities in SEED_QUANTITIES.items():
        for quantity, label in quantities.items():
            print(f"  {kind:<14} {quantity:<14} {label}")
    return 0


def say_sharpness_cost(study: Spec) -> None:
    """What the study's sharpness adds to its training, as the New study page says; over the budget
    (a spec file's unset probes.sharpness takes the estimator's full defaults), how to bring it down."""
    from backend.studies import study_sharpness_cost
    from backend.studies.plan import SHARPNESS_BUDGET

    cost = study_sharpness_cost(study)
    if cost is not None:
        print(f"note: {cost.text()}" + (f", over the {SHARPNESS_BUDGET:g}x budget presets keep to: fewer "
              "probes.sharpness.images, trace_samples or scopes, density false, or probes.sharpness null (off)"
              if cost.over_budget else ""), file=sys.stderr)


def run_submit(study: Spec, args: argparse.Namespace) -> int:
    from db.queue import Queue
    from db.submit import submit_study

    queue = Queue()
    study_id = submit_study(queue, study, args.name, args.preset, args.priority)
    print(f"study {study_id}: {sum(queue.counts(study_id).values())} jobs queued in {slurm.masked_store()} "
          f"({queue.counts(study_id)})")  # the store's URL with its password masked
    return 0


def run_worker(args: argparse.Namespace) -> int:
    import logging

    from backend.worker import Worker
    from db.queue import Queue

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.gpus:
        from backend import gpus

        try:
            chosen = gpus.choose_gpus(args.gpus, gpus.visible_gpus())
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if chosen:
            print(f"{len(chosen)} workers, one per GPU ({', '.join(chosen)})", flush=True)
            options = {"--lease": args.lease, "--max-jobs": args.max_jobs, "--idle-exit": args.idle_exit}
            options = [str(v) for flag, value in options.items() if value is not None for v in (flag, value)]
            return gpus.supervise(gpus.worker_commands(chosen, options + (["--once"] if args.once else [])))
        print("no GPU is visible here (CUDA is not available): one worker on the CPU", flush=True)
        args.device = "cpu"
    worker = Worker(Queue(), args.device, lease_seconds=args.lease)
    worker.stop_on_signals()
    print(f"worker {worker.worker_id} on {worker.device}", flush=True)
    # Workers are started by the CLI in fleets (a Slurm array, compose replicas, --gpus all): spread their first claims
    ran = worker.serve(once=args.once, max_jobs=args.max_jobs, idle_exit=args.idle_exit, spread_start=True)
    print(f"worker {worker.worker_id}: ran {ran} jobs", flush=True)
    return 0


def run_findings(args: argparse.Namespace) -> int:
    from backend.findings import write_findings
    from db.session import database_url

    path = write_findings(args.out, args.database or database_url())
    print(f"wrote {path}")
    return 0


def run_sweep(study: Spec, name: str, device: str, out: str | None) -> int:
    import time
    from collections import Counter

    from backend.provenance import environment
    from backend.studies import STUDY_KINDS, expand
    from backend.studies.local import JobOutcome, run_local
    from backend.specs.pretrained import pin_files
    from db.submit import check_study

    kind = STUDY_KINDS[study.study]
    study = pin_files(study)
    plan = expand(study)
    check_study(study, plan)  # data roots and memory, as for a queued study
    kinds = ", ".join(f"{n} {k}" for k, n in Counter(job.kind for job in plan).items())
    print(f"{name}: {len(plan)} jobs ({kinds}), device {device}", flush=True)
    started = time.perf_counter()

    def done(i: int, o: JobOutcome) -> None:
        labels = " ".join(f"{k} {v}" for k, v in o.job.labels.items())
        values = "  ".join(f"{k} {v:.4g}" for k, v in list(o.output.scalars.items())[:3])
        print(f"[{i + 1:3d}/{len(plan)}] {labels}: {values}  {o.seconds:5.1f}s", flush=True)

    outcomes = run_local(plan, device, on_done=done)
    if getattr(study, "precision", None) is not None:
        outcomes += _more_seeds(study, outcomes, lambda more: run_local(more, device, on_done=done))
    table, text, checks = kind.summarise(outcomes)
    print(text)
    folder = Path(out) if out else settings.var_dir() / "results"
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    table.to_csv(stem.with_suffix(".csv"), index=False)
    stem.with_suffix(".json").write_text(json.dumps({
        "study": json.loads(canonical_json(study)), "study_hash": spec_hash(study), **environment(),
        "checks": checks,
        "rows": table.to_dict(orient="records"), "seconds": time.perf_counter() - started,
    }, indent=1))
    print(f"{time.perf_counter() - started:.0f} s; wrote {stem}.csv and .json")
    return 0


def _more_seeds(study: Spec, outcomes: list, run: Callable[[list], list]) -> list:
    """Sequential seeds in this process: add one seed at a time while the precision rule asks for it
    (backend.quantities.precision_state, the rule the workers follow); returns the added outcomes."""
    import pandas as pd

    from backend.quantities import OPEN, per_seed, precision_state
    from backend.studies import expand_seed

    rule, spec, added = study.precision, json.loads(canonical_json(study)), []
    while True:
        done = outcomes + added
        seeds = sorted({o.job.labels["seed"] for o in done})
        scores = pd.DataFrame([{**o.job.labels, **o.output.scalars} for o in done])
        state, summary = precision_state(per_seed(rule.quantity, scores, spec), len(seeds), rule.half_width,
                                         rule.max_seeds)
        width = f"±{summary.half_width:.3g}" if summary.seeds > 1 else "no interval yet"
        print(f"seed {len(seeds)} of at most {rule.max_seeds}: {rule.quantity} {summary.text()}; interval {width}, "
              f"asked ±{rule.half_width:g}" + ("" if state == OPEN else f"; done ({state})"), flush=True)
        if state != OPEN:
            return added
        added += run(expand_seed(study, seeds[-1] + 1))


def _read_spec_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SpecError(f"cannot read {path!r}: {exc}", field="--spec") from None
    import yaml

    try:
        loaded = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise SpecError(f"{path!r} is not valid JSON or YAML: {exc}", field="--spec") from None
    if not isinstance(loaded, dict):
        raise SpecError(f"{path!r} must hold a mapping (a spec's fields)", field="--spec")
    return loaded


def _precision(until: str | None, max_seeds: int) -> dict[str, Any] | None:
    if until is None:
        return None
    quantity, _, width = until.partition("=")
    try:
        return {"quantity": quantity.strip(), "half_width": float(width), "max_seeds": max_seeds}
    except ValueError:
        raise SpecError(f"expected QUANTITY=HALF_WIDTH, e.g. anb_plus_gain=1.0, got {until!r}",
                        field="--until") from None


def _ints(text: str | None, flag: str) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise SpecError(f"expected comma-separated integers, got {text!r}", field=flag) from None


def _priority(text: str) -> int:
    """--priority as the queue takes it: a whole number in its range (argparse names the flag)."""
    from db.queue import QueueError, check_priority

    try:
        return check_priority(int(text))
    except (ValueError, QueueError) as exc:
        reason = str(exc) if isinstance(exc, QueueError) else f"priority must be a whole number, got {text!r}"
        raise argparse.ArgumentTypeError(reason) from None


def _value(raw: str) -> Any:
    """JSON when it parses (numbers, booleans, lists), else the plain string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw.strip()
