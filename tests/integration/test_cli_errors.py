"""The command line's user errors: one line, exit code 2, naming the flag the user typed and the
rejected value, before any model loads or any run starts; options the chosen dataset does not use
are refused; a missing dataset file says so; layers out of range are refused from the model's
config, before its weights load. Each case for ``experts``, ``describe``, ``rank`` (and their
``submit`` twins, which build the same job before any request)."""

import pytest
from click.testing import CliRunner

from neuroscribe.service.cli import cli
from tiny_models import tiny_model_dir

TSV = "text\tlabel\n" + "".join(f"a good phone number {i}\t1\na bad phone number {i}\t0\n" for i in range(6))
TXT = "".join(f"a good phone number {i}\t1\na bad phone number {i}\t0\n" for i in range(6))


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture()
def no_work(monkeypatch):
    """Fail loudly if weights load, a generator is made, a run starts or a request is sent."""
    import transformers

    import neuroscribe.service.cli_service as cli_service
    import neuroscribe.service.describe.embedded as describe_embedded
    import neuroscribe.service.experts.embedded as experts_embedded
    import neuroscribe.service.rank.embedded as rank_embedded
    import neuroscribe.service.runtime as runtime
    import neuroscribe.workers.activations as activations
    import neuroscribe.workers.activations.loading as loading

    def boom(what):
        def fn(*a, **k):
            raise AssertionError(f"{what} although the input is wrong")
        return fn

    monkeypatch.setattr(activations, "load_subject_model", boom("weights loaded"))
    monkeypatch.setattr(loading, "load_subject_model", boom("weights loaded"))
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", boom("weights loaded"))
    monkeypatch.setattr(runtime, "load_subject", boom("weights loaded"))
    monkeypatch.setattr(runtime, "make_generator", boom("a generator made"))
    monkeypatch.setattr(cli_service, "submit_and_print", boom("a job submitted"))
    return {"experts": experts_embedded, "describe": describe_embedded, "rank": rank_embedded}


@pytest.fixture()
def no_run(no_work, monkeypatch):
    """... and if a run starts at all (the errors below are found while building the job)."""
    for kind, module in no_work.items():
        monkeypatch.setattr(module, f"run_{kind}_job", lambda *a, **k: pytest.fail("a run started"))


def _error(args, tmp_path):
    out = [] if args[0] == "submit" else ["--out", str(tmp_path / "o")]
    r = CliRunner().invoke(cli, [*args, *out], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.stderr.splitlines() if line.startswith("neuroscribe: error:")]
    assert len(lines) == 1 and r.stderr.rstrip().endswith(lines[0]), r.stderr
    assert not (tmp_path / "o").exists()
    return lines[0].removeprefix("neuroscribe: error: ")


def _submit(args):
    return ["submit", *args, "--url", "http://127.0.0.1:9"]


# ----------------------------------------------------------- 1. options the dataset does not use


@pytest.mark.parametrize("cmd", ["describe", "rank"])
@pytest.mark.parametrize("submit", [False, True])
@pytest.mark.parametrize("flag, value, fixed", [("--label-col", "stars", "its labels are fixed"),
                                                ("--text-col", "review", "its sentences are fixed")])
def test_a_column_for_the_packaged_dataset_is_refused(tmp_path, no_run, cmd, submit, flag, value, fixed):
    args = [cmd, "--dataset", "amazon", flag, value]
    line = _error(_submit(args) if submit else args, tmp_path)
    assert line == f"{flag}: {value!r} is not used by the packaged dataset 'amazon' ({fixed}); remove it"


def test_a_word_column_for_the_packaged_dataset_is_refused(tmp_path, no_run):
    line = _error(["rank", "--dataset", "amazon", "--word-col", "word"], tmp_path)
    assert line == "--word-col: 'word' is not used by the packaged dataset 'amazon' (it has no target words); remove it"


@pytest.mark.parametrize("cmd, flag", [("describe", "--text-col"), ("describe", "--label-col"), ("rank", "--text-col"),
                                       ("rank", "--label-col"), ("rank", "--word-col")])
def test_a_column_for_a_txt_file_is_refused(tmp_path, no_run, cmd, flag):
    f = tmp_path / "s.txt"
    f.write_text(TXT)
    line = _error([cmd, "--dataset", str(f), flag, "label"], tmp_path)
    assert line.startswith(f"{flag}: 'label' is not used by a .txt file (s.txt: ") and line.endswith("remove it")


@pytest.mark.parametrize("cmd", ["describe", "rank"])
def test_columns_of_a_table_still_work(tmp_path, no_work, monkeypatch, cmd):
    """The defaults (text, label for rank) and named columns of a .tsv are read as before."""
    seen = []
    monkeypatch.setattr(no_work[cmd], f"run_{cmd}_job", lambda job, *a, **k: seen.append(job))
    f = tmp_path / "d.tsv"
    f.write_text(TSV.replace("text\tlabel", "review\tstars"))
    args = [cmd, "--dataset", str(f), "--text-col", "review", "--label-col", "stars", "--out", str(tmp_path / "o")]
    assert CliRunner().invoke(cli, args, catch_exceptions=False).exit_code == 0
    g = tmp_path / "e.tsv"
    g.write_text(TSV)
    assert CliRunner().invoke(cli, [cmd, "--dataset", str(g), "--out", str(tmp_path / "o")]).exit_code == 0
    assert seen[0].dataset.texts == seen[1].dataset.texts and len(seen[0].dataset.texts) == 12
    assert seen[1].dataset.labels == (None if cmd == "describe" else seen[0].dataset.labels)


# ------------------------------------------------------------------ 2. a dataset that does not exist


@pytest.mark.parametrize("cmd", ["describe", "rank", "submit describe", "submit rank"])
def test_a_missing_dataset_file_says_it_does_not_exist(tmp_path, no_run, cmd):
    missing = tmp_path / "nonexistent"
    args = [*cmd.split(), "--dataset", str(missing)] + (["--url", "http://127.0.0.1:9"] if "submit" in cmd else [])
    assert _error(args, tmp_path) == (f"--dataset: {str(missing)!r} does not exist "
                                      "(give a .txt, .tsv, .csv or .jsonl file, or 'amazon')")
    assert _error([*args[:-2], "--dataset", str(tmp_path)] if "submit" not in cmd else
                  [*cmd.split(), "--dataset", str(tmp_path), "--url", "http://127.0.0.1:9"], tmp_path).startswith(
        f"--dataset: {str(tmp_path)!r} is a folder (give a .txt")


# ---------------------------------------------------- 3. the flag as typed and the rejected value

EXPERTS = ["experts", "--concept", "cat", "--generator", "fake"]


@pytest.mark.parametrize("extra, expected", [
    (["--tau", "1.5"], "--tau: 1.5 is not accepted: Input should be less than or equal to 1"),
    (["--tau", "0"], "--tau: 0 is not accepted: Input should be greater than 0"),
    (["--n-pos", "0"], "--n-pos: 0 is not accepted: Input should be greater than or equal to 1"),
    (["--n-neg", "0"], "--n-neg: 0 is not accepted: Input should be greater than or equal to 1"),
    (["--top-n", "0"], "--top-n: 0 is not accepted: "),
    (["--rounds", "0"], "--rounds: 0 is not accepted: "),
    (["--folds", "100"], "--folds: 100 is not accepted: Input should be less than or equal to 50"),
    (["--n-pos", "2"], "--folds: 3 is not accepted: 3 folds need at least 3 positives"),
    (["--stability-tau", "0.5", "--stability-tau", "2"], "--stability-tau: 0.5, 2 is not accepted: every tau"),
    (["--stability-repeats", "1"], "--stability-repeats: 1 is not accepted: "),
    (["--causal", "--causal-random", "0"], "--causal-random: 0 is not accepted: "),
    (["--layers", "x"], "--layers: 'x' is not a list of layer numbers like 0,2-4"),
    (["--layers", "3-1"], "--layers: '3-1' is a reversed range (write 1-3)"),
    (["--temperature", "9"], "--temperature: 9 is not accepted: Input should be less than or equal to 5"),
    (["--max-new-tokens", "0"], "--max-new-tokens: 0 is not accepted: "),
    (["--gen-batch-size", "0"], "--gen-batch-size: 0 is not accepted: "),
    (["--generator", "nonsense!"], "--generator: generator spec 'nonsense!' is not BACKEND[:MODEL][@BASE_URL]"),
    (["--generator", "openai:x"], "--generator: 'openai:x' is not accepted: backend 'openai' needs base_url"),
    (["--batch-size", "0"], "--batch-size: 0 is not accepted: "),
    (["--max-length", "1"], "--max-length: 1 is not accepted: "),
    (["--model", ""], "--model: '' is not accepted: "),
    (["--seed", "-1"], "--seed: -1 is not accepted: "),
    (["--concept", "cat"], "--concept: 'cat', 'cat' is not accepted: concepts must be unique"),
    (["--men-concepts", "0"], "--men-concepts: 0 is not accepted: must be >= 1"),
])
@pytest.mark.parametrize("submit", [False, True])
def test_experts_errors_name_the_flag_and_the_value(tmp_path, no_run, extra, expected, submit):
    args = EXPERTS + extra
    assert _error(_submit(args) if submit else args, tmp_path).startswith(expected)


def test_experts_file_errors_name_the_option_and_the_line(tmp_path, no_run):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "concept": "cat", "label": 1}\n{not json\n')
    assert _error(["experts", "--sentences", str(bad)], tmp_path).startswith(f"--sentences: {bad}:2: not valid JSON")
    assert _error(["experts", "--concept", "cat", "--sentences", str(tmp_path / "no.jsonl")],
                  tmp_path).startswith("--sentences: file not found")


@pytest.mark.parametrize("extra, expected", [
    (["--top-percent", "0"], "--top-percent: 0 is not accepted: Input should be greater than 0"),
    (["--threshold", "101"], "--threshold: 101 is not accepted: "),
    (["--fdr", "1"], "--fdr: 1 is not accepted: "),
    (["--k", "0"], "--k: 0 is not accepted: every K must be >= 1"),
    (["--k", "2", "--k", "0"], "--k: 2, 0 is not accepted: every K must be >= 1"),
    (["--label-name", "1"], "--label-name: '1' is not LABEL=NAME (e.g. 1=positive)"),
    (["--label-name", "7=x"], "--label-name: '7=x' is not accepted: ['7'] are not labels of the dataset"),
    (["--min-cluster-size", "1"], "--min-cluster-size: 1 is not accepted: "),
    (["--min-samples", "0"], "--min-samples: 0 is not accepted: "),
    (["--reduce-to", "1"], "--reduce-to: 1 is not accepted: "),
    (["--layers", "x"], "--layers: 'x' is not a list of layer numbers"),
    (["--generator", "nonsense!"], "--generator: generator spec 'nonsense!' is not BACKEND"),
    (["--gen-batch-size", "0"], "--gen-batch-size: 0 is not accepted: "),
    (["--max-length", "1"], "--max-length: 1 is not accepted: "),
])
@pytest.mark.parametrize("submit", [False, True])
def test_describe_errors_name_the_flag_and_the_value(tmp_path, no_run, extra, expected, submit):
    args = ["describe", "--dataset", "amazon", *extra]
    assert _error(_submit(args) if submit else args, tmp_path).startswith(expected)


@pytest.mark.parametrize("extra, expected", [
    (["--k", "0"], "--k: 0 is not accepted: every k must be >= 1"),
    (["--n-random", "0"], "--n-random: 0 is not accepted: Input should be greater than or equal to 1"),
    (["--beta", "0"], "--beta: 0 is not accepted: "),
    (["--max-examples", "1"], "--max-examples: 1 is not accepted: "),
    (["--modes", "zero,magic"], "--modes: 'zero,magic' is not accepted: "),
    (["--seeds", "1"], "--seeds: 1 is not accepted: "),
    (["--rank-fraction", "0"], "--rank-fraction: 0 is not accepted: "),
    (["--layer", "-1"], "--layer: -1 is not accepted: "),
    (["--methods", "linear,magic"], "--methods: 'linear,magic' is not accepted: unknown ['magic']"),
    (["--continuation", "1=x"], "--continuation: '1=x' is not accepted: must name every label ['0', '1']"),
    (["--label-text", "nope"], "--label-text: 'nope' is not LABEL=TEXT"),
    (["--batch-size", "0"], "--batch-size: 0 is not accepted: "),
])
@pytest.mark.parametrize("submit", [False, True])
def test_rank_errors_name_the_flag_and_the_value(tmp_path, no_run, extra, expected, submit):
    args = ["rank", "--dataset", "amazon", *extra]
    assert _error(_submit(args) if submit else args, tmp_path).startswith(expected)


def test_dataset_rows_and_labels_name_the_option(tmp_path, no_run):
    f = tmp_path / "d.tsv"
    f.write_text("text\tlabel\nfine\t1\n \t0\n")
    assert _error(["describe", "--dataset", str(f)], tmp_path) == f"--dataset: {f}:3: empty text"
    g = tmp_path / "one.tsv"
    g.write_text("text\tlabel\n" + "a\t1\n" * 12)
    assert _error(["rank", "--dataset", str(g)], tmp_path).startswith(f"--dataset: {g}: the label column has a single")
    assert _error(["rank", "--dataset", str(g), "--label-col", "label"], tmp_path).startswith(
        "--label-col: 'label' is not accepted: ")


# ----------------------------------------------- 4. layers out of range, from the config, before weights


@pytest.mark.parametrize("model, n_layers", [("minilm", 6), ("tiny-bert", 2)])
def test_layers_out_of_range_are_refused_before_the_weights_load(tmp_path, no_work, model, n_layers):
    model = str(tiny_model_dir("bert")) if model == "tiny-bert" else model
    bad = str(n_layers + 3)
    line = _error([*EXPERTS, "--model", model, "--layers", bad], tmp_path)
    assert line == f"--layers: {bad!r} is not accepted: [{bad}] out of range: the model has layers 0..{n_layers - 1}"
    line = _error(["describe", "--dataset", "amazon", "--generator", "fake", "--model", model, "--layers", f"0-{bad}"],
                  tmp_path)
    assert line.startswith(f"--layers: '0-{bad}' is not accepted: ") and f"0..{n_layers - 1}" in line, line
    line = _error(["rank", "--dataset", "amazon", "--model", model, "--layer", bad], tmp_path)
    assert line == f"--layer: {bad} is not accepted: {bad} is out of range: the model has layers 0..{n_layers - 1}"
