"""Offline provenance bundles (`custody export`, `verify --bundle`) and `custody reproduce`."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import mlcustody
from _cli import run
from _models import PASSPHRASE, train_model
from conftest import Cli

DATASET = "datasets/data%2Ftrain@1"


@pytest.fixture
def registered(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    cli("init")
    cli("keys", "generate", "--name", "registry")
    run_id = train_model(cli.cwd)
    cli.json("model", "register", "credit", "--run", run_id)
    return cli


@pytest.fixture
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with no workspace in it or above it."""
    return tmp_path_factory.mktemp("offline")


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:gz") as tar:
        found = {}
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None
            found[member.name] = handle.read()
        return found


def _rewrite(bundle: Path, change: Callable[[dict[str, bytes]], object], *, relist: bool) -> None:
    """Rewrite a bundle with ``change`` applied to its members; ``relist`` re-hashes manifest.json
    (a tamperer who also fixes the listing, so that only the signed digests can catch it)."""
    members = _members(bundle)
    change(members)
    if relist:
        listing = [
            {
                "path": name,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "blake3": blake3.blake3(data).hexdigest(),
            }
            for name, data in sorted(members.items())
            if name != "manifest.json"
        ]
        manifest = json.loads(members["manifest.json"])
        members["manifest.json"] = json.dumps({**manifest, "members": listing}).encode()
    with tarfile.open(bundle, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _export(cli: Cli, target: Path, *extra: str) -> dict[str, object]:
    return cli.json("export", "credit@1", "--bundle", str(target), *extra)


def test_acceptance_a_bundle_verifies_offline_in_an_empty_directory(registered: Cli, elsewhere: Path) -> None:
    cli = registered
    started = time.perf_counter()
    doc = _export(cli, cli.cwd / "credit-1.tar.gz")
    exported_in = time.perf_counter() - started
    assert doc["model"] == "credit@1" and doc["with_data"] is False
    names = set(_members(cli.cwd / "credit-1.tar.gz"))
    assert {
        "manifest.json",
        "bundle.json",
        "attestation.dsse.json",
        "key/public.pem",
        "key/key.json",
        "model/model.skops",
        "run/record.json",
        "run/code.json",
        "run/environment.json",
        "lineage/prov.json",
        "lineage/graph.json",
        f"{DATASET}/records.parquet",
    } <= names
    assert not any(name.startswith(f"{DATASET}/data/") for name in names)
    shutil.copy(cli.cwd / "credit-1.tar.gz", elsewhere / "b.tar.gz")

    started = time.perf_counter()
    checked = run(elsewhere, "verify", "--bundle", "b.tar.gz", "--json")
    verified_in = time.perf_counter() - started
    assert checked.returncode == 0, str(checked)
    assert checked.json["ok"] is True and checked.json["model"] == "credit@1", checked.json
    assert set(checked.json) == {"schema", "bundle", "model", "ok", "members", "problems"}
    human = run(elsewhere, "verify", "--bundle", "b.tar.gz")
    assert human.returncode == 0 and "OK: bundle of credit@1" in human.stdout, str(human)
    assert not (elsewhere / ".custody").exists()
    print(  # measured: shown with pytest -s
        f"bundle {doc['size']} B ({doc['members']} members, {doc['content_bytes']} B uncompressed); "
        f"export {exported_in:.2f} s in-process, verify {verified_in:.2f} s as a subprocess"
    )


def _other_key() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _flip(data: bytes) -> bytes:
    changed = bytearray(data)
    changed[len(changed) // 2] ^= 1
    return bytes(changed)


def _alter_params(data: bytes) -> bytes:
    record = json.loads(data)
    record["params"]["C"] = 0.9
    return json.dumps(record).encode()


TAMPERING: dict[str, tuple[Callable[[dict[str, bytes]], object], str, str]] = {
    "remove a member": (lambda m: m.pop("run/environment.json"), "member_missing", "run/environment.json"),
    "alter the model": (
        lambda m: m.update({"model/model.skops": _flip(m["model/model.skops"])}),
        "model_modified",
        "model/model.skops",
    ),
    "alter the run record": (
        lambda m: m.update({"run/record.json": _alter_params(m["run/record.json"])}),
        "run_modified",
        "run/record.json",
    ),
    "alter the record manifest": (
        lambda m: m.update({f"{DATASET}/records.parquet": _flip(m[f"{DATASET}/records.parquet"])}),
        "dependency_modified",
        f"{DATASET}/records.parquet",
    ),
    "swap the public key": (
        lambda m: m.update({"key/public.pem": _other_key()}),
        "signature_invalid",
        "attestation.dsse.json",
    ),
}


@pytest.mark.parametrize("relist", [False, True], ids=["manifest-as-exported", "manifest-rehashed"])
@pytest.mark.parametrize("tamper", list(TAMPERING))
def test_verify_bundle_names_each_tampering(registered: Cli, elsewhere: Path, tamper: str, relist: bool) -> None:
    change, kind, where = TAMPERING[tamper]
    bundle = elsewhere / "b.tar.gz"
    _export(registered, bundle)
    _rewrite(bundle, change, relist=relist)
    checked = run(elsewhere, "verify", "--bundle", "b.tar.gz", "--json")
    assert checked.returncode == 1, str(checked)
    found = {(p["kind"], p["where"]) for p in checked.json["problems"]}
    if not relist and tamper != "remove a member":  # the listing catches it first
        assert ("member_modified", where if tamper != "swap the public key" else "key/public.pem") in found, found
    assert (kind, where) in found, found
    human = run(elsewhere, "verify", "--bundle", "b.tar.gz")
    assert human.returncode == 1 and where in human.stdout and "FAILED" in human.stdout, str(human)


def test_with_data_carries_and_checks_the_dataset_files(registered: Cli, elsewhere: Path) -> None:
    cli = registered
    bundle = elsewhere / "b.tar.gz"
    assert _export(cli, bundle, "--with-data")["with_data"] is True
    members = _members(bundle)
    assert members[f"{DATASET}/data/train.csv"] == (cli.cwd / "data/train.csv").read_bytes()
    assert run(elsewhere, "verify", "--bundle", "b.tar.gz").returncode == 0
    path = f"{DATASET}/data/train.csv"
    _rewrite(bundle, lambda m: m.update({path: m[path].replace(b"59,3,0", b"59,3,1")}), relist=True)
    checked = run(elsewhere, "verify", "--bundle", "b.tar.gz", "--json")
    assert checked.returncode == 1
    assert ("dependency_modified", path) in {(p["kind"], p["where"]) for p in checked.json["problems"]}


def test_reproduce_materialises_code_params_and_data_and_retrains_the_same_model(
    registered: Cli, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    cli = registered
    target = tmp_path / "repro"
    doc = cli.json("reproduce", "credit@1", "--to", str(target))
    assert doc["model"] == "credit@1" and doc["inputs"] == [{"ref": "data/train@1", "path": "data/train.csv"}]
    assert doc["command"] and doc["missing"] == []
    assert (target / "data/train.csv").read_bytes() == (cli.cwd / "data/train.csv").read_bytes()
    params = json.loads((target / doc["params"]).read_text())
    assert params == {"C": 0.5}

    # The test's own training code, reading only what reproduce materialised.
    with open(target / "data/train.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    x = [[int(r["x"])] for r in rows]
    y = [int(r["y"]) for r in rows]
    retrained = LogisticRegression(**params).fit(x, y)
    registered_model = mlcustody.load_model(cli.cwd / "model.skops")
    # Compared by content (coefficients, intercept, params), not bytes: a skops zip embeds times.
    assert np.array_equal(retrained.coef_, registered_model.coef_)
    assert np.array_equal(retrained.intercept_, registered_model.intercept_)
    assert retrained.get_params() == registered_model.get_params()
    print("reproduce: retrained model equals the registered one by coef_, intercept_ and get_params()")

    out, _ = cli("reproduce", "credit@1", "--to", str(tmp_path / "again"))
    assert "run from that directory:" in out and "data/train@1 → data/train.csv" in out


def test_bad_bundle_input_is_refused_with_one_line(registered: Cli, elsewhere: Path) -> None:
    cli = registered
    for args, message in [
        (("export", "nosuch@1", "--bundle", str(elsewhere / "x.tar.gz")), "no registered model named 'nosuch'"),
        (("export", "credit@1", "--bundle", str(elsewhere / "x.zip")), "does not end in .tar.gz"),
        (("reproduce", "nosuch", "--to", str(elsewhere / "r")), "no registered model named 'nosuch'"),
        (("reproduce", "credit@1", "--to", str(cli.cwd)), "is not an empty directory"),
    ]:
        _, err = cli(*args, code=2)
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (elsewhere / "x.tar.gz").exists()
    (elsewhere / "junk.tar.gz").write_bytes(b"this is not a gzip file\n")
    for name, message in [("junk.tar.gz", "is not a readable .tar.gz bundle"), ("none.tar.gz", "does not exist")]:
        result = run(elsewhere, "verify", "--bundle", name)
        assert result.returncode == 2, str(result)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, str(result)


def test_a_directory_dataset_is_checked_file_by_file_with_data(cli: Cli, elsewhere: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from conftest import write_tree
    from mlcustody import Workspace
    from mlcustody.workspace.results import RecordSpec

    cli.monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    cli("init")
    cli("keys", "generate")
    parts: dict[str, bytes | str] = {
        f"data/parts/p{i}.csv": "id,x\n" + "".join(f"{i}{j},{j}\n" for j in range(9)) for i in range(3)
    }
    write_tree(cli.cwd, parts)
    ws = Workspace.open(cli.cwd)
    try:
        ws.add([cli.cwd / "data/parts"], records=RecordSpec(key=("id",)))
        with ws.start_run("train", params={"C": 1.0}) as trained:
            trained.use("data/parts")
            trained.save_model(LogisticRegression().fit([[0], [1]], [0, 1]), cli.cwd / "model.skops")
    finally:
        ws.close()
    cli.json("model", "register", "parts-model", "--run", trained.id)
    bundle = elsewhere / "b.tar.gz"
    cli.json("export", "parts-model", "--bundle", str(bundle), "--with-data")
    where = "datasets/data%2Fparts@1"
    assert {f"{where}/manifest", f"{where}/data/p0.csv", f"{where}/data/p2.csv"} <= set(_members(bundle))
    assert run(elsewhere, "verify", "--bundle", "b.tar.gz").returncode == 0
    member = f"{where}/data/p1.csv"
    _rewrite(bundle, lambda m: m.update({member: m[member] + b"99,9\n"}), relist=True)
    checked = run(elsewhere, "verify", "--bundle", "b.tar.gz", "--json")
    assert checked.returncode == 1
    assert ("dependency_modified", member) in {(p["kind"], p["where"]) for p in checked.json["problems"]}
