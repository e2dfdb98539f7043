"""DANDI download logic, tested at the network boundary with a fake dandi client (DANDI is not reachable
from CI); the real code path is the same functions with `dandi.dandiapi.DandiAPIClient`."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
from pathlib import Path

import pytest

from stndt.data import dandi
from stndt.data.dandi import (
    DANDI_ETAG,
    SHA256,
    DownloadConfig,
    TransientError,
    download_asset,
    download_dataset,
    local_digest,
    nlb_assets,
)
from stndt.datasets import NLB_DATASETS

FAST = DownloadConfig(retries=3, backoff_s=0.0, chunk_size=4)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeAsset:
    """A RemoteAsset stand-in: `get_raw_metadata()["digest"]` publishes the payload's sha2-256 unless
    `digests` says otherwise; `corrupt` = how many downloads serve a damaged payload (last byte flipped)."""

    def __init__(
        self,
        path: str,
        payload: bytes,
        failures: int = 0,
        short: bool = False,
        digests: dict[str, str] | None = None,
        corrupt: int = 0,
    ):
        self.path, self.payload, self.size = path, payload, len(payload)
        self.failures, self.short, self.calls = failures, short, []
        self.digests = {SHA256: _sha(payload)} if digests is None else digests
        self.corrupt = corrupt

    def get_raw_metadata(self) -> dict:
        return {"path": self.path, "contentSize": self.size, "digest": dict(self.digests)}

    def get_download_file_iter(self, chunk_size: int):
        def iterate(start_at: int = 0):
            self.calls.append(start_at)
            payload = self.payload
            if self.corrupt:
                self.corrupt -= 1
                payload = payload[:-1] + bytes([payload[-1] ^ 0xFF])
            data = payload[start_at:]
            if self.short:
                data = data[: len(data) // 2]
            for i in range(0, len(data), chunk_size):
                if self.failures and i >= chunk_size:  # fail mid-stream after the first chunk
                    self.failures -= 1
                    raise TransientError("connection reset")
                yield data[i : i + chunk_size]

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
    assets = [
        FakeAsset(f"{sub}/{sub}_ses-x_desc-train_behavior+ecephys.nwb", b"train-bytes-" * 5),
        FakeAsset(f"{sub}/{sub}_ses-x_desc-test_ecephys.nwb", b"test-bytes-" * 3),
        FakeAsset(f"{sub}/notes.txt", b"ignored"),
    ]
    return FakeClient({info.dandiset: FakeDandiset(info.dandiset, assets)})


@pytest.mark.parametrize("name", list(NLB_DATASETS))
def test_every_nlb_dataset_fetches_its_train_and_test_file(tmp_path: Path, name: str):
    client = _nlb_fake(name)
    paths = download_dataset(name, tmp_path, FAST, client=client)
    assert client.requests == [(NLB_DATASETS[name].dandiset, None)]
    assert sorted(p.name for p in paths) == sorted(p.name for p in tmp_path.glob("*.nwb"))
    assert sorted(p.name + ".digest" for p in paths) == sorted(p.name for p in tmp_path.glob("*.digest"))
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


# ------------------------------------------------------------------------------------ digest checks
DATA = bytes(range(40))
# sha256(bytes(range(40))) and its DANDI etag (one part: md5 of the part's md5, "-1"), computed by hand
# with hashlib outside the code under test.
DATA_SHA = "5faa4eec3611556812c2d74b437c8c49add3f910f10063d801441f7d75cd5e3b"


def test_digest_helpers_match_hand_computed_values(tmp_path: Path):
    f = tmp_path / "x.nwb"
    f.write_bytes(DATA)
    assert local_digest(f, SHA256) == DATA_SHA
    part_md5 = hashlib.md5(DATA).digest()
    assert local_digest(f, DANDI_ETAG) == hashlib.md5(part_md5).hexdigest() + "-1"
    from dandischema.models import DigestType  # our keys are the archive's own names

    assert (SHA256, DANDI_ETAG) == (DigestType.sha2_256.value, DigestType.dandi_etag.value)


def test_good_digest_passes_and_is_cached_in_a_sidecar(tmp_path: Path, monkeypatch):
    asset = FakeAsset("sub/x_desc-train.nwb", DATA)
    dest = tmp_path / "x.nwb"
    assert download_asset(asset, dest, FAST)
    assert dest.read_bytes() == DATA and len(asset.calls) == 1
    rec = json.loads((tmp_path / "x.nwb.digest").read_text())
    assert rec == {"algorithm": SHA256, "digest": _sha(DATA), "size": 40, "mtime_ns": dest.stat().st_mtime_ns}
    # reuse: the unchanged file is not hashed again (the sidecar vouches for it) and not downloaded
    hashed = []
    monkeypatch.setattr(dandi, "local_digest", lambda p, a: hashed.append(p) or "x")
    assert not download_asset(asset, dest, FAST)
    assert hashed == [] and len(asset.calls) == 1


def test_touched_cached_file_is_rehashed(tmp_path: Path, monkeypatch):
    asset = FakeAsset("sub/x_desc-train.nwb", DATA)
    dest = tmp_path / "x.nwb"
    download_asset(asset, dest, FAST)
    st = dest.stat()
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # same size, newer mtime
    hashed = []
    real = dandi.local_digest
    monkeypatch.setattr(dandi, "local_digest", lambda p, a: hashed.append(p) or real(p, a))
    assert not download_asset(asset, dest, FAST)  # same bytes: verified again, not downloaded
    assert hashed == [dest] and len(asset.calls) == 1
    assert json.loads((tmp_path / "x.nwb.digest").read_text())["mtime_ns"] == dest.stat().st_mtime_ns


def test_corrupted_cached_file_is_downloaded_again(tmp_path: Path):
    asset = FakeAsset("sub/x_desc-train.nwb", DATA)
    dest = tmp_path / "x.nwb"
    download_asset(asset, dest, FAST)
    dest.write_bytes(DATA[:-1] + b"\x00")  # bit rot / a bad copy: same size, other bytes, new mtime
    assert download_asset(asset, dest, FAST)
    assert dest.read_bytes() == DATA and len(asset.calls) == 2


def test_stale_sidecar_with_forged_stat_is_not_trusted_for_other_bytes(tmp_path: Path):
    """A sidecar only vouches for the size+mtime it recorded; a new file in its place is hashed."""
    asset = FakeAsset("sub/x_desc-train.nwb", DATA)
    dest = tmp_path / "x.nwb"
    download_asset(asset, dest, FAST)
    rec = json.loads((tmp_path / "x.nwb.digest").read_text())
    dest.write_bytes(bytes(40))
    rec.update(size=40, mtime_ns=dest.stat().st_mtime_ns - 1)
    (tmp_path / "x.nwb.digest").write_text(json.dumps(rec))
    assert download_asset(asset, dest, FAST)
    assert dest.read_bytes() == DATA


def test_one_bad_download_is_retried_once(tmp_path: Path, caplog):
    asset = FakeAsset("sub/x_desc-train.nwb", DATA, corrupt=1)
    with caplog.at_level(logging.WARNING, logger="stndt.data.dandi"):
        assert download_asset(asset, tmp_path / "x.nwb", FAST)
    assert (tmp_path / "x.nwb").read_bytes() == DATA and len(asset.calls) == 2
    assert "downloading once more" in caplog.text


def test_persistently_wrong_digest_raises_naming_asset_and_digests(tmp_path: Path):
    asset = FakeAsset("sub/x_desc-train.nwb", DATA, corrupt=5)
    bad = _sha(DATA[:-1] + bytes([DATA[-1] ^ 0xFF]))
    with pytest.raises(RuntimeError, match=f"sub/x_desc-train.nwb.*expected {_sha(DATA)}, got {bad}"):
        download_asset(asset, tmp_path / "x.nwb", FAST)
    assert len(asset.calls) == 2 and list(tmp_path.iterdir()) == []


def test_etag_is_used_when_no_sha256_is_published(tmp_path: Path):
    etag = hashlib.md5(hashlib.md5(DATA).digest()).hexdigest() + "-1"
    good = FakeAsset("sub/x_desc-train.nwb", DATA, digests={DANDI_ETAG: etag})
    assert download_asset(good, tmp_path / "x.nwb", FAST)
    assert json.loads((tmp_path / "x.nwb.digest").read_text())["algorithm"] == DANDI_ETAG
    wrong = FakeAsset("sub/y_desc-train.nwb", DATA, digests={DANDI_ETAG: "0" * 32 + "-1"})
    with pytest.raises(RuntimeError, match=f"y_desc-train.nwb.*dandi-etag.*expected 0{{32}}-1, got {etag}"):
        download_asset(wrong, tmp_path / "y.nwb", FAST)


def test_sha256_is_preferred_over_the_etag(tmp_path: Path):
    asset = FakeAsset("sub/x_desc-train.nwb", DATA, digests={DANDI_ETAG: "bogus-1", SHA256: _sha(DATA)})
    assert download_asset(asset, tmp_path / "x.nwb", FAST)


def test_full_disk_during_download_names_the_file(tmp_path: Path, monkeypatch):
    asset = FakeAsset("sub/x_desc-train.nwb", DATA)
    real_open = open

    class FullFile:
        def __init__(self, *a):
            self.f = real_open(*a)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, chunk):
            self.f.write(chunk[:1])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dandi, "open", FullFile, raising=False)
    with pytest.raises(OSError, match="x.nwb.part: no space left on device") as info:
        download_asset(asset, tmp_path / "x.nwb", FAST)
    assert info.value.errno == errno.ENOSPC and list(tmp_path.iterdir()) == []


def test_no_published_digest_falls_back_to_size_with_a_warning(tmp_path: Path, caplog):
    asset = FakeAsset("sub/x_desc-train.nwb", DATA, digests={})
    with caplog.at_level(logging.WARNING, logger="stndt.data.dandi"):
        assert download_asset(asset, tmp_path / "x.nwb", FAST)
    assert "sub/x_desc-train.nwb: the archive publishes no sha2-256 or dandi-etag digest" in caplog.text
    assert [p.name for p in tmp_path.iterdir()] == ["x.nwb"]
