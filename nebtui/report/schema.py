"""The JSON report's schema (a JSON Schema subset) and a small validator for it.

The validator knows: type (one name or a list), properties, required,
additionalProperties (false), items, enum, minimum, and $ref to #/$defs/NAME.
"""

from __future__ import annotations

from typing import Any

NUMBER = {"type": "number"}
MAYBE_NUMBER = {"type": ["number", "null"]}
NUMBERS = {"type": "array", "items": NUMBER}
PAIR = {"type": "array", "items": {"type": "integer", "minimum": 0}}

SCHEMA: dict[str, Any] = {
    "$defs": {
        "metric": {
            "type": "object",
            "required": ["loss", "error", "split", "bn_recalibrated"],
            "additionalProperties": False,
            "properties": {
                "loss": NUMBER,
                "error": MAYBE_NUMBER,
                "split": {"enum": ["train", "test"]},
                "bn_recalibrated": {"type": "boolean"},
            },
        },
        "maybe_metric": {"type": ["object", "null"], "$ref": "#/$defs/metric"},
        "losses": {
            "type": ["object", "null"],
            "required": ["losses", "split", "bn_recalibrated"],
            "properties": {"losses": NUMBERS, "split": {"enum": ["train", "test"]}, "bn_recalibrated": {"type": "boolean"}},
        },
        "saddle": {
            "type": "object",
            "required": ["position", "train", "test"],
            "properties": {"position": NUMBER, "train": {"$ref": "#/$defs/metric"}, "test": {"$ref": "#/$defs/maybe_metric"},
                           "point": NUMBERS},
        },
    },
    "type": "object",
    "required": ["schema_version", "session", "minima", "paths", "mst", "bounds", "table1", "first_passage",
                 "timing", "analysis", "hessian", "slices", "ensembles"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"enum": [1]},
        "session": {
            "type": "object",
            "required": ["id", "lifecycle", "kind", "problem", "parameters", "pairs_finished", "bn_recalibrated"],
            "properties": {
                "id": {"type": "string"},
                "lifecycle": {"enum": ["created", "running", "paused", "stopped", "failed", "finished"]},
                "kind": {"enum": ["surface", "network"]},
                "problem": {"type": "string"},
                "parameters": {"type": "integer", "minimum": 1},
                "pairs_finished": {"type": "integer", "minimum": 1},
                "bn_recalibrated": {"type": "boolean"},
            },
        },
        "minima": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "name", "train", "test"],
                "properties": {"id": {"type": "integer", "minimum": 0}, "name": {"type": "string"},
                               "train": {"$ref": "#/$defs/metric"}, "test": {"$ref": "#/$defs/maybe_metric"},
                               "position": NUMBERS},
            },
        },
        "paths": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["a", "b", "in_mst", "pivots", "saddle", "linear_saddle", "profile", "linear", "history",
                             "seconds"],
                "properties": {
                    "a": {"type": "integer", "minimum": 0},
                    "b": {"type": "integer", "minimum": 0},
                    "in_mst": {"type": "boolean"},
                    "pivots": {"type": "integer", "minimum": 2},
                    "saddle": {"$ref": "#/$defs/saddle"},
                    "linear_saddle": {"$ref": "#/$defs/saddle"},
                    "profile": {
                        "type": "object",
                        "required": ["positions", "pivot_positions", "train", "test"],
                        "properties": {"positions": NUMBERS, "pivot_positions": NUMBERS,
                                       "train": {"$ref": "#/$defs/losses"}, "test": {"$ref": "#/$defs/losses"}},
                    },
                    "linear": {
                        "type": "object",
                        "required": ["positions", "train", "test"],
                        "properties": {"positions": NUMBERS, "train": {"$ref": "#/$defs/losses"},
                                       "test": {"$ref": "#/$defs/losses"}},
                    },
                    "history": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["restart", "cycle", "pivots", "saddle_energy", "positions", "losses", "split",
                                         "bn_recalibrated"],
                            "properties": {"cycle": {"type": "integer", "minimum": 1}, "saddle_energy": NUMBER,
                                           "positions": NUMBERS, "losses": NUMBERS, "split": {"enum": ["train"]}},
                        },
                    },
                    "seconds": MAYBE_NUMBER,
                },
            },
        },
        "mst": {
            "type": "array",
            "items": {"type": "object", "required": ["a", "b", "saddle_energy"],
                      "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "saddle_energy": NUMBER}},
        },
        "bounds": {"type": "array", "items": {"type": "array", "items": MAYBE_NUMBER}},
        "table1": {
            "type": "object",
            "required": ["train_loss_minima", "train_loss_saddles", "factor", "test_loss_minima", "test_loss_saddles",
                         "test_error_minima", "test_error_saddles", "test_error_difference", "bn_recalibrated", "splits"],
            "properties": {
                "train_loss_minima": NUMBER, "train_loss_saddles": NUMBER, "factor": MAYBE_NUMBER,
                "test_loss_minima": MAYBE_NUMBER, "test_loss_saddles": MAYBE_NUMBER,
                "test_error_minima": MAYBE_NUMBER, "test_error_saddles": MAYBE_NUMBER,
                "test_error_difference": MAYBE_NUMBER, "bn_recalibrated": {"type": "boolean"},
            },
        },
        "first_passage": {
            "type": "array",
            "items": {"type": "object", "required": ["minimum", "threshold", "step", "split"],
                      "properties": {"step": {"type": ["integer", "null"]}, "threshold": NUMBER}},
        },
        "timing": {
            "type": "object",
            "required": ["devices", "started", "last_event", "seconds", "pairs"],
            "properties": {"devices": {"type": "array", "items": {"type": "string"}}, "seconds": MAYBE_NUMBER,
                           "started": MAYBE_NUMBER, "last_event": MAYBE_NUMBER, "pairs": {"type": "object"}},
        },
        "analysis": {"type": "object", "required": ["device", "options"]},
        "hessian": {
            "type": ["object", "null"],
            "required": ["batch", "k", "near_zero_rule", "points", "tangent_curvature"],
            "properties": {
                "points": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["kind", "largest", "smallest", "near_zero", "negative", "method"],
                        "properties": {"kind": {"enum": ["minimum", "saddle"]}, "largest": NUMBERS, "smallest": NUMBERS,
                                       "near_zero": {"type": ["integer", "null"]}, "method": {"enum": ["dense", "lanczos"]}},
                    },
                },
                "tangent_curvature": {
                    "type": "array",
                    "items": {"type": "object", "required": ["pair", "positions", "curvature"],
                              "properties": {"pair": PAIR, "positions": NUMBERS, "curvature": NUMBERS}},
                },
            },
        },
        "slices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["pair", "plane", "split", "bn_recalibrated", "xs", "ys", "losses", "minima", "paths"],
                "properties": {"xs": NUMBERS, "ys": NUMBERS, "losses": {"type": "array", "items": NUMBERS},
                               "split": {"enum": ["train"]}},
            },
        },
        "ensembles": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["pair", "members", "positions", "member_accuracies", "path", "start", "end",
                             "pair_ensemble", "split", "bn_recalibrated"],
                "properties": {"path": NUMBER, "start": NUMBER, "end": NUMBER, "pair_ensemble": NUMBER,
                               "split": {"enum": ["test"]}},
            },
        },
    },
}

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def validate(instance: Any, schema: dict[str, Any] = SCHEMA) -> list[str]:
    """Every place where ``instance`` breaks ``schema``, as 'where: what' lines (empty: valid)."""
    problems: list[str] = []
    _check(instance, schema, schema, "$", problems)
    return problems


def _check(value: Any, rule: dict[str, Any], root: dict[str, Any], where: str, problems: list[str]) -> None:
    types = rule.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_TYPES[name](value) for name in names):
            problems.append(f"{where}: expected {' or '.join(names)}, got {type(value).__name__}")
            return
    if value is None and rule.get("type") is not None:
        return  # null allowed by type: nothing else applies
    if "$ref" in rule:
        name = rule["$ref"].removeprefix("#/$defs/")
        _check(value, root["$defs"][name], root, where, problems)
    if "enum" in rule and value not in rule["enum"]:
        problems.append(f"{where}: {value!r} is not one of {rule['enum']}")
    if "minimum" in rule and _TYPES["number"](value) and value < rule["minimum"]:
        problems.append(f"{where}: {value} is below the minimum {rule['minimum']}")
    if isinstance(value, dict):
        for key in rule.get("required", []):
            if key not in value:
                problems.append(f"{where}: missing {key!r}")
        properties = rule.get("properties", {})
        for key, item in value.items():
            if key in properties:
                _check(item, properties[key], root, f"{where}.{key}", problems)
            elif rule.get("additionalProperties") is False:
                problems.append(f"{where}: unexpected {key!r}")
    if isinstance(value, list) and "items" in rule:
        for i, item in enumerate(value):
            _check(item, rule["items"], root, f"{where}[{i}]", problems)
