"""What each paper reported (shared/PAPERS.md), in the words the findings set beside each measurement."""

_Y, _N, _L, _C = "Yosinski et al. 2014", "Neyshabur et al. 2020", "Liu et al. 2019", "Chen et al. 2022"
PAPER = {
    "shape": f"{_Y} (top-1 %, n = 1..7): baseB 62.5; BnB 62.7, 62.4, 62.1, 60.5, 59.4, 61.9, 62.3; "
             "AnB 62.8, 62.4, 61.9, 60.0, 57.8, 58.1, 54.3; AnB+ 63.7, 63.6, 64.3, 64.0, 64.5, 64.6, 64.7; "
             "random at chance from n = 3.",
    "anb_drop": f"{_Y}: AnB falls from 62.8% at n = 1 to 54.3% at n = 7, 8.5 points (the upper layers are specific).",
    "anb_plus": f"{_Y}: AnB+ lies above baseB (62.5%) at every n, by about +1.7 points.",
    "dissimilar": f"{_Y}: between dissimilar halves (natural vs man-made) the AnB drop grows faster.",
    "block_accuracy": f"{_N}: small blocks remove most of P-T's advantage in final accuracy.",
    "block_speed": f"{_N}: with small blocks P-T still trains faster than RI-T.",
    "barrier": f"{_N}: no loss barrier between P-T runs (one basin); a barrier between RI-T runs.",
    "cka": f"{_N}: P-T pairs are far more similar in features (CKA) than RI-T pairs.",
    "l2": f"{_N}: P-T models are close to each other in parameter (l2) distance.",
    "mistakes": f"{_N}: P-T runs share more of their mistakes than RI-T runs (not in PAPERS.md's summary).",
    "criticality": f"{_N} (Chatterji et al.'s criticality): P-T models are more robust to rewinding a module; "
                   "deeper modules are more critical.",
    "stage": f"{_N}: an early checkpoint at the end of a plateau does about as well as the final one; {_L}: "
             "transferability first rises, then falls over pretraining.",
    "sharpness": f"{_L}: pretrained-then-fine-tuned minima are flatter (smaller Hessian top eigenvalue and trace).",
    "smoothness": f"{_L}: training from a pretrained start is smoother (a smaller loss spread and gradient change, "
                  "beta, along the gradient; Santurkar et al.'s measures).",
    "gradient_sv": f"{_L}: the principal component of the gradient (its top singular value) is suppressed in "
                   "pretrained parameters.",
    "deviation": f"{_L}: the weight deviation ||W - W0||_F / ||W0||_F stays small when the target is similar.",
    "t_layers": f"{_C}: the first conv is usually NOT the most transferable layer (overall T e.g. CIFAR-10 7.8, "
                "CIFAR-100 5.6, Caltech-101 23.9, Flowers 106).",
    "t_amount": f"{_C}: T falls as the target's data amount grows, log T about -0.6 log N.",
    "t_gap": f"{_C}: T falls with the domain gap (and the dataset diversity).",
    "selection": "You et al. 2021 (LogME): over 12 ImageNet backbones fine-tuned on 9 targets, LogME's weighted "
                 "Kendall's tau with the fine-tuned accuracy is about 0.5-0.8 (positive on every target), above "
                 "LEEP's and NCE's; the best-scored backbone is often, not always, the best fine-tuned one.",
    "effective_data": "Hernandez et al. 2021: pretraining is worth effective data D_T that grows with the target "
                      "amount more slowly than the amount itself (D_eff / N falls as N grows).",
}
