import pytest

from vla_ros.transport.params import Param, ParameterError, load_yaml_params, parse_overrides, validate

SPECS = [
    Param("rate", "float", 30.0, "Hz", min=0.1),
    Param("mode", "str", "a", "mode", choices=("a", "b")),
    Param("keys", "str[]", [], "keys"),
    Param("on", "bool", False, "switch"),
    Param("n", "int", 3, "count"),
]


def test_defaults_and_coercion():
    p = validate("node", SPECS, {"rate": "15", "keys": "x,y", "on": "true", "n": 4.0})
    assert p.rate == 15.0 and p.keys == ["x", "y"] and p.on is True and p.n == 4 and p.mode == "a"
    assert validate("node", SPECS, {"keys": "['a', 'b']"}).keys == ["a", "b"]


@pytest.mark.parametrize("raw, needle", [
    ({"rate": 0.0}, "'rate' = 0.0 must be >= 0.1"),
    ({"mode": "c"}, "'mode' = 'c' must be one of a, b"),
    ({"n": "x"}, "'n' = 'x' is invalid"),
    ({"on": "maybe"}, "expected true or false"),
    ({"rate": "nan"}, "finite"),
    ({"bogus": 1}, "unknown parameter(s) bogus"),
])
def test_invalid_values_name_the_parameter(raw, needle):
    with pytest.raises(ParameterError) as e:
        validate("my_node", SPECS, raw)
    assert needle in str(e.value) and "my_node" in str(e.value)


def test_ros_yaml_and_overrides(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("/**:\n  ros__parameters:\n    rate: 10.0\nmy_node:\n  ros__parameters:\n    mode: b\n"
                 "other:\n  ros__parameters:\n    mode: a\n")
    raw = load_yaml_params(f, "my_node")
    assert raw == {"rate": 10.0, "mode": "b"}
    assert parse_overrides(["rate:=5", "keys:=[a, b]", "mode:=b"]) == {"rate": 5, "keys": ["a", "b"], "mode": "b"}
    with pytest.raises(ParameterError, match="name:=value"):
        parse_overrides(["rate=5"])
    with pytest.raises(ParameterError, match="not found"):
        load_yaml_params(tmp_path / "none.yaml", "my_node")
