"""Engine versions given as source: suite entries, source identity, wheel packing, compiler
messages, and compare across wheel and source builds (no compiler runs here)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from harness.builds.build import build_key, relevant_lines
from harness.builds.source import EngineSource, SourceError, default_name
from harness.builds.wheel import pack
from harness.config.suite import parse_suite
from harness.errors import InputError

pytestmark = pytest.mark.unit


def _suite(tmp_path: Path, engines: dict):
    data = {"name": "s", "engines": engines, "models": [{"name": "m", "builtin": "reduction_sum_block"}]}
    return parse_suite(data, str(tmp_path / "s.toml"), tmp_path)


def _tarball(tmp_path: Path, name: str = "MNN-3.1.0.tar.xz") -> Path:
    """A real (tiny) tar archive: only its digest matters here."""
    import tarfile
    p = tmp_path / name
    (tmp_path / "CMakeLists.txt").write_text("project(x)\n")
    with tarfile.open(p, "w:xz") as tf:
        tf.add(tmp_path / "CMakeLists.txt", arcname="MNN-3.1.0/CMakeLists.txt")
    return p


def test_source_entry_beside_a_wheel_version(tmp_path):
    tb = _tarball(tmp_path)
    s = _suite(tmp_path, {"mnn": ["3.6.1", {"source": tb.name, "backends": ["vulkan"],
                                            "cmake": ["-DMNN_AVX512=ON"]}]})
    assert s.engines["mnn"] == ("3.6.1", "src:MNN-3.1.0")
    src = s.sources[("mnn", "src:MNN-3.1.0")]
    assert src.path == str(tb.resolve()) and src.backends == ("cpu", "vulkan")
    assert src.cmake_args == ("-DMNN_AVX512=ON",)
    assert src.identity() == "sha256:" + hashlib.sha256(tb.read_bytes()).hexdigest()
    assert src.options() == {"backends": ["cpu", "vulkan"], "cmake_args": ["-DMNN_AVX512=ON"]}


def test_named_source_and_the_key_changes_with_options(tmp_path):
    tb = _tarball(tmp_path)
    s = _suite(tmp_path, {"mnn": [{"source": str(tb), "name": "mine"}]})
    a = s.sources[("mnn", "mine")]
    b = EngineSource("mnn", a.path, "mine", backends=("cpu", "opencl"))
    assert a.key() != b.key()
    assert build_key(a, "armv7l-cp311") != build_key(a, "x86_64-cp311")
    assert build_key(a, "armv7l-cp311").startswith("mnn-" + a.identity()[7:19])


@pytest.mark.parametrize("entry, says", [
    ({"source": "nope.tar.xz"}, "an existing source tarball or git checkout"),
    ({"source": "MNN-3.1.0.tar.xz", "flavour": 1}, "unknown key"),
    ({"source": "MNN-3.1.0.tar.xz", "ref": "v1"}, "a ref only with a git checkout"),
    ({"source": "MNN-3.1.0.tar.xz", "backends": ["cuda"]}, "one of cpu, vulkan, opencl"),
    ({"source": "MNN-3.1.0.tar.xz", "cmake": ["MNN_AVX512=ON"]}, "CMake cache flags"),
    ({"ref": "main"}, "source: got nothing"),
    ({"source": "MNN-3.1.0.tar.xz", "name": "installed"}, "other than \"installed\""),
])
def test_bad_source_entries_are_one_line(tmp_path, entry, says):
    _tarball(tmp_path)
    with pytest.raises(InputError) as e:
        _suite(tmp_path, {"mnn": [entry]})
    assert says in str(e.value) and "engines.mnn[0]" in str(e.value)
    assert "\n" not in str(e.value)


def test_backends_a_recipe_cannot_build_and_files_that_are_not_tarballs(tmp_path):
    tb = _tarball(tmp_path, "ncnn-20260526.tar.xz")
    with pytest.raises(InputError, match="one of cpu, vulkan"):
        _suite(tmp_path, {"ncnn": [{"source": tb.name, "backends": ["opencl"]}]})
    (tmp_path / "README.md").write_text("# not a tarball\n")
    with pytest.raises(InputError, match="which is not a tar archive"):
        _suite(tmp_path, {"ncnn": [{"source": "README.md"}]})
    with pytest.raises(InputError, match=r"a source goes in \{ source"):
        _suite(tmp_path, {"mnn": [str(tb)]})


def test_two_entries_with_one_name_are_refused(tmp_path):
    tb = _tarball(tmp_path)
    with pytest.raises(InputError, match="distinct versions"):
        _suite(tmp_path, {"mnn": [{"source": tb.name}, {"source": tb.name, "backends": ["vulkan"]}]})


def test_engine_without_a_recipe_is_refused(tmp_path):
    tb = _tarball(tmp_path)
    with pytest.raises(InputError, match="build recipe"):
        _suite(tmp_path, {"onnxruntime": [{"source": tb.name}]})


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                                          "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
                                          "PATH": "/usr/bin:/bin"}).stdout.strip()


def test_git_checkout_identity_is_the_refs_commit(tmp_path):
    repo = tmp_path / "ncnn"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a").write_text("1")
    _git(repo, "add", "a")
    _git(repo, "commit", "-q", "-m", "one")
    first = _git(repo, "rev-parse", "HEAD")
    _git(repo, "tag", "20260526")
    (repo / "a").write_text("2")
    _git(repo, "commit", "-q", "-am", "two")
    s = _suite(tmp_path, {"ncnn": [{"source": "ncnn", "ref": "20260526"}, {"source": "ncnn"}]})
    assert s.engines["ncnn"] == ("src:20260526", "src:HEAD")
    assert s.sources[("ncnn", "src:20260526")].identity() == f"git:{first}"
    assert s.sources[("ncnn", "src:HEAD")].identity() != f"git:{first}"
    bad = EngineSource("ncnn", str(repo), "x", ref="no-such-ref")
    with pytest.raises(SourceError, match="is not a commit"):
        bad.identity()


def test_default_names():
    assert default_name("/x/MNN-3.1.0.tar.xz", None) == "src:MNN-3.1.0"
    assert default_name("/x/ncnn.tgz", None) == "src:ncnn"


def test_packed_wheel_installs_and_imports(tmp_path):
    stage = tmp_path / "stage"
    (stage / "demo_pkg").mkdir(parents=True)
    (stage / "demo_pkg" / "__init__.py").write_text("VALUE = 42\n")
    tag = "py3-none-any"
    whl = pack(stage, "demo-pkg", "1.0+src.abc", tag, tmp_path / "out")
    assert whl.name == "demo_pkg-1.0+src.abc-py3-none-any.whl"
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        record = z.read("demo_pkg-1.0+src.abc.dist-info/RECORD").decode()
    assert "demo_pkg/__init__.py" in names and "demo_pkg/__init__.py,sha256=" in record
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--disable-pip-version-check", "--target", str(target), str(whl)],
                   check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-c", "import demo_pkg; print(demo_pkg.VALUE)"],
                         env={"PYTHONPATH": str(target)}, capture_output=True, text=True)
    assert out.stdout.strip() == "42"


def test_relevant_lines_quote_the_compiler():
    log = ("$ ninja -j 2\n[1/300] Building CXX object a.o\nFAILED: src/mat.cpp.o\n"
           "/b/src/mat.h:12:14: error: expected primary-expression before ';' token\n"
           "ninja: build stopped: subcommand failed.\n")
    said = relevant_lines(log)
    assert "mat.h:12:14: error: expected primary-expression" in said
    assert relevant_lines("just one line") == "just one line"


def _rows(**cols) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    base = {"model": ["m"] * n, "input_shape": ["1"] * n, "engine": ["mnn"] * n,
            "backend": ["cpu"] * n, "precision": ["fp32"] * n, "threads": [1] * n,
            "cores_requested": ["all"] * n, "cores": [2] * n, "host": ["h"] * n,
            "status": ["ok"] * n}
    base.update(cols)
    return pd.DataFrame(base)


def test_compare_pairs_a_wheel_with_a_source_build_of_the_same_release():
    from harness.compare.pairing import pair_rows
    df = _rows(engine_version=["3.1.0", "3.1.0"], engine_build=[None, "3.1.0-vk"],
               engine_source=[None, "git:0123456789abcdef"])
    pr = pair_rows(df, "version", "3.1.0", "3.1.0-vk")
    assert len(pr.keys) == 1
    by_commit = pair_rows(df, "version", "3.1.0", "0123456")
    assert len(by_commit.keys) == 1


def test_version_3_files_read_as_wheel_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from harness.compare.synthetic import rows_for
    from harness.results import load
    from harness.store.schema import SCHEMA_VERSION, VERSION_KEY, to_table
    assert SCHEMA_VERSION == 4
    new = ["engine_build", "engine_source", "engine_build_options", "gpu_heap_budget_mb",
           "engine_memory_mb"]
    table = to_table(rows_for(processes=2, samples=5)).drop_columns(new)
    table = table.set_column(table.column_names.index("schema_version"), "schema_version",
                             pa.array([3, 3], type=pa.int64()))
    table = table.replace_schema_metadata({VERSION_KEY: b"3"})
    path = tmp_path / "date=2026-11-28" / "engine=mnn" / "part-old.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    df = load(tmp_path)
    assert len(df) == 2 and df["engine_build"].isna().all() and df["engine_source"].isna().all()
    assert list(df["schema_version"]) == [3, 3]


def test_compare_reads_source_builds_by_label_and_by_digest(tmp_path):
    from harness.compare.core import compare
    from harness.compare.load import load_sides
    from harness.compare.synthetic import rows_for
    from harness.store.schema import to_table
    import pyarrow.parquet as pq
    rows = []
    for label, source in ((None, None), ("src:MNN-3.1.0", "sha256:" + "ab" * 32)):
        for r in rows_for(processes=3, samples=30):
            r.update(engine_version="3.1.0", engine_build=label, engine_source=source,
                     engine_version_requested=label or "3.1.0")
            rows.append(r)
    path = tmp_path / "date=2026-12-01" / "engine=mnn" / "part-x.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(to_table(rows), path)
    for head in ("src:MNN-3.1.0", "abababa", "ABABABAB", "sha256:abababa"):
        df = load_sides(tmp_path, "version", "3.1.0", head, {})
        res = compare(df, "version", "3.1.0", head)
        assert len(res.pairs) >= 1, head
    with pytest.raises(Exception, match="has no rows"):
        load_sides(tmp_path, "version", "3.1.0", "cdcdcdc", {})


def test_engines_as_a_list_of_names_means_installed(tmp_path):
    s = _suite(tmp_path, ["mnn", "ncnn"])
    assert s.engines == {"mnn": ("installed",), "ncnn": ("installed",)}
    with pytest.raises(InputError) as e:
        _suite(tmp_path, [1])
    assert "engines: got a list (expected a table" in str(e.value)


def test_a_digest_prefix_of_two_builds_is_refused():
    from harness.compare.pairing import pair_rows
    df = _rows(engine_version=["3.1.0"] * 3, engine_build=[None, "a", "b"],
               engine_source=[None, "sha256:" + "ab" * 32, "sha256:" + "ab" * 32])
    with pytest.raises(InputError, match="matches the builds a, b"):
        pair_rows(df, "version", "3.1.0", "abababab")


def test_an_int8_request_that_ran_in_float_stays_on_the_int8_side():
    from harness.compare.pairing import pair_rows
    df = _rows(engine_version=["3.6.1"] * 3, precision=["fp32", "fp32", "int8"],
               precision_requested=["fp32", "int8", "int8"])
    pr = pair_rows(df, "precision", "fp32", "int8")
    sides = pr.rows.set_index("precision_requested")["_side"]
    assert sides.loc["fp32"] == 0 and set(sides.loc["int8"]) == {1}
