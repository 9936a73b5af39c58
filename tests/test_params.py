"""Reading params: nested lookups and the YAML 1.2 float form DVC writes."""

from divwrite.core.params import get_param, has_param, parse_yaml

PARAMS = {"dpo": {"beta": 0.1, "ref": None}, "train": {"methods": {"sft": {"init": "base"}}}}


def test_nested_lookups():
    assert get_param(PARAMS, "dpo.beta") == 0.1
    assert get_param(PARAMS, "train.methods.sft.init") == "base"
    assert get_param(PARAMS, "dpo.gamma") is None and get_param(PARAMS, "dpo.beta.x", 7) == 7
    assert has_param(PARAMS, "dpo.ref")  # present, even though its value is None
    assert not has_param(PARAMS, "dpo.gamma") and not has_param(PARAMS, "seed")


def test_parse_yaml_reads_dvc_floats_as_numbers():
    doc = parse_yaml("lr: 5e-06\nb: 1.0e-4\nn: 10\ns: abc\nflag: true\n")
    assert doc == {"lr": 5e-06, "b": 1e-4, "n": 10, "s": "abc", "flag": True}
    assert isinstance(doc["lr"], float)
