"""The pipeline from Python: equal to the Rust tool's, with Python stages swapped in."""

import json
import subprocess

import numpy as np
import pytest

import g3rs
from conftest import QUERY_IMAGES, photo


@pytest.fixture(scope="module")
def settings(photo_database, g3_checkpoint, clip_directory):
    return {
        "models.clip": str(clip_directory),
        "models.g3_checkpoint": str(g3_checkpoint),
        "database": photo_database,
    }


@pytest.fixture(scope="module")
def queries():
    return [photo(name) for name in QUERY_IMAGES]


def test_predictions_equal_the_rust_tool(settings, queries, g3_binary):
    predictions = g3rs.Pipeline("g3", settings=settings).locate(queries)
    command = [g3_binary, "-q", "locate", "--preset", "g3", "--json", "--no-place-names"]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    output = subprocess.run(command + [str(p) for p in queries], check=True, capture_output=True, text=True)
    from_tool = json.loads(output.stdout)
    from_tool = from_tool if isinstance(from_tool, list) else from_tool["predictions"]
    assert len(predictions) == len(from_tool) == len(queries)
    for prediction, expected in zip(predictions, from_tool):
        expected = expected.get("prediction", expected)
        assert prediction.to_dict()["location"] == expected["location"]
        assert prediction.chosen == expected["chosen"]
        assert [c.score for c in prediction.candidates] == pytest.approx(
            [c["score"] for c in expected["candidates"]]
        )


class Northernmost:
    """A verifier preferring the candidate farthest north."""

    def __init__(self, sign=1.0):
        self.sign = sign
        self.queries = []

    def score(self, query, candidates):
        self.queries.append(query)
        return [self.sign * candidate.latitude for candidate in candidates]


def test_a_python_verifier_chooses_the_prediction(settings, queries):
    north, south = Northernmost(1.0), Northernmost(-1.0)
    northern = g3rs.Pipeline("g3", settings=settings, verifier=north).locate(queries)
    southern = g3rs.Pipeline("g3", settings=settings, verifier=south).locate(queries)
    for prediction in northern:
        latitudes = [c.latitude for c in prediction.candidates]
        assert prediction.latitude == max(latitudes)
        assert [c.score for c in prediction.candidates] == pytest.approx(latitudes)
    for prediction in southern:
        assert prediction.latitude == min(c.latitude for c in prediction.candidates)
    assert any(n.location != s.location for n, s in zip(northern, southern))
    # The verifier saw each photo with its embedding and neighbours.
    query = north.queries[0]
    assert query.image_id == str(photo(QUERY_IMAGES[0]))
    assert query.embedding is not None and query.embedding.dtype == np.float32
    assert query.neighbors.locations.shape[1] == 2
    assert query.image_bytes == photo(QUERY_IMAGES[0]).read_bytes()


class OnePrompt:
    def __init__(self):
        self.seen = []

    def references_needed(self):
        return (3, 2)

    def prompts(self, similar, dissimilar):
        self.seen.append((similar.locations.shape, dissimilar.locations.shape))
        return [{"text": "Where is this? Answer as latitude, longitude.", "samples": 2}, "And again?"]


class Rome:
    def generate(self, image_id, image_bytes, prompts):
        assert image_bytes[:2] in (b"\xff\xd8", b"\x89P")
        return [["41.9028, 12.4964"] * prompt["samples"] for prompt in prompts]


def test_a_python_prompt_ensemble_and_generator_fill_the_pool(settings, queries):
    ensemble = OnePrompt()
    pipeline = g3rs.Pipeline("g3", settings=settings, prompt_ensemble=ensemble, generator=Rome())
    (prediction,) = pipeline.locate(queries[:1])
    assert ensemble.seen == [((3, 2), (2, 2))]
    generated = [c for c in prediction.candidates if c.source["kind"] == "generated"]
    # The second prompt, a plain string, gets the default 5 samples.
    assert len(generated) == 2 + 5
    assert {c.location for c in generated} == {(41.9028, 12.4964)}
    assert {c.source["prompt_index"] for c in generated} == {0, 1}


class Failing:
    def score(self, query, candidates):
        raise ValueError(f"cannot score {query.image_id}")


class Short:
    def score(self, query, candidates):
        return [1.0]


def test_python_exceptions_come_back_as_themselves(settings, queries):
    pipeline = g3rs.Pipeline("g3", settings=settings, verifier=Failing())
    with pytest.raises(ValueError, match="cannot score .*landscape.jpg"):
        pipeline.locate(queries)
    outcomes = pipeline.locate_each(queries)
    assert [type(outcome) for outcome in outcomes] == [ValueError] * len(queries)
    with pytest.raises(ValueError, match="returned 1 scores"):
        g3rs.Pipeline("g3", settings=settings, verifier=Short()).locate(queries[:1])
    with pytest.raises(TypeError, match="score"):
        g3rs.Pipeline("g3", settings=settings, verifier=object())
    with pytest.raises(TypeError, match="needs a method `prompts`"):
        g3rs.Pipeline("g3", settings=settings, prompt_ensemble=Northernmost())
    # kNN asks no LMM: stages for one would never be called.
    with pytest.raises(ValueError, match="generation.enabled"):
        g3rs.Pipeline("knn", settings=settings, generator=Rome())


def test_configuration_errors_raise_the_library_message(settings, tmp_path):
    with pytest.raises(g3rs.G3Error, match="no preset named"):
        g3rs.Pipeline("g4")
    with pytest.raises(g3rs.G3Error, match="nothing.db"):
        g3rs.Pipeline("g3", settings={**settings, "database": tmp_path / "nothing.db"})
    config = tmp_path / "bad.toml"
    config.write_text('preset = "knn"\n[pool]\nretrieved_candidates = "many"\n')
    with pytest.raises(g3rs.G3Error, match="bad.toml"):
        g3rs.Pipeline(config=config)
