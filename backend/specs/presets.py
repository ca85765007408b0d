"""Presets: ready-made studies from the literature, each with the question it asks and the figure
that answers it; each runs offline on a laptop CPU at its quick size, or points at real data sets.
None sets its sharpness: the cost rule does (backend.specs.preset.Preset)."""

from __future__ import annotations

from typing import Any

from backend.specs.base import SpecError
from backend.specs.data import FolderSource
from backend.specs.folders import image_folder
from backend.specs.preset import Preset


_DIGITS_NET = {"arch": "convnet", "channels": [32, 64, 64], "hidden": [64, 64]}
_MNIST_NET = {"arch": "convnet", "channels": [32, 64, 64], "hidden": [128, 64]}
_DATASETS = "../shared/datasets"
_MNIST = {"kind": "torchvision", "name": "MNIST", "root": _DATASETS}
_CIFAR = {"kind": "folder", "root": f"{_DATASETS}/cifar10-5k"}
_SYNTHETIC = {"kind": "synthetic", "n_classes": 10, "train_per_class": 60, "test_per_class": 30, "size": 16}


_DIGITS_A = {"source": {"kind": "digits"}, "classes": {"include": [0, 1, 2, 3, 4]}}
_DIGITS_B = {"source": {"kind": "digits"}, "classes": {"include": [5, 6, 7, 8, 9]}}
_NOISE = {"kind": "noise", "std": 0.3}


def _blocks(block: int, size: int = 8) -> list[dict]:
    """A block shuffle of size x size images (8: the digits); blocks of the whole image are the plain image."""
    return [{"kind": "block_shuffle", "block": block}] if block < size else []


def _mnist(classes: list[int], per_class: int) -> dict:
    return {"source": _MNIST, "classes": {"include": classes}, "per_class": per_class}


def _digits_shifted(shift: dict) -> dict:
    return {"source": {"kind": "digits"}, "shifts": [shift]}


PRESETS: dict[str, Preset] = {
    "yosinski-digits": Preset(
        "yosinski", "Which layers of a digits net transfer between two halves of the classes? (offline)",
        {"study": "yosinski", "data": {"source": {"kind": "digits"}}, "model": _DIGITS_NET,
         "train": {"epochs": 12, "batch_size": 64, "lr": 0.05}, "seeds": [0, 1, 2]},
        quick={"seeds": [0]},
        figure=(
            'Layer transfer answers it: accuracy against n per treatment, baseB dashed. Yosinski et al. saw '
            'AnB fall as n grows (specificity of the upper layers), BnB dip in the middle (fragile co-'
            'adaptation), AnB+ above baseB everywhere and the random control collapse; the Similarity page '
            "shows how far each transfer's representations moved from baseB's.")),
    "yosinski-mnist": Preset(
        "yosinski", "The same layer sweep on MNIST halves, 500 images per class (needs MNIST on disk)",
        {"study": "yosinski",
         "data": {"source": {"kind": "torchvision", "name": "MNIST", "root": "../shared/datasets"}, "per_class": 500},
         "model": {"arch": "convnet", "channels": [32, 64, 64], "hidden": [128, 64]},
         "train": {"epochs": 6, "batch_size": 128, "lr": 0.05}, "seeds": [0, 1]},
        quick={"seeds": [0], "data.per_class": 100, "train.epochs": 3},
        figure=(
            'Layer transfer, as for the digits preset, on real handwriting (500 images per class); turn on '
            'one dot per network to see the seeds.')),
    # ---- cross-data-set studies: named after the axis they vary and the data they use
    "gap-digits-shifts": Preset(
        "cross_dataset", "How does transfer fall as the target drifts from the source? Digits under growing shifts "
                         "(offline)",
        {"study": "cross_dataset", "source": {"source": {"kind": "digits"}},
         "targets": [{"name": "same", "data": {"source": {"kind": "digits"}}, "strength": 0.0},
                     {"name": "noise 0.2", "data": _digits_shifted({"kind": "noise", "std": 0.2}), "strength": 0.2},
                     {"name": "noise 0.4", "data": _digits_shifted({"kind": "noise", "std": 0.4}), "strength": 0.4},
                     {"name": "blur 1", "data": _digits_shifted({"kind": "blur", "sigma": 1.0}), "strength": 1.0},
                     {"name": "blocks 2", "data": _digits_shifted({"kind": "block_shuffle", "block": 2})},
                     {"name": "inverted", "data": _digits_shifted({"kind": "inversion"})}],
         "model": _DIGITS_NET, "train": {"epochs": 12, "batch_size": 64, "lr": 0.05}, "seeds": [0, 1, 2],
         "amounts": [20, None], "n": [1, 3, 5]},
        quick={"seeds": [0], "amounts": [None], "n": [3], "train.epochs": 8},
        figure=(
            'Explorer with x = measured domain gap (MMD or A-distance) or shift strength and y = gain over '
            'RI-T, coloured by treatment: does frozen transfer (AnB) fall as the target drifts while fine-'
            "tuning (AnB+) holds? y = Chen's T asks whether fine-tuning moves the layers further on distant "
            'targets.')),
    "gap-synthetic": Preset(
        "cross_dataset", "Transfer against the synthetic style dial: the same classes at gap 0, 0.25 ... 1 (offline)",
        {"study": "cross_dataset", "source": {"source": _SYNTHETIC},
         "targets": [{"name": f"gap {g}", "data": {"source": {**_SYNTHETIC, "gap": g}}, "strength": g}
                     for g in (0.0, 0.25, 0.5, 0.75, 1.0)],
         "model": {"arch": "convnet", "channels": [16, 32], "hidden": [64]},
         "train": {"epochs": 10, "batch_size": 64, "lr": 0.05}, "seeds": [0, 1, 2], "amounts": [10, None]},
        quick={"seeds": [0], "amounts": [None], "n": [1, 2], "train.epochs": 6},
        figure=(
            'Explorer with x = shift strength (the synthetic gap dial) or measured gap, y = gain over RI-T: '
            'the cleanest gap curve, since the classes stay the same and only the style changes.')),
    "amount-digits-halves": Preset(
        "cross_dataset", "Does pretraining on digits 0-4 help digits 5-9 more when there is less target data? "
                         "(offline)",
        {"study": "cross_dataset", "source": {"source": {"kind": "digits"}, "classes": {"include": [0, 1, 2, 3, 4]}},
         "targets": [{"name": "digits 5-9", "data": {"source": {"kind": "digits"},
                                                      "classes": {"include": [5, 6, 7, 8, 9]}}}],
         "model": _DIGITS_NET, "train": {"epochs": 12, "batch_size": 32, "lr": 0.05}, "seeds": [0, 1, 2],
         "amounts": [3, 10, 30, None]},
        quick={"seeds": [0], "amounts": [5, None], "n": [3], "train.epochs": 8},
        figure=(
            "Explorer with x = data amount (log axis) and y = gain over RI-T or Chen's T, with a fitted line:"
            " Chen et al. report T falling with the target's data amount (log T about -0.6 log N).")),
    "amount-mnist-usps": Preset(
        "cross_dataset", "MNIST -> USPS: the gain of pretraining against the training images per class "
                         "(needs ../shared/datasets)",
        {"study": "cross_dataset", "source": {"source": _MNIST, "per_class": 1000},
         "targets": [{"name": "USPS", "data": {"source": {"kind": "folder", "root": f"{_DATASETS}/usps"}}}],
         "input": {"size": 28, "channels": 1}, "model": _MNIST_NET,
         "train": {"epochs": 6, "batch_size": 128, "lr": 0.05}, "seeds": [0, 1], "amounts": [10, 30, 100, 300, None],
         "n": [1, 3, 5]},
        quick={"seeds": [0], "amounts": [10, 100], "n": [3], "source.per_class": 300, "train.epochs": 3},
        figure=(
            'Explorer with x = data amount (log axis), y = gain over RI-T: pretraining on MNIST should help '
            "most with few USPS images; y = Chen's T with a fitted line gives the log-log slope to set beside"
            " Chen et al.'s -0.6.")),
    "gap-mnist-targets": Preset(
        "cross_dataset", "MNIST -> USPS, Fashion-MNIST, and MNIST under noise, blur and block shuffle: gain "
                         "against measured gap (needs ../shared/datasets)",
        {"study": "cross_dataset", "source": {"source": _MNIST, "per_class": 1000},
         "targets": [{"name": "USPS", "data": {"source": {"kind": "folder", "root": f"{_DATASETS}/usps"}}},
                     {"name": "Fashion-MNIST", "data": {"source": {"kind": "folder",
                                                                   "root": f"{_DATASETS}/fashion-mnist-10k"}}},
                     {"name": "MNIST noise 0.3", "data": {"source": _MNIST, "shifts": [{"kind": "noise", "std": 0.3}]},
                      "strength": 0.3},
                     {"name": "MNIST blur 1.5", "data": {"source": _MNIST, "shifts": [{"kind": "blur", "sigma": 1.5}]},
                      "strength": 1.5},
                     {"name": "MNIST blocks 7", "data": {"source": _MNIST,
                                                         "shifts": [{"kind": "block_shuffle", "block": 7}]}}],
         "input": {"size": 28, "channels": 1}, "model": _MNIST_NET,
         "train": {"epochs": 5, "batch_size": 128, "lr": 0.05}, "seeds": [0, 1], "amounts": [100], "n": [1, 3, 5]},
        quick={"seeds": [0], "amounts": [30], "n": [3], "source.per_class": 300, "train.epochs": 3},
        figure=(
            'Explorer with x = measured gap (MMD or A-distance), y = gain over RI-T or T, colour = treatment:'
            ' do nearer targets gain more? The sweep also ranks LogME, LEEP, NCE and H-score against the '
            'measured gains.')),
    "amount-cifar10-halves": Preset(
        "cross_dataset", "CIFAR-10 animals-and-vehicles halves: classes 0-4 -> 5-9 against data amount "
                         "(needs ../shared/datasets)",
        {"study": "cross_dataset",
         "source": {"source": _CIFAR, "classes": {"include": [0, 1, 2, 3, 4]}},
         "targets": [{"name": "classes 5-9", "data": {"source": _CIFAR, "classes": {"include": [5, 6, 7, 8, 9]}}}],
         "model": {"arch": "convnet", "channels": [32, 64, 128], "hidden": [128]},
         "train": {"epochs": 15, "batch_size": 128, "lr": 0.05, "augment": "flip_crop"}, "seeds": [0, 1],
         "amounts": [20, 100, None], "n": [1, 2, 3, 4]},
        quick={"seeds": [0], "amounts": [50], "n": [2], "train.epochs": 4},
        figure=(
            'Explorer with x = data amount (log axis), y = gain over RI-T, and Layer transfer per amount: '
            'natural images between two halves of the classes, where transfer from the other half is weakest.')),
    # ---- what is transferred (Neyshabur et al. 2020; Liu et al. 2019; Yosinski's dissimilar split)
    "neyshabur-block-shuffle": Preset(
        "cross_dataset", "Does pretraining still help when the target's image blocks are shuffled? Digits 0-4 -> "
                         "5-9 at every block size (offline)",
        {"study": "cross_dataset", "source": _DIGITS_A,
         "targets": [{"name": f"blocks {b}" if b < 8 else "plain", "data": {**_DIGITS_B, "shifts": _blocks(b)},
                      "strength": b} for b in (1, 2, 4, 8)],
         "model": _DIGITS_NET, "train": {"epochs": 16, "batch_size": 32, "lr": 0.05}, "seeds": [0, 1, 2],
         "treatments": ["AnB+"], "n": [5], "probes": {"scores": None}},
        quick={"seeds": [0], "train.epochs": 8},
        figure=(
            'Explorer with x = shift strength (here the block size; 8 = the plain image), colour = treatment: '
            'y = accuracy shows P-T (AnB+) against RI-T (baseB) as the blocks shrink; y = epochs to 90% of the '
            'best or the area under the accuracy curve shows the speed. Neyshabur et al.: small blocks erase '
            "most of P-T's accuracy gain but not its speed gain.")),
    "neyshabur-basins": Preset(
        "basins", "Do fine-tuned runs share one basin while runs from scratch do not? Digits 0-4 -> 5-9 (offline)",
        {"study": "basins", "source": _DIGITS_A, "targets": [{"name": "digits 5-9", "data": _DIGITS_B}],
         "model": _DIGITS_NET, "train": {"epochs": 16, "batch_size": 32, "lr": 0.05}, "seeds": [0, 1], "runs": 2,
         "probes": {"plane": {"resolution": 11, "span": 1.0}}},
        quick={"seeds": [0], "train.epochs": 8, "probes.plane.resolution": 7, "probes.criticality.samples": 2},
        figure=(
            'Landscape: the interpolation curves of P-T pairs against RI-T pairs with the barrier marked, the '
            'criticality heatmaps and the loss plane; the study table lists CKA, parameter distance and '
            'mistake overlap per pair. Neyshabur et al.: no barrier between P-T runs, a barrier between RI-T '
            'runs; P-T runs closer and more similar; their modules less critical.')),
    "neyshabur-pretraining-stage": Preset(
        "cross_dataset", "Does fine-tuning from an early pretraining checkpoint do as well as from the last? "
                         "Digits 0-4 -> 5-9 (offline)",
        {"study": "cross_dataset", "source": _DIGITS_A, "targets": [{"name": "digits 5-9", "data": _DIGITS_B}],
         "model": _DIGITS_NET, "train": {"epochs": 12, "batch_size": 32, "lr": 0.05}, "seeds": [0, 1, 2],
         "source_epochs": [1, 2, 4, 8, 12], "amounts": [20, None], "treatments": ["AnB+"], "n": [5],
         "probes": {"gap": None, "scores": None}},
        quick={"seeds": [0], "train.epochs": 8, "source_epochs": [1, 4, 8], "amounts": [None]},
        figure=(
            'Explorer with x = pretraining epoch fine-tuned from, y = accuracy or epochs to 90% of the best, '
            'colour = treatment (baseB, RI-T, is the reference). Neyshabur et al.: checkpoints from the end of '
            "an early plateau do about as well as the final one; Liu et al.: transferability first rises, then "
            'falls.')),
    "liu-flatness": Preset(
        "cross_dataset", "Are fine-tuned minima flatter, and training smoother, than from scratch? Digits 0-4 -> "
                         "targets of growing input and label dissimilarity (offline)",
        {"study": "cross_dataset", "source": _DIGITS_A,
         "targets": [{"name": "same classes", "data": _DIGITS_A, "strength": 0},
                     {"name": "same classes, noise", "data": {**_DIGITS_A, "shifts": [_NOISE]}, "strength": 1},
                     {"name": "other classes", "data": _DIGITS_B, "strength": 2},
                     {"name": "other classes, noise", "data": {**_DIGITS_B, "shifts": [_NOISE]}, "strength": 3}],
         "model": _DIGITS_NET, "train": {"epochs": 12, "batch_size": 32, "lr": 0.05}, "seeds": [0, 1, 2],
         "treatments": ["AnB+"], "n": [5], "probes": {"scores": None, "smoothness": {"points": 9}}},
        quick={"seeds": [0], "train.epochs": 8, "probes.smoothness.points": 5},
        figure=(
            'Explorer with x = measured gap or the target (strength: 0 same task, 1 noisy inputs, 2 other '
            'labels, 3 both), y = Hessian top eigenvalue, trace, or weight deviation per layer, colour = '
            'treatment; Landscape for the loss spread, gradient change and gradient singular value along '
            'training. Liu et al.: P-T minima are flatter, training from them smoother, and the weights move '
            'less on similar targets.')),
    "yosinski-digits-dissimilar": Preset(
        "yosinski", "Does the layer sweep fall faster between dissimilar classes? Digits with loops -> digits "
                    "without (offline)",
        {"study": "yosinski", "data": {"source": {"kind": "digits"}}, "groups": [[0, 3, 6, 8, 9], [1, 2, 4, 5, 7]],
         "model": _DIGITS_NET, "train": {"epochs": 12, "batch_size": 64, "lr": 0.05}, "seeds": [0, 1, 2]},
        quick={"seeds": [0]},
        figure=(
            'Compare studies with yosinski-digits (the similar, random split): the AnB curves on one chart. '
            'Yosinski et al. found AnB falls faster with n when A and B are dissimilar (natural vs man-made '
            'ImageNet classes); here A holds the digits with closed loops (0, 3, 6, 8, 9), B the rest.')),
    # ---- the same questions at full size on the real data sets in ../shared/datasets
    "neyshabur-block-shuffle-mnist": Preset(
        "cross_dataset", "Block shuffle on real digits: MNIST 0-4 -> 5-9 at every block size dividing 28 "
                         "(needs ../shared/datasets)",
        {"study": "cross_dataset", "source": _mnist([0, 1, 2, 3, 4], 1000),
         "targets": [{"name": f"blocks {b}" if b < 28 else "plain",
                      "data": {**_mnist([5, 6, 7, 8, 9], 1000), "shifts": _blocks(b, 28)}, "strength": b}
                     for b in (1, 2, 4, 7, 14, 28)],
         "model": _MNIST_NET, "train": {"epochs": 6, "batch_size": 128, "lr": 0.05}, "seeds": [0, 1],
         "treatments": ["AnB+"], "n": [5], "probes": {"scores": None}},
        quick={"seeds": [0], "source.per_class": 200, "train.epochs": 3},
        figure="As for neyshabur-block-shuffle, on MNIST: block sizes 1, 2, 4, 7, 14 and the plain image (28)."),
    "neyshabur-basins-mnist-usps": Preset(
        "basins", "Basins on real digits: MNIST -> USPS, two P-T and two RI-T runs (needs ../shared/datasets)",
        {"study": "basins", "source": {"source": _MNIST, "per_class": 1000},
         "targets": [{"name": "USPS", "data": {"source": {"kind": "folder", "root": f"{_DATASETS}/usps"}}}],
         "input": {"size": 28, "channels": 1}, "model": _MNIST_NET,
         "train": {"epochs": 6, "batch_size": 128, "lr": 0.05}, "seeds": [0, 1], "runs": 2,
         "probes": {"images": 1000, "plane": {"resolution": 11}}},
        quick={"seeds": [0], "source.per_class": 200, "train.epochs": 3, "probes.plane": None},
        figure="As for neyshabur-basins, from MNIST to USPS."),
    "neyshabur-pretraining-stage-mnist": Preset(
        "cross_dataset", "Pretraining checkpoints on real digits: MNIST 0-4 -> 5-9, 100 target images per class "
                         "(needs ../shared/datasets)",
        {"study": "cross_dataset", "source": _mnist([0, 1, 2, 3, 4], 1000),
         "targets": [{"name": "MNIST 5-9", "data": _mnist([5, 6, 7, 8, 9], 100)}],
         "model": _MNIST_NET, "train": {"epochs": 8, "batch_size": 128, "lr": 0.05}, "seeds": [0, 1],
         "source_epochs": [1, 2, 4, 8], "treatments": ["AnB+"], "n": [5], "probes": {"gap": None, "scores": None}},
        quick={"seeds": [0], "source.per_class": 200, "source_epochs": [1, 8], "train.epochs": 8},
        figure="As for neyshabur-pretraining-stage, on MNIST."),
    "liu-flatness-mnist": Preset(
        "cross_dataset", "Flatness on real images: MNIST 0-4 -> itself, under noise, MNIST 5-9 and Fashion-MNIST "
                         "(needs ../shared/datasets)",
        {"study": "cross_dataset", "source": _mnist([0, 1, 2, 3, 4], 1000),
         "targets": [{"name": "same classes", "data": _mnist([0, 1, 2, 3, 4], 300), "strength": 0},
                     {"name": "same classes, noise", "data": {**_mnist([0, 1, 2, 3, 4], 300), "shifts": [_NOISE]},
                      "strength": 1},
                     {"name": "other classes", "data": _mnist([5, 6, 7, 8, 9], 300), "strength": 2},
                     {"name": "Fashion-MNIST 0-4", "strength": 3,
                      "data": {"source": {"kind": "folder", "root": f"{_DATASETS}/fashion-mnist-10k"},
                               "classes": {"first": 5}, "per_class": 300}}],
         "model": _MNIST_NET, "train": {"epochs": 6, "batch_size": 128, "lr": 0.05}, "seeds": [0, 1],
         "treatments": ["AnB+"], "n": [5], "probes": {"scores": None, "smoothness": {"points": 7}}},
        quick={"seeds": [0], "source.per_class": 200, "train.epochs": 3, "probes.smoothness.points": 4},
        figure="As for liu-flatness, on MNIST and Fashion-MNIST."),
    "yosinski-mnist-dissimilar": Preset(
        "yosinski", "The layer sweep between dissimilar MNIST digits: with loops -> without (needs MNIST on disk)",
        {"study": "yosinski", "data": {"source": _MNIST, "per_class": 500},
         "groups": [[0, 3, 6, 8, 9], [1, 2, 4, 5, 7]],
         "model": _MNIST_NET, "train": {"epochs": 6, "batch_size": 128, "lr": 0.05}, "seeds": [0, 1]},
        quick={"seeds": [0], "data.per_class": 100, "train.epochs": 3},
        figure="Compare studies with yosinski-mnist (the random split): the AnB curves on one chart."),
}

# ---- room for the effects: tasks whose networks trained from scratch stay well below 100%, so
# the gaps between treatments are larger than the spread between seeds
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_ANIMALS = [2, 3, 4, 5, 6, 7]  # bird cat deer dog frog horse, in CIFAR10_CLASSES' order
_VEHICLES = [0, 1, 8, 9]  # airplane automobile ship truck
# 360 training images of every class (the folder's smallest class holds 366), so a random half and
# the animals or vehicles group see the same images per class.
# Narrow conv blocks (16-32-64, a third of the MNIST net's multiply-adds on 32x32 images) keep a seed's
# 27 networks to minutes on 2 CPU cores; five transfer units, as in the MNIST and digits sweeps.
_CIFAR_NET = {"arch": "convnet", "channels": [16, 32, 64], "hidden": [128, 64]}
_CIFAR_YOSINSKI = {"study": "yosinski", "data": {"source": _CIFAR, "per_class": 360}, "model": _CIFAR_NET,
                   "train": {"epochs": 10, "batch_size": 64, "lr": 0.05}, "seeds": [0, 1, 2]}
# CKA on 256 probe images at the quick size: on 512 its 36 comparisons cost as much as the 27 networks.
_CIFAR_QUICK = {"seeds": [0], "data.per_class": 100, "train.epochs": 6, "probes.similarity.images": 256}

PRESETS.update({
    "yosinski-cifar10": Preset(
        "yosinski", "The layer sweep on natural images: two random halves of CIFAR-10, 360 images per class "
                    "(needs an ImageFolder with train/ and test/, e.g. ../shared/datasets/cifar10-5k; --root DIR)",
        _CIFAR_YOSINSKI, quick=_CIFAR_QUICK,
        figure=(
            'Layer transfer, as for the digits preset, where baseB stays near 65% rather than 99%: room for AnB+ '
            'to rise above baseB and for AnB to fall with n by more than the spread between seeds. Any folder of '
            'at least two classes works: the halves are drawn from its own classes.')),
    "yosinski-cifar10-dissimilar": Preset(
        "yosinski", "Does the layer sweep fall faster between dissimilar classes? CIFAR-10 animals (A: bird, cat, "
                    "deer, dog, frog, horse) -> vehicles (B: airplane, automobile, ship, truck); class ids 2-7 -> "
                    "0, 1, 8, 9 of the sorted CIFAR-10 class folders (--root DIR)",
        {**_CIFAR_YOSINSKI, "groups": [_ANIMALS, _VEHICLES]}, quick=_CIFAR_QUICK, classes=CIFAR10_CLASSES,
        figure=(
            'Compare studies with yosinski-cifar10 (the random split; same network, training and images per '
            "class): the AnB curves on one chart. Yosinski et al.'s natural vs man-made split, in small: AnB "
            'should fall faster with n when the features come from the other kind of thing. B has 4 classes here '
            '(chance 25%) against 5 in a random half (20%), so compare the drops, not the levels.')),
    "yosinski-digits-poor": Preset(
        "yosinski", "The digits layer sweep with 25 training images per class: does transfer help more when the "
                    "target has little data? (offline)",
        {"study": "yosinski", "data": {"source": {"kind": "digits"}, "per_class": 25}, "model": _DIGITS_NET,
         "train": {"epochs": 40, "batch_size": 32, "lr": 0.05}, "seeds": [0, 1, 2, 3, 4]},
        quick={"seeds": [0]},
        figure=(
            "Layer transfer beside yosinski-digits (every image): Yosinski et al.'s reduced-data runs, where "
            "baseB has room below the ceiling and AnB+ should gain most over it. Five seeds, since small halves "
            'make each split a different task.')),
    "yosinski-mnist-poor": Preset(
        "yosinski", "The MNIST layer sweep with 30 training images per class (needs MNIST on disk; --root DIR)",
        {"study": "yosinski", "data": {"source": _MNIST, "per_class": 30, "test_per_class": 300},
         "model": _MNIST_NET, "train": {"epochs": 30, "batch_size": 32, "lr": 0.05}, "seeds": [0, 1, 2]},
        quick={"seeds": [0], "train.epochs": 20},
        figure=(
            'Layer transfer beside yosinski-mnist (500 images per class): with 30, baseB sits below the ceiling, '
            'so AnB+ above baseB and AnB falling with n can show beyond the seeds.')),
    # ---- model selection: which candidate source to fine-tune (You et al. 2021)
    "selection-digits": Preset(
        "model_selection", "Which of five sources should a digits net for 5-9 start from, with 5 or 20 images per "
                           "class? Do LogME, LEEP, NCE and H-score pick it without fine-tuning? (offline)",
        {"study": "model_selection", "target": _DIGITS_B,
         "candidates": [{"name": "digits 0-4", "source": _DIGITS_A},
                        {"name": "digits 0-4 inverted", "source": {**_DIGITS_A, "shifts": [{"kind": "inversion"}]}},
                        {"name": "digits 0-4 blocks 2", "source": {**_DIGITS_A, "shifts": _blocks(2)}},
                        {"name": "synthetic", "source": {"source": {**_SYNTHETIC, "size": 8}}},
                        {"name": "synthetic far", "source": {"source": {**_SYNTHETIC, "size": 8, "gap": 1.0}}}],
         "input": {"size": 8, "channels": 1}, "model": _DIGITS_NET, "pretrain": {"epochs": 12, "batch_size": 64},
         "train": {"epochs": 30, "batch_size": 32}, "seeds": [0, 1, 2, 3, 4], "amounts": [5, 20]},
        quick={"seeds": [0, 1, 2], "amounts": [5], "pretrain.epochs": 6, "train.epochs": 20},
        figure=(
            'Model selection: each candidate\'s score against its fine-tuned accuracy, one dot per candidate. You '
            "et al. report weighted Kendall's tau of 0.5-0.8 for LogME over ImageNet backbones; with five "
            'candidates one swap moves tau by about 0.2, so read it with the accuracies\' intervals.')),
    "selection-usps": Preset(
        "model_selection", "MNIST, Fashion-MNIST or CIFAR-10: which source for USPS digits at 20 images per class? "
                           "(needs ../shared/datasets)",
        {"study": "model_selection", "target": {"source": {"kind": "folder", "root": f"{_DATASETS}/usps"},
                                                "per_class": 20, "test_per_class": 100},
         "candidates": [{"name": "MNIST", "source": {"source": _MNIST, "per_class": 500}},
                        {"name": "Fashion-MNIST", "source": {"source": {
                            "kind": "folder", "root": f"{_DATASETS}/fashion-mnist-10k"}, "per_class": 500}},
                        {"name": "CIFAR-10", "source": {"source": _CIFAR, "per_class": 400}}],
         "input": {"size": 16, "channels": 1}, "model": _MNIST_NET, "pretrain": {"epochs": 6, "batch_size": 128},
         "train": {"epochs": 30, "batch_size": 32}, "seeds": [0, 1, 2, 3, 4], "amounts": [20, 100]},
        quick={"seeds": [0, 1], "amounts": [20], "pretrain.epochs": 3, "train.epochs": 15},
        figure=(
            'Model selection at 20 and 100 USPS images per class: MNIST should win (same labels, other writers), '
            'CIFAR-10 lose. Three candidates make a ranking of three: a top-1 hit means more than tau here.')),
})


def check_preset_folder(name: str, study: Any) -> None:
    """Before a preset's study runs on an ImageFolder: the folder check's own SpecError
    (`data.source.root`) for a missing or malformed folder, and a SpecError naming `groups` when the
    preset's class groups meet a folder whose classes are not the ones they were written for (class
    ids follow the folder's sorted class names), with the groups that folder needs when it holds every
    class by name. Groups the user set themselves are theirs."""
    source = getattr(getattr(study, "data", None), "source", None)
    if not isinstance(source, FolderSource):
        return
    found = image_folder(source.root).classes
    preset = PRESETS.get(name)
    groups = getattr(study, "groups", None)
    if preset is None or not preset.classes or found == preset.classes or groups != preset.spec.get("groups"):
        return
    named = [[preset.classes[i] for i in group] for group in groups]
    missing = [c for group in named for c in group if c not in found]
    fix = (f"it has no class folder {', '.join(missing)}: choose groups of its own, --set groups=[[...],[...]]"
           if missing else f"in this folder they are --set groups={[[found.index(c) for c in g] for g in named]}")
    raise SpecError(f"{name}'s groups {groups} mean A = {', '.join(named[0])} and B = {', '.join(named[1])} in a "
                    f"folder whose classes are {', '.join(preset.classes)}; {source.root!r} has {', '.join(found)}: "
                    f"{fix}", field="groups")
