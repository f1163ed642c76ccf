"""``FOLDER:SPLIT``: one split of a local ``datasets.save_to_disk`` folder, as ``hf:NAME:SPLIT``
reads one of a hub dataset (issue 20 part 4)."""

import pytest

from prefaudit.io import LoadError, load
from prefaudit.io.readers import detect_file_type, split_suffix

datasets = pytest.importorskip("datasets")


def _conversation(question, good, bad):
    """A row as TRL's vision DPO datasets hold it (HuggingFaceH4/rlaif-v_formatted)."""
    return {
        "prompt": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}
        ],
        "chosen": [{"role": "assistant", "content": [{"type": "text", "text": good}]}],
        "rejected": [{"role": "assistant", "content": [{"type": "text", "text": bad}]}],
    }


TRAIN = [
    _conversation("What colour is the bus?", "Yellow.", "Blue."),
    _conversation("How many dogs are there?", "Two.", "Five."),
]
TEST = [
    _conversation("Is it raining?", "No, the street is dry.", "Yes."),
    {**_conversation("Who won?", "", ""), "chosen": None},  # a row with no chosen
]


@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    """A DatasetDict folder with train and test_prefs splits."""
    folder = tmp_path_factory.mktemp("data") / "prefs"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(TRAIN),
            "test_prefs": datasets.Dataset.from_list(TEST),
        }
    ).save_to_disk(str(folder))
    return folder


def test_folder_colon_split_reads_that_split(prefs):
    data = load(f"{prefs}:test_prefs")
    assert data.report.file_type == "hf_disk" and data.report.shape == "conversational"
    assert data.pairs[["prompt", "chosen", "rejected"]].values.tolist() == [
        ["Is it raining?", "No, the street is dry.", "Yes."]
    ]
    # A rejected row names the input as given and its record number.
    (issue,) = data.report.rejected
    assert (issue.file, issue.unit, issue.line, issue.field) == (
        f"{prefs}:test_prefs",
        "record",
        2,
        "chosen",
    )
    assert not any("has splits" in note for note in data.report.notes)


def test_a_folder_alone_reads_train_and_says_so(prefs):
    data = load(str(prefs))
    assert data.pairs["chosen"].tolist() == ["Yellow.", "Two."]
    assert data.report.notes[0] == (
        f"{prefs}: has splits train, test_prefs; read 'train' (FOLDER:SPLIT reads another)"
    )


def test_a_split_the_folder_lacks_names_those_it_has(prefs, tmp_path, capsys):
    with pytest.raises(LoadError) as caught:
        load(f"{prefs}:test")
    assert (
        str(caught.value) == f"{prefs}:test: no split 'test'; the folder has 'train', 'test_prefs'"
    )

    from prefaudit.cli import main

    assert main(["audit", f"{prefs}:test", "--out", str(tmp_path / "o")]) == 2
    assert "no split 'test'; the folder has 'train', 'test_prefs'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_split_of_a_single_dataset_or_of_a_file_is_refused(tmp_path):
    one = tmp_path / "one"
    datasets.Dataset.from_list(TRAIN).save_to_disk(str(one))
    with pytest.raises(
        LoadError, match="holds one dataset, without splits; give it without ':train'"
    ):
        load(f"{one}:train")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("{}\n")
    with pytest.raises(LoadError, match=r"pairs.jsonl is a file: give it without ':train'"):
        load(f"{pairs}:train")


def test_a_path_that_exists_as_given_wins(tmp_path):
    odd = tmp_path / "run:2"  # a folder whose name has a colon, beside a folder named "run"
    datasets.Dataset.from_list(TRAIN[:1]).save_to_disk(str(odd))
    datasets.DatasetDict({"2": datasets.Dataset.from_list(TRAIN)}).save_to_disk(
        str(tmp_path / "run")
    )
    assert split_suffix(str(odd)) == (str(odd), None)
    assert len(load(str(odd)).pairs) == 1


def test_a_single_letter_before_the_colon_is_a_windows_drive(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    datasets.DatasetDict({"test": datasets.Dataset.from_list(TRAIN)}).save_to_disk("C")
    assert split_suffix("C:test") == ("C:test", None)
    assert split_suffix("./C:test") == ("./C", "test")
    assert len(load("./C:test").pairs) == 2
    with pytest.raises(LoadError, match="cannot tell the file type"):
        detect_file_type("C:test")


@pytest.mark.parametrize(
    "path",
    ["hf:org/name:test", "prefs:a/b", "prefs:", "missing:test", r"C:\data\prefs"],
)
def test_what_is_not_a_folder_and_split(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prefs").mkdir()
    assert split_suffix(path) == (path, None)


def test_an_evaluation_set_may_be_a_folder_split_too(prefs, tmp_path):
    """--against reads its prompts the same way (and is not refused as a missing file)."""
    import prefaudit

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        '{"prompt": "Is it raining?", "chosen": "No.", "rejected": "Yes."}\n'
        '{"prompt": "Name a prime.", "chosen": "Seven.", "rejected": "Nine."}\n'
    )
    result = prefaudit.audit(
        str(pairs), validators=["duplication"], against=f"{prefs}:test_prefs", embedding_model="off"
    )
    assert result.flags["duplication/leaked"].tolist() == [True, False]
