"""Transfer Lab in the browser. Until the dashboard lands (issue 5) this page composes a training
spec, validates it and shows the command that runs it. It imports specs only, never torch."""

import json

import streamlit as st

from backend.specs import SpecError, TrainJobSpec, parse

st.set_page_config(page_title="Transfer Lab", layout="wide")
st.title("Transfer Lab")
st.caption("What transfers in transfer learning, from which layers, and when.")

default = {"data": {"source": {"kind": "digits"}}, "model": {"arch": "convnet"}, "train": {"epochs": 10}}
text = st.text_area("Training spec (JSON)", json.dumps(default, indent=2), height=220)
try:
    job = parse(TrainJobSpec, text)
except SpecError as exc:
    st.error(str(exc))
else:
    st.success("Valid spec. Run it with:")
    st.code("python -m backend train --spec job.json", language="bash")
    st.json(job.model_dump(mode="json"), expanded=False)
