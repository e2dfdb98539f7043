"""DANDI download logic, tested at the network boundary with a fake dandi client (DANDI is not reachable
from CI); the real code path is the same functions with `dandi.dandiapi.DandiAPIClient`."""
from __future__ import annotations

from pathlib import Path

import pytest

from stndt.data.dandi import DownloadConfig, TransientError, download_asset, download_dataset, nlb_assets
from stndt.datasets import NLB_DATASETS

FAST = DownloadConfig(retries=3, backoff_s=0.0, chunk_size=4)


class FakeAsset:
    def __init__(self, path: str, payload: bytes, failures: int = 0, short: bool = False):
        self.path, self.payload, self.size = path, payload, len(payload)
        self.failures, self.short, self.calls = failures, short, []

    def get_download_file_iter(self, chunk_size: int):
        def iterate(start_at: int = 0):
            self.calls.append(start_at)
            data = self.payload[start_at:]
            if self.short:
                data = data[: len(data) // 2]
            for i in range(0, len(data), chunk_size):
                if self.failures and i >= chunk_size:  # fail mid-stream after the first chunk
                    self.failures -= 1
                    raise TransientError("connection reset")
                yield data[i:i + chunk_size]
        return iterate


class FakeDandiset:
    def __init__(self, identifier: str, assets: list[FakeAsset]):
        self.identifier, self.assets = identifier, assets

    def get_assets_with_path_prefix(self, prefix: str):
        return [a for a in self.assets if a.path.startswith(prefix)]


class FakeClient:
    def __init__(self, dandisets: dict[str, FakeDandiset]):
        self.dandisets, self.requests = dandisets, []

    def get_dandiset(self, identifier: str, version=None):
        self.requests.append((identifier, version))
        return self.dandisets[identifier]


def _nlb_fake(name: str) -> FakeClient:
    info = NLB_DATASETS[name]
    sub = info.dandi_dir
    assets = [FakeAsset(f"{sub}/{sub}_ses-x_desc-train_behavior+ecephys.nwb", b"train-bytes-" * 5),
              FakeAsset(f"{sub}/{sub}_ses-x_desc-test_ecephys.nwb", b"test-bytes-" * 3),
              FakeAsset(f"{sub}/notes.txt", b"ignored")]
    return FakeClient({info.dandiset: FakeDandiset(info.dandiset, assets)})


@pytest.mark.parametrize("name", list(NLB_DATASETS))
def test_every_nlb_dataset_fetches_its_train_and_test_file(tmp_path: Path, name: str):
    client = _nlb_fake(name)
    paths = download_dataset(name, tmp_path, FAST, client=client)
    assert client.requests == [(NLB_DATASETS[name].dandiset, None)]
    assert sorted(p.name for p in paths) == sorted(p.name for p in tmp_path.iterdir())
    assert {p.read_bytes()[:4] for p in paths} == {b"trai", b"test"}


def test_second_run_skips_complete_files(tmp_path: Path):
    client = _nlb_fake("mc_maze")
    download_dataset("mc_maze", tmp_path, FAST, client=client)
    assets = client.dandisets["000128"].assets
    calls = [len(a.calls) for a in assets]
    download_dataset("mc_maze", tmp_path, FAST, client=client)
    assert [len(a.calls) for a in assets] == calls  # nothing fetched again


def test_transient_errors_are_retried_and_resumed(tmp_path: Path):
    asset = FakeAsset("sub/x_desc-train.nwb", bytes(range(40)), failures=2)
    waits = []
    assert download_asset(asset, tmp_path / "x.nwb", FAST, sleep=waits.append)
    assert (tmp_path / "x.nwb").read_bytes() == bytes(range(40))
    assert len(asset.calls) == 3 and asset.calls[1] > 0  # the retry resumed from received bytes
    assert len(waits) == 2


def test_persistent_failure_raises_and_leaves_no_complete_file(tmp_path: Path):
    asset = FakeAsset("sub/x_desc-train.nwb", bytes(range(40)), failures=10)
    with pytest.raises(RuntimeError, match="download failed after 4 attempts"):
        download_asset(asset, tmp_path / "x.nwb", FAST, sleep=lambda s: None)
    assert not (tmp_path / "x.nwb").exists()


def test_truncated_transfer_is_rejected(tmp_path: Path):
    asset = FakeAsset("sub/x_desc-train.nwb", bytes(range(40)), short=True)
    with pytest.raises(RuntimeError, match="archive says 40"):
        download_asset(asset, tmp_path / "x.nwb", FAST)
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch_of_existing_file_triggers_download(tmp_path: Path):
    dest = tmp_path / "x.nwb"
    dest.write_bytes(b"partial")
    asset = FakeAsset("sub/x_desc-train.nwb", bytes(range(40)))
    assert download_asset(asset, dest, FAST)
    assert dest.read_bytes() == bytes(range(40))


def test_missing_test_file_is_an_error_naming_the_dandiset():
    ds = FakeDandiset("000128", [FakeAsset("sub-Jenkins/a_desc-train.nwb", b"x")])
    with pytest.raises(RuntimeError, match="000128.*desc-test"):
        nlb_assets(ds, "sub-Jenkins")
