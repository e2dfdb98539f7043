"""Commands of the data stage: download, synthesize, link local files, build tensors, truth, data overview."""

from __future__ import annotations

import json
from pathlib import Path

from stndt.commands import command
from stndt.datasets import PHASES


def _download_args(p):
    p.add_argument("--layout", required=True, help="NLB dataset name (selects the dandiset)")
    p.add_argument("--out", required=True, type=Path, help="folder receiving the train and test NWB files")
    p.add_argument("--cache", type=Path, help="download cache (kept across runs; files are hard-linked from it)")
    p.add_argument("--version", default="", help="dandiset version (default: most recent published)")


@command("download", "fetch an NLB dataset's NWB files from DANDI")(_download_args)
def _download(a):
    from stndt.data.dandi import DownloadConfig, download_dataset
    from stndt.data.staging import stage_files

    cache = a.cache or a.out.with_name(a.out.name + ".cache")
    files = download_dataset(a.layout, cache / a.layout, DownloadConfig(version=a.version or None))
    stage_files(files, a.out, a.layout)


def _synth_args(p):
    p.add_argument("--layout", required=True)
    p.add_argument("--raw", required=True, type=Path, help="folder for the public train and test NWB files")
    p.add_argument("--hidden", required=True, type=Path, help="complete recording incl. test targets and true rates")
    p.add_argument("--params", default="{}", help="JSON object of SyntheticConfig overrides")
    p.add_argument("--seed", type=int, default=0)


@command("synthesize", "generate a synthetic dataset in an NLB layout")(_synth_args)
def _synthesize(a):
    from dataclasses import replace

    from stndt.data.staging import staged_dir
    from stndt.data.synthetic import SyntheticConfig, generate

    overrides = json.loads(a.params)
    cfg = replace(SyntheticConfig(), **{"seed": a.seed, **overrides})
    with staged_dir(a.raw) as tmp_raw:
        generate(a.layout, tmp_raw, a.hidden, cfg)


def _local_args(p):
    p.add_argument("--src", required=True, type=Path, help="folder with the user's train and test NWB files")
    p.add_argument("--layout", required=True)
    p.add_argument("--out", required=True, type=Path)


@command("link-local", "check a user's NLB-format NWB files and link them into the results")(_local_args)
def _link_local(a):
    from stndt.data.nwb_checks import check_raw_dir
    from stndt.data.staging import stage_files

    files = check_raw_dir(a.src, a.layout)
    stage_files(files, a.out, a.layout, link=True)


def _tensor_args(p):
    p.add_argument("--raw", required=True, type=Path)
    p.add_argument("--layout", required=True)
    p.add_argument("--phase", required=True, choices=PHASES)
    p.add_argument("--bin-width", type=int, default=5, help="bin width in ms (5 or 20)")
    p.add_argument("--hidden", type=Path, help="complete recording with test targets (synthetic data)")
    p.add_argument(
        "--holdout",
        type=float,
        default=0.0,
        help="val phase: share of the eval trials set aside from every selection (evaluation.holdout)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the holdout draw")
    p.add_argument("--out", required=True, type=Path)


@command("tensors", "bin a dataset with nlb_tools and write one phase's tensors")(_tensor_args)
def _tensors(a):
    from stndt.data.tensors import add_holdout, build_phase, write_phase

    data = build_phase(a.raw, a.layout, a.phase, a.bin_width, a.hidden)
    if a.phase == "val":
        add_holdout(data, a.layout, a.bin_width, a.holdout, a.seed)
    write_phase(a.out, data, a.layout, a.phase, a.bin_width)


def _truth_args(p):
    p.add_argument("--hidden", required=True, type=Path)
    p.add_argument("--layout", required=True)
    p.add_argument("--bin-width", type=int, default=5)
    p.add_argument("--out", required=True, type=Path)


@command("truth", "true rates of a synthetic dataset in the submission format")(_truth_args)
def _truth(a):
    from stndt.data.synthetic import make_truth
    from stndt.io import save_h5

    save_h5(a.out, make_truth(a.hidden, a.layout, a.bin_width), attrs={"layout": a.layout, "bin_width_ms": a.bin_width})


def _overview_args(p):
    p.add_argument("--tensors", required=True, type=Path, help="val-phase tensors file")
    p.add_argument("--truth", type=Path, help="truth.h5 of a synthetic dataset")
    p.add_argument("--out", required=True, type=Path)


@command("overview", "figure: rasters and PSTHs of a few neurons")(_overview_args)
def _overview(a):
    from stndt.figures.data_overview import plot_data_overview

    plot_data_overview(a.tensors, a.truth, a.out)
