"""The artifact lineage graph: walks up and down, depth, derived_from, exports, the lineage digest, columns."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from prov.model import ProvActivity, ProvAgent, ProvDerivation, ProvDocument, ProvEntity, ProvGeneration, ProvUsage

from conftest import Cli, write_tree
from mlcustody import Workspace
from mlcustody._canonical import digest_json
from mlcustody.errors import UnknownRef, UsageError
from mlcustody.lineage import export
from mlcustody.lineage.graph import ColumnHop, ColumnRef, Graph, merkle
from mlcustody.metadata.runs import store as runs
from mlcustody.metadata.schema import artifact_versions
from mlcustody.metadata.schema import runs as run_starts

RAW = "id,income\n1,10\n2,20\n"


@dataclass(frozen=True)
class Pipeline:
    """raw → clean → features (joined with ext) → model, one run per arrow."""

    clean: str  # run ids
    featurize: str
    train: str

    @property
    def run_ids(self) -> set[str]:
        return {self.clean, self.featurize, self.train}


def _log(
    ws: Workspace,
    run_id: str,
    *,
    io: Iterable[runs.IO] = (),
    records: Iterable[runs.RecordLink] = (),
    columns: Iterable[runs.ColumnLink] = (),
) -> None:
    """Rows a capture or a record-keeping reader would write, while the run is active (so its seal covers them)."""
    batch = runs.Batch(
        io={(i.role, i.path): i for i in io},
        records={(r.output, r.input): r for r in records},
        columns=set(columns),
    )
    with ws.db.write() as conn:
        runs.write_batch(conn, run_id, batch)


def make_pipeline(ws: Workspace, raw: str = RAW, *, version: int = 1) -> Pipeline:
    root = ws.root
    write_tree(root, {"data/raw.csv": raw, "data/ext.csv": "id,debt\n1,3\n2,4\n"})
    with ws.start_run("clean") as clean:
        clean.use(root / "data/raw.csv", name="raw", type="dataset")
        write_tree(root, {"data/clean.csv": raw + "3,30\n"})
        made = clean.output(root / "data/clean.csv", name="clean", type="dataset")
        _log(ws, clean.id, columns=[runs.ColumnLink(made.ref, "income", f"raw@{version}", "income")])
    with ws.start_run("featurize") as featurize:
        featurize.use("clean")
        featurize.use(root / "data/ext.csv", name="ext", type="dataset")
        write_tree(root, {"data/features.csv": f"id,ratio\n1,0.{version}\n"})
        made = featurize.output(root / "data/features.csv", name="features", type="dataset")
        _log(
            ws,
            featurize.id,
            columns=[
                runs.ColumnLink(made.ref, "ratio", f"clean@{version}", "income"),
                runs.ColumnLink(made.ref, "ratio", "ext@1", "debt"),
                runs.ColumnLink(made.ref, "id", f"clean@{version}", "id"),
            ],
        )
    with ws.start_run("train") as train:
        train.use("features")
        write_tree(root, {"model.bin": f"weights {version}"})
        train.output(root / "model.bin", name="model", type="model")
    return Pipeline(clean.id, featurize.id, train.id)


def unescape(text: str) -> str:
    """A DOT string's text: backslash escapes undone."""
    return re.sub(r"\\(.)", r"\1", text)


def _artifacts(graph: Graph) -> set[str]:
    return graph.ids("artifact")


def _pairs(graph: Graph, kind: str) -> set[tuple[str, str]]:
    return {(e.source, e.target) for e in graph.edges if e.kind == kind}


# -- walks -------------------------------------------------------------------------------------------


def test_upstream_of_a_model_is_every_run_dataset_and_agent_behind_it(workspace: Workspace) -> None:
    p = make_pipeline(workspace)
    graph = workspace.lineage("model")
    assert graph.origin == "model@1" and graph.direction == "up"
    assert _artifacts(graph) == {"model@1", "features@1", "clean@1", "ext@1", "raw@1"}
    assert graph.ids("run") == p.run_ids
    agent = f"agent:{workspace.config.actor}"
    assert graph.ids("agent") == {agent}
    assert _pairs(graph, "generated") == {("model@1", p.train), ("features@1", p.featurize), ("clean@1", p.clean)}
    assert _pairs(graph, "used") == {
        (p.train, "features@1"),
        (p.featurize, "clean@1"),
        (p.featurize, "ext@1"),
        (p.clean, "raw@1"),
    }
    assert _pairs(graph, "associated_with") == {(run_id, agent) for run_id in p.run_ids}
    derived = {(e.source, e.target, e.run) for e in graph.edges if e.kind == "derived_from"}
    assert derived == {
        ("model@1", "features@1", p.train),
        ("features@1", "clean@1", p.featurize),
        ("features@1", "ext@1", p.featurize),
        ("clean@1", "raw@1", p.clean),
    }
    # depth counts entity→run and run→entity steps; the agent has its run's distance
    assert {i: graph.up[i] for i in ("model@1", p.train, "features@1", p.featurize, "ext@1", p.clean, "raw@1")} == {
        "model@1": 0,
        p.train: 1,
        "features@1": 2,
        p.featurize: 3,
        "ext@1": 4,
        p.clean: 5,
        "raw@1": 6,
    }
    assert graph.up[agent] == 1 and graph.down == {}
    run_node = graph.nodes[p.train]
    assert run_node.attributes["status"] == "finished" and len(run_node.attributes["seal"]) == 64


def test_downstream_and_both_sides(workspace: Workspace) -> None:
    p = make_pipeline(workspace)
    down = workspace.lineage("raw", direction="down")
    assert _artifacts(down) == {"raw@1", "clean@1", "features@1", "model@1"}  # not ext: a sibling input
    assert down.ids("run") == p.run_ids and down.up == {}
    assert down.down["model@1"] == 6
    both = workspace.lineage("clean@1", direction="both")
    assert both.ids(side="up") >= {"raw@1", p.clean} and "model@1" not in both.up
    assert both.ids(side="down") >= {p.featurize, "features@1", p.train, "model@1"} and "raw@1" not in both.down
    assert "ext@1" not in both.nodes
    assert both.up["clean@1"] == both.down["clean@1"] == 0


def test_depth_limits_the_walk_in_entity_and_run_steps(workspace: Workspace) -> None:
    p = make_pipeline(workspace)
    one = workspace.lineage("model", depth=1)
    assert set(one.nodes) == {"model@1", p.train, f"agent:{workspace.config.actor}"}
    assert _pairs(one, "derived_from") == set()  # features@1 is beyond the limit
    two = workspace.lineage("model", depth=2)
    assert _artifacts(two) == {"model@1", "features@1"} and two.ids("run") == {p.train}
    assert _pairs(two, "derived_from") == {("model@1", "features@1")}
    four = workspace.lineage("model", depth=4)
    assert _artifacts(four) == {"model@1", "features@1", "clean@1", "ext@1"}
    assert (p.clean not in four.nodes) and max(four.up.values()) == 4
    down = workspace.lineage("raw", direction="down", depth=2)
    assert set(down.nodes) - {f"agent:{workspace.config.actor}"} == {"raw@1", p.clean, "clean@1"}
    for bad in (0, -3):
        with pytest.raises(UsageError, match="depth"):
            workspace.lineage("model", depth=bad)


def test_a_run_is_an_origin_by_id_prefix(workspace: Workspace) -> None:
    p = make_pipeline(workspace)
    up = workspace.lineage(p.featurize[:8])
    assert up.origin == p.featurize
    assert _artifacts(up) == {"clean@1", "ext@1", "raw@1"} and up.ids("run") == {p.featurize, p.clean}
    down = workspace.lineage(f"run:{p.featurize}", direction="down")
    assert _artifacts(down) == {"features@1", "model@1"}
    with pytest.raises(UnknownRef, match="no artifact named 'modle'") as caught:
        workspace.lineage("modle")
    assert "did you mean model" in caught.value.one_line()


def test_record_lineage_and_meta_run_are_edges_too(workspace: Workspace) -> None:
    """A record_lineage row links versions even without run_io rows; ``meta.run`` marks a version as
    generated by a run that never listed it as an output; files that are no version are nodes."""
    p = make_pipeline(workspace)
    write_tree(workspace.root, {"extra.csv": "id,x\n1,1\n", "scratch/tmp.bin": "t"})
    extra = workspace.add([workspace.root / "extra.csv"], type="dataset")[0].version
    links = workspace.store_json([["1", "1"]])
    scratch = workspace.objects.put_bytes(b"t")
    with workspace.start_run("enrich") as enrich:
        _log(
            workspace,
            enrich.id,
            io=[runs.IO("output", "scratch/tmp.bin", "file", scratch, 1, None, "captured")],
            records=[runs.RecordLink("features@1", extra.ref, "join", links, 1)],
        )
        side = workspace.add([workspace.root / "extra.csv"], name="side", generated_by=enrich.id)[0].version
    with workspace.start_run("consume") as consume:
        _log(workspace, consume.id, io=[runs.IO("input", "scratch/tmp.bin", "file", scratch, 1, None, "captured")])

    up = workspace.lineage("model")
    [edge] = [e for e in up.edges if e.kind == "derived_from" and e.target == extra.ref]
    assert (edge.source, edge.run, edge.relation) == ("features@1", enrich.id, "join")
    assert up.up[extra.ref] == up.up["features@1"] + 2  # a record-lineage edge stands for its run
    assert enrich.id not in up.nodes  # record lineage alone does not say the run generated features@1

    assert _artifacts(workspace.lineage(side.ref)) == {side.ref}
    assert workspace.lineage(side.ref).ids("run") == {enrich.id}  # from meta.run
    from_run = workspace.lineage(enrich.id, direction="down")
    file_node = f"file:scratch/tmp.bin@{scratch[:12]}"
    assert side.ref in from_run.nodes and (side.ref, enrich.id) in _pairs(from_run, "generated")
    assert file_node in from_run.nodes and (consume.id, file_node) in _pairs(from_run, "used")
    assert from_run.nodes[file_node].attributes["digest"] == scratch
    assert workspace.lineage(consume.id).ids("run") == {consume.id, enrich.id}  # through the shared file
    assert workspace.verify().problems == []  # lineage rows written while the runs were active are sealed
    assert p.train in workspace.lineage("features", direction="down").nodes


def test_a_run_that_reads_back_what_it_wrote_does_not_loop(workspace: Workspace) -> None:
    digest = workspace.objects.put_bytes(b"cache")
    with workspace.start_run("cache") as run:
        _log(
            workspace,
            run.id,
            io=[
                runs.IO("input", "cache.bin", "file", digest, 5, None, "captured"),
                runs.IO("output", "cache.bin", "file", digest, 5, None, "captured"),
            ],
        )
    node = f"file:cache.bin@{digest[:12]}"
    graph = workspace.lineage(run.id, direction="both")
    assert {(run.id, node)} == _pairs(graph, "used") and {(node, run.id)} == _pairs(graph, "generated")
    assert workspace.lineage_digest(run.id) == workspace.lineage_digest(run.id)


# -- the lineage digest ------------------------------------------------------------------------------


def test_lineage_digest_is_the_documented_merkle_digest(workspace: Workspace) -> None:
    p = make_pipeline(workspace)
    graph = workspace.lineage("model")
    digests = merkle(graph)
    raw, clean = workspace.resolve("raw@1"), workspace.resolve("clean@1")
    leaf = digest_json({"node": {"artifact": "raw@1", "digest": raw.digest}, "upstream": []})
    assert digests["raw@1"] == leaf
    end = workspace.run(p.clean).run.end
    assert end is not None
    seal = end.seal
    run_digest = digest_json({"node": {"run": p.clean, "seal": seal}, "upstream": [leaf]})
    assert digests[p.clean] == run_digest
    # clean@1's parents: the run that generated it, and raw@1 (derived_from through that run)
    expected = digest_json(
        {"node": {"artifact": "clean@1", "digest": clean.digest}, "upstream": sorted([run_digest, leaf])}
    )
    assert digests["clean@1"] == expected
    assert workspace.lineage_digest("model") == digests["model@1"] == workspace.lineage_digest("model@1")
    with pytest.raises(ValueError, match="upstream graph without a depth limit"):
        merkle(workspace.lineage("model", depth=3))


def test_lineage_digest_is_stable_and_moves_with_anything_upstream(workspace: Workspace) -> None:
    make_pipeline(workspace)
    before = workspace.lineage_digest("model@1")
    assert workspace.lineage_digest("model@1") == before
    features = workspace.lineage_digest("features@1")
    # downstream use and new versions leave the lineage of model@1 alone
    make_pipeline(workspace, RAW + "4,40\n", version=2)
    assert workspace.resolve("model").ref == "model@2"
    assert workspace.lineage_digest("model@1") == before
    assert workspace.lineage_digest("model@2") != before
    # a changed upstream version (here: its recorded digest) changes every digest downstream of it
    with workspace.db.write() as conn:
        av = artifact_versions.c
        conn.execute(artifact_versions.update().where(av.name == "raw", av.version == 1).values(digest="0" * 64))
    assert workspace.lineage_digest("model@1") != before
    assert workspace.lineage_digest("features@1") != features
    assert workspace.lineage_digest("ext@1") == digest_json(
        {"node": {"artifact": "ext@1", "digest": workspace.resolve("ext@1").digest}, "upstream": []}
    )


def test_a_different_run_seal_changes_the_digest(workspace: Workspace) -> None:
    p = make_pipeline(workspace)
    before = workspace.lineage_digest("model")
    with workspace.db.write() as conn:
        conn.execute(run_starts.update().where(run_starts.c.id == p.clean).values(name="renamed"))
    assert workspace.lineage_digest("model") == before  # the seal, not the row, is what is bound
    with workspace.db.write() as conn:
        conn.execute(sa.text("UPDATE run_ends SET seal = :s WHERE run_id = :r"), {"s": "1" * 64, "r": p.clean})
    assert workspace.lineage_digest("model") != before


# -- exports -----------------------------------------------------------------------------------------


def test_prov_json_is_read_back_by_the_prov_library(workspace: Workspace) -> None:
    p = make_pipeline(workspace)
    graph = workspace.lineage("model")
    doc = ProvDocument.deserialize(content=json.dumps(export.prov_json(graph)), format="json")

    entities = {str(r.identifier): r for r in doc.get_records(ProvEntity)}
    activities = {str(r.identifier): r for r in doc.get_records(ProvActivity)}
    agents = {str(r.identifier) for r in doc.get_records(ProvAgent)}
    assert set(entities) == {f"artifact:{a}" for a in ("model@1", "features@1", "clean@1", "ext@1", "raw@1")}
    assert set(activities) == {f"run:{r}" for r in p.run_ids}
    assert agents == {f"agent:{workspace.config.actor}"}
    clean = workspace.run(p.clean).run
    times = activities[f"run:{p.clean}"]
    assert times.get_startTime().isoformat().startswith(clean.start.started_at[:19])
    assert clean.end is not None and times.get_endTime() is not None
    attributes = {str(k): v for k, v in entities["artifact:raw@1"].attributes}
    assert attributes["mlc:digest"] == workspace.resolve("raw@1").digest and attributes["mlc:type"] == "dataset"
    assert len(list(doc.get_records(ProvUsage))) == len(_pairs(graph, "used")) == 4
    assert len(list(doc.get_records(ProvGeneration))) == 3
    derivations = list(doc.get_records(ProvDerivation))
    assert len(derivations) == 4
    activities_of = [{str(k): str(v) for k, v in d.attributes}["prov:activity"] for d in derivations]
    assert set(activities_of) == {f"run:{r}" for r in p.run_ids}


def test_dot_and_mermaid_hold_every_node_and_edge(workspace: Workspace) -> None:
    make_pipeline(workspace)
    with workspace.start_run("score") as run:
        run.use("model")
        write_tree(workspace.root, {'odd "name".csv': "x\n"})
        odd = run.output(workspace.root / 'odd "name".csv', name='odd "name" <#1>')
    graph = workspace.lineage("model", direction="both")
    assert odd.ref in graph.nodes
    edges = {(e.source, e.target, e.kind) for e in graph.edges}

    dot = export.dot(graph)
    assert dot.startswith("digraph lineage {\n") and dot.endswith("}\n")
    quoted = r'"((?:[^"\\]|\\.)*)"'
    found = re.findall(rf"^  {quoted} -> {quoted} \[label={quoted}", dot, flags=re.MULTILINE)
    assert {(unescape(a), unescape(b), k) for a, b, k in found} == edges
    declared = re.findall(rf"^  {quoted} \[label=", dot, flags=re.MULTILINE)
    assert {unescape(d) for d in declared} == set(graph.nodes)

    mermaid = export.mermaid(graph).splitlines()
    assert mermaid[0] == "flowchart BT"
    short = {f"n{i}": node for i, node in enumerate(sorted(graph.nodes))}
    shapes = re.compile(r'^  (n\d+)(?:\(\["|\["|\[/")([^"]*)(?:"\]\)|"\]|"\\\])$')
    labels = {m[1]: m[2] for line in mermaid if (m := shapes.match(line))}
    assert set(labels) == set(short)
    assert "#34;" in labels[next(k for k, v in short.items() if v == odd.ref)]  # quotes escaped, not raw
    arrows = [m for line in mermaid if (m := re.match(r"^  (n\d+) (?:-->|-\.->)\|(\w+)\| (n\d+)$", line))]
    assert {(short[m[1]], short[m[3]], m[2]) for m in arrows} == edges


def test_dot_is_parsed_by_pydot(workspace: Workspace) -> None:
    pydot = pytest.importorskip("pydot")
    make_pipeline(workspace)
    graph = workspace.lineage("model")
    with warnings.catch_warnings():  # pydot still calls pyparsing's deprecated camelCase names
        warnings.simplefilter("ignore", DeprecationWarning)
        [parsed] = pydot.graph_from_dot_data(export.dot(graph))
    assert len(parsed.get_edges()) == len(graph.edges)
    assert {n.get_name().strip('"') for n in parsed.get_nodes()} >= set(graph.nodes)


def test_tree_draws_each_side_once(workspace: Workspace) -> None:
    p = make_pipeline(workspace)
    lines = export.tree(workspace.lineage("features", direction="both"))
    assert lines[0].startswith("upstream") and any(line.startswith("downstream") for line in lines)
    text = "\n".join(lines)
    for needle in ("clean@1", "ext@1", "raw@1", "model@1", f"run {p.featurize[:12]} featurize"):
        assert needle in text
    assert re.search(r"^│?\s*└── run .* train", text, flags=re.MULTILINE)


# -- columns -----------------------------------------------------------------------------------------


def test_column_lineage_walks_back_to_the_source_columns(workspace: Workspace) -> None:
    p = make_pipeline(workspace)
    found = workspace.column_lineage("features", "ratio")
    assert found.origin == ColumnRef("features@1", "ratio")
    assert found.hops == [
        ColumnHop(1, p.featurize, ColumnRef("features@1", "ratio"), ColumnRef("clean@1", "income")),
        ColumnHop(1, p.featurize, ColumnRef("features@1", "ratio"), ColumnRef("ext@1", "debt")),
        ColumnHop(2, p.clean, ColumnRef("clean@1", "income"), ColumnRef("raw@1", "income")),
    ]
    assert found.sources == [ColumnRef("ext@1", "debt"), ColumnRef("raw@1", "income")]
    assert found.unexplored == []
    limited = workspace.column_lineage("features", "ratio", depth=1)
    assert [h.distance for h in limited.hops] == [1, 1] and limited.sources == []
    assert limited.unexplored == [ColumnRef("clean@1", "income"), ColumnRef("ext@1", "debt")]
    raw = workspace.column_lineage("raw", "income")
    assert raw.hops == [] and raw.sources == [ColumnRef("raw@1", "income")]
    with pytest.raises(UsageError, match="has no column 'ratoi'") as caught:
        workspace.column_lineage("features", "ratoi")
    assert "did you mean ratio" in caught.value.one_line()


# -- the command -------------------------------------------------------------------------------------


def _cli_pipeline(cli: Cli) -> Pipeline:
    cli("init")
    with Workspace.open(cli.cwd) as ws:
        return make_pipeline(ws)


def test_custody_lineage_prints_every_format(cli: Cli) -> None:
    p = _cli_pipeline(cli)
    doc = cli.json("lineage", "model")
    assert doc["origin"] == "model@1" and doc["direction"] == "up" and doc["depth"] is None
    assert {n["id"] for n in doc["nodes"] if n["kind"] == "run"} == p.run_ids
    assert {(e["source"], e["target"]) for e in doc["edges"] if e["kind"] == "used"} >= {(p.clean, "raw@1")}
    assert doc["columns"] is None
    with Workspace.open(cli.cwd) as ws:
        assert doc["lineage_digest"] == ws.lineage_digest("model")
    out, _ = cli("lineage", "model", "--format", "json")
    assert json.loads(out) == doc

    down = cli.json("lineage", "raw", "--down", "--depth", "2")
    assert {n["id"] for n in down["nodes"] if n["kind"] != "agent"} == {"raw@1", p.clean, "clean@1"}
    assert all(n["up"] is None for n in down["nodes"])

    tree, _ = cli("lineage", "model")
    assert tree.splitlines()[0].startswith("model@1") and "raw@1" in tree and "lineage digest: " in tree

    prov, _ = cli("lineage", "model", "-f", "prov-json")
    parsed = ProvDocument.deserialize(content=prov, format="json")
    assert {str(r.identifier) for r in parsed.get_records(ProvActivity)} == {f"run:{r}" for r in p.run_ids}

    dot, _ = cli("lineage", "model", "--format", "dot")
    assert dot.startswith("digraph lineage {") and f'"model@1" -> "{p.train}" [label="generated"]' in dot
    mermaid, _ = cli("lineage", p.train[:10], "--both", "--format", "mermaid")
    assert mermaid.startswith("flowchart BT") and "|generated|" in mermaid and "|used|" in mermaid


def test_custody_lineage_column(cli: Cli) -> None:
    p = _cli_pipeline(cli)
    doc = cli.json("lineage", "features@1", "--column", "ratio")
    assert doc["nodes"] == [] and doc["edges"] == []
    assert doc["columns"]["sources"] == [
        {"artifact": "ext@1", "column": "debt"},
        {"artifact": "raw@1", "column": "income"},
    ]
    assert {(h["run"], h["input"]["artifact"]) for h in doc["columns"]["hops"]} == {
        (p.featurize, "clean@1"),
        (p.featurize, "ext@1"),
        (p.clean, "raw@1"),
    }
    out, _ = cli("lineage", "features", "-c", "ratio")
    assert "raw@1:income  (source)" in out and "sources: ext@1:debt, raw@1:income" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("model", "--depth", "0"), "depth must be a whole number of at least 1"),
        (("model", "--depth", "-2"), "depth must be a whole number of at least 1"),
        (("modle",), "no artifact named 'modle' — did you mean model?"),
        (("model", "--up", "--down"), "--up and --down contradict each other"),
        (("model", "--format", "svg"), "unknown lineage format 'svg'"),
        (("model", "--json", "--format", "dot"), "--json and --format dot contradict each other"),
        (("features", "--column", "ratio", "--down"), "--column walks a column back"),
        (("features", "--column", "ratio", "--format", "dot"), "--column cannot be drawn as dot"),
        (("features", "--column", "ratoi"), "features@1 has no column 'ratoi' — did you mean ratio?"),
        (("run:ffff",), "no run with id 'ffff'"),
    ],
)
def test_custody_lineage_refuses_bad_input(cli: Cli, args: tuple[str, ...], message: str) -> None:
    _cli_pipeline(cli)
    out, err = cli("lineage", *args, code=2)
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert out == "" if "--json" not in args else json.loads(out)["error"]["exit_code"] == 2
    assert message in err
