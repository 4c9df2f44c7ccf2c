"""Images: sources (folders, path tables, IDX, NPZ), bad files, preprocessing, nets, artifacts, CLI, estimator."""

from __future__ import annotations

import gzip
import io
import json
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import recorded_run
from PIL import Image

import deepmine
from deepmine.exceptions import ColumnError, ConfigError, DataError, DeepmineWarning
from deepmine.images.config import build_image_config
from deepmine.images.sources import load_images
from deepmine.images.task import fit_images
from deepmine.images.transforms import ImageSpec, decode, prepare_batch
from deepmine.nn.vision import build_layers

FAST = {
    "trainer.epochs": 6,
    "trainer.batch_size": 16,
    "trainer.progress": False,
    "trainer.checkpoint": False,
    "model.width": 8,
    "trainer.threads": 1,
}


def bars(n: int, size: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images with one bright horizontal ('h') or vertical ('v') bar at a random place, plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 40, (n, size, size)).astype(np.uint8)
    y = np.where(rng.random(n) < 0.5, "h", "v")
    for i in range(n):
        k = rng.integers(2, size - 2)
        if y[i] == "h":
            x[i, k, 1:-1] = 255
        else:
            x[i, 1:-1, k] = 255
    return x, y


def write_folder(root: Path, x: np.ndarray, y: np.ndarray, rgb_every: int = 0) -> Path:
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image)
        if rgb_every and i % rgb_every == 0:
            picture = picture.convert("RGB")
        picture.save(folder / f"{i:04d}.png")
    return root


def config(**extra):
    return build_image_config(None, {**FAST, **extra})


# ---- sources and bad files -----------------------------------------------------------------------------------
def test_corrupt_zero_byte_and_truncated_images_are_skipped_with_one_warning(tmp_path):
    x, y = bars(20)
    root = write_folder(tmp_path / "photos", x, y)
    (root / "h" / "zero.png").write_bytes(b"")
    good = (root / "v" / next(iter(sorted(p.name for p in (root / "v").iterdir())))).read_bytes()
    (root / "v" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "h" / "text.png").write_text("not an image")
    with pytest.warns(DeepmineWarning, match=r"skipped 3 of 23 images.*h/text.png \(not an image\).*zero bytes"):
        data = load_images(root)
    assert len(data) == 20 and not any("zero" in n or "truncated" in n for n in data.names)
    assert "v/truncated.png (damaged" in " ".join(data.skipped)


def test_strict_stops_at_the_first_unreadable_image(tmp_path):
    x, y = bars(6)
    root = write_folder(tmp_path / "photos", x, y)
    (root / "h" / "zero.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"zero.png' is zero bytes; .*drop --strict"):
        load_images(root, config(**{"images.strict": True}).images)


def test_folder_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"holds no images .*one sub-folder per class"):
        load_images(tmp_path / "empty")


def test_empty_class_folder_is_ignored_with_a_warning(tmp_path):
    x, y = bars(24)
    root = write_folder(tmp_path / "photos", x, y)
    (root / "unused").mkdir()
    with pytest.warns(DeepmineWarning, match=r"class folder\(s\) \['unused'\] hold no images"):
        predictor = fit_images(root, config(**{"trainer.epochs": 1}))
    assert predictor.classes == ["h", "v"]


def test_path_column_with_missing_files_skips_them_and_strict_refuses(tmp_path):
    x, y = bars(16)
    for i, image in enumerate(x):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    names = [f"{i}.png" for i in range(16)] + ["gone.png", "sub/also-gone.png"]
    table = pd.DataFrame({"file": names, "label": list(y) + ["h", "v"]})
    table.to_csv(tmp_path / "table.csv", index=False)
    with pytest.warns(
        DeepmineWarning, match=r"skipped 2 of 18 rows of .*table.csv \(column 'file'\).*gone.png \(missing\)"
    ):
        data = load_images(tmp_path / "table.csv", target="label")
    assert len(data) == 16 and data.names[:2] == ["0.png", "1.png"]  # paths relative to the table's folder
    assert list(data.labels) == list(y)
    with pytest.raises(DataError, match="gone.png' is missing"):
        load_images(tmp_path / "table.csv", config(**{"images.strict": True}).images, target="label")
    table.assign(file=["nowhere.png"] * len(table)).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="none of the 18 images"):
        load_images(tmp_path / "bad.csv", target="label")


def test_named_path_column_that_does_not_exist_suggests_one(tmp_path):
    pd.DataFrame({"file": ["a.png"], "label": ["x"]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ColumnError, match="did you mean 'file'"):
        load_images(tmp_path / "t.csv", config(**{"images.path_column": "files"}).images)


def test_idx_and_npz_sources_read_images_with_labels(tmp_path):
    x, _ = bars(5, size=6)
    labels = np.arange(5, dtype=np.uint8)
    header = struct.pack(">BBBB3I", 0, 0, 8, 3, 5, 6, 6)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(header + x.tobytes())
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(struct.pack(">BBBBI", 0, 0, 8, 1, 5) + labels.tobytes())
    data = load_images(tmp_path / "train-images-idx3-ubyte.gz")
    assert data.array.shape == (5, 6, 6, 1) and np.array_equal(data.array[..., 0], x)
    assert list(data.labels) == list(range(5))
    np.savez(tmp_path / "d.npz", x=np.stack([x] * 3, axis=-1), y=labels)
    npz = load_images(tmp_path / "d.npz")
    assert npz.array.shape == (5, 6, 6, 3) and list(npz.labels) == list(range(5))
    np.savez(tmp_path / "odd.npz", pixels=x)
    with pytest.raises(DataError, match=r"no image array named .* it holds \['pixels'\]"):
        load_images(tmp_path / "odd.npz")
    np.savez(tmp_path / "short.npz", x=x, y=labels[:4])
    with pytest.raises(DataError, match=r"short.npz: labels must be 1-D with one value per image \(5\)"):
        load_images(tmp_path / "short.npz")


# ---- preprocessing ---------------------------------------------------------------------------------------------
def test_mixed_grayscale_and_rgb_follow_the_majority(tmp_path):
    x, y = bars(20)
    gray_root = write_folder(tmp_path / "mostly-gray", x, y, rgb_every=4)  # 5 of 20 saved as RGB
    predictor = fit_images(gray_root, config(**{"trainer.epochs": 1}))
    assert predictor.spec.channels == 1 and not predictor.spec.flip  # gray: no flips by default
    rgb_root = write_folder(tmp_path / "mostly-rgb", x, y, rgb_every=1)
    Image.fromarray(x[0]).save(rgb_root / "h" / "gray-one.png")
    predictor = fit_images(rgb_root, config(**{"trainer.epochs": 1}))
    assert predictor.spec.channels == 3 and predictor.spec.flip
    assert predictor.predict_proba(gray_root).shape == (20, 2)  # gray images converted to RGB for prediction


def test_sixteen_bit_gray_images_are_scaled_to_eight_bits_not_clipped(tmp_path):
    from deepmine.images.transforms import decode

    dark = (np.arange(144).reshape(12, 12) % 60).astype(np.uint16) * 257  # 16-bit values of 0..59 in 8 bits
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    assert Image.open(tmp_path / "dark16.png").mode.startswith("I;16")
    for channels in (1, 3):
        pixels = decode(tmp_path / "dark16.png", channels, 12, 12, "pad")
        np.testing.assert_array_equal(pixels[..., 0], dark // 257)  # Pillow alone would clip them to 255
    Image.fromarray(np.full((12, 12), 200 * 257, np.uint16)).save(tmp_path / "bright.png")
    Image.fromarray(np.full((12, 12), 200, np.uint16)).save(tmp_path / "faint.png")  # dim, but 16-bit all the same
    assert decode(tmp_path / "bright.png", 1, 12, 12, "pad").max() == 200
    assert decode(tmp_path / "faint.png", 1, 12, 12, "pad").max() == 1  # one scale for every 16-bit image


def test_mixed_sizes_resize_to_the_most_common_with_pad_or_crop(tmp_path):
    wide = np.full((10, 20), 255, np.uint8)  # a white 20x10 (w x h) rectangle
    Image.fromarray(wide).save(tmp_path / "wide.png")
    padded = decode(tmp_path / "wide.png", 1, 16, 16, "pad")[..., 0]
    assert padded.shape == (16, 16)
    assert padded[0].max() == 0 and padded[-1].max() == 0 and padded[8].min() == 255  # black bars top/bottom
    cropped = decode(tmp_path / "wide.png", 1, 16, 16, "crop")[..., 0]
    assert cropped.min() == 255  # covers the square, no padding
    x, y = bars(40, size=12)
    root = write_folder(tmp_path / "photos", x, y)
    Image.fromarray(np.zeros((30, 18), np.uint8)).save(root / "h" / "odd-size.png")
    predictor = fit_images(root, config(**{"trainer.epochs": 1}))
    assert (predictor.spec.height, predictor.spec.width) == (12, 12)


def test_shift_augmentation_moves_pixels_and_depends_only_on_the_generator():
    spec = ImageSpec(5, 5, 1, "pad", [0.0], [1.0], True, 1, False, 0.0)
    image = torch.zeros(1, 5, 5, 1, dtype=torch.uint8)
    image[0, 2, 2, 0] = 255
    outs = [prepare_batch(image.repeat(64, 1, 1, 1), spec, torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    centres = {tuple(torch.nonzero(o[0] > 0.5)[0].tolist()) for o in outs[0]}
    assert centres <= {(r, c) for r in (1, 2, 3) for c in (1, 2, 3)} and len(centres) > 3
    plain = prepare_batch(image, spec, None)
    assert plain[0, 0, 2, 2] == 1.0 and plain.sum() == 1.0  # no augmentation without a generator


# ---- networks ---------------------------------------------------------------------------------------------------
def test_layer_list_builds_exactly_the_requested_net():
    text = "conv(32,3) -> maxpool(2) -> conv(64,3) -> maxpool(2) -> conv(64,3) -> flatten -> dense(64) -> dense(10)"
    net = build_layers(text, 1, 28, 28, 10)
    kinds = [type(m).__name__ for m in net]
    assert kinds == [
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "Conv2d",
        "ReLU",
        "Flatten",
        "Linear",
        "ReLU",
        "Linear",
    ]
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 32, (3, 3)),
        (32, 64, (3, 3)),
        (64, 64, (3, 3)),
    ]
    assert net[9].in_features == 576 and net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert sum(p.numel() for p in net.parameters()) == 93322  # the Keras classic's parameter count


def test_layer_list_errors_name_the_problem():
    with pytest.raises(ConfigError, match=r"must end with dense\(10\)"):
        build_layers(["conv(8,3)", "flatten", "dense(5)"], 1, 28, 28, 10)
    with pytest.raises(ConfigError, match="unknown layer 'convv'.*did you mean 'conv'"):
        build_layers(["convv(8,3)", "flatten", "dense(10)"], 1, 28, 28, 10)
    with pytest.raises(ConfigError, match="shrinks to nothing"):
        build_layers(["conv(8,5)", "maxpool(2)", "conv(8,5)", "flatten", "dense(10)"], 1, 8, 8, 10)
    with pytest.raises(ConfigError, match="dense at position 2 needs flatten"):
        build_layers(["conv(8,3)", "dense(10)"], 1, 8, 8, 10)


# ---- training, artifacts, determinism -----------------------------------------------------------------------------
def test_learns_bars_and_round_trips_through_a_fresh_process(tmp_path):
    x, y = bars(160, seed=1)
    predictor = fit_images(x, config(), labels=y)
    test_x, test_y = bars(60, seed=2)
    assert predictor.evaluate(test_x, test_y)["accuracy"] >= 0.9
    predictor.save(tmp_path / "model")
    manifest = json.loads((tmp_path / "model" / "deepmine.json").read_text())
    assert manifest["kind"] == "image" and manifest["classes"] == ["h", "v"]
    np.save(tmp_path / "x.npy", test_x)
    script = (
        "import sys, numpy as np, deepmine\n"
        f"p = deepmine.load({str(tmp_path / 'model')!r})\n"
        f"np.save({str(tmp_path / 'proba.npy')!r}, p.predict_proba(np.load({str(tmp_path / 'x.npy')!r})))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), predictor.predict_proba(test_x))


def test_a_folder_trained_model_evaluates_a_table_by_its_column_of_classes(tmp_path):
    x, y = bars(40, seed=1)
    root = write_folder(tmp_path / "photos", x, y)
    predictor = fit_images(root, config(**{"trainer.epochs": 1}))
    assert predictor.config.columns.target is None  # class folders name no target column
    files = sorted(root.rglob("*.png"))
    table = pd.DataFrame({"file": [str(p) for p in files], "kind": [p.parent.name for p in files]})
    table.loc[3, "kind"] = None
    table.to_csv(tmp_path / "test.csv", index=False)
    with pytest.warns(DeepmineWarning, match=r"dropping 1 row\(s\) with no value in label column 'kind'"):
        scores = predictor.evaluate(tmp_path / "test.csv")
    assert scores["rows"] == 39 and np.sum(scores["confusion_matrix"]) == 39
    assert scores["accuracy"] == predictor.evaluate(table.drop(index=3).reset_index(drop=True))["accuracy"]
    table["label"] = table.pop("kind").fillna("h").where(table.index != 0, "diagonal")
    with pytest.raises(DataError, match=r"label\(s\) \['diagonal'\] the model was not trained on"):
        predictor.evaluate(table)  # a column named like labels, with a class never trained on


def test_same_seed_same_predictions_other_seed_differs():
    x, y = bars(64, seed=3)
    probas = [fit_images(x, config(seed=s, **{"trainer.epochs": 2}), labels=y).predict_proba(x) for s in (5, 5, 6)]
    np.testing.assert_array_equal(probas[0], probas[1])
    assert not np.array_equal(probas[0], probas[2])


def test_image_plus_tabular_columns_train_as_one_model(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (12, 12)).astype(np.uint8)).save(tmp_path / f"{i}.png")
    size = rng.normal(size=n)
    table = pd.DataFrame(
        {"image": [f"{i}.png" for i in range(n)], "size": size, "label": np.where(size > 0, "big", "small")}
    )
    table.to_csv(tmp_path / "t.csv", index=False)
    predictor = fit_images(tmp_path / "t.csv", config(**{"columns.target": "label", "trainer.epochs": 10}))
    assert predictor.tabular is not None and type(predictor.model).__name__ == "ImageTabularNet"
    assert predictor.metrics["valid"]["accuracy"] >= 0.8  # the label lives in the tabular column only
    predictor.save(tmp_path / "model")
    from deepmine.images.predictor import ImagePredictor

    again = ImagePredictor.load_artifact(tmp_path / "model")
    frame = again.predict_frame(tmp_path / "t.csv")
    assert list(frame["image"][:2]) == ["0.png", "1.png"]
    np.testing.assert_allclose(frame.filter(like="proba_").to_numpy(), predictor.predict_proba(tmp_path / "t.csv"))
    served_image_and_table_model_answers_like_predict_frame(tmp_path / "model", table.head(4), tmp_path, frame)
    gappy = table.head(5).assign(key=[10, 11, 12, 13, 14])
    gappy.loc[1, "image"] = "gone.png"
    gappy.loc[3, "image"] = None  # a row without a path
    gappy.to_csv(tmp_path / "gappy.csv", index=False)
    with pytest.warns(DeepmineWarning, match="skipped 2 of 5"):
        rows = again.predict_frame(tmp_path / "gappy.csv", id_column="key")
    assert rows["key"].tolist() == ["10", "11", "12", "13", "14"]  # one row per input row, in order, as written
    assert rows["prediction"].isna().tolist() == [False, True, False, True, False]
    kept = rows.filter(like="proba_").to_numpy()[[0, 2, 4]]
    np.testing.assert_allclose(kept, frame.filter(like="proba_").to_numpy()[[0, 2, 4]], rtol=1e-5)
    with pytest.raises(DataError, match=r"2 of 5 images could not be read \(first: gone.png \(missing\)\)"):
        again.predict(tmp_path / "gappy.csv")  # an array answer must line up with the input: no silent drops
    (tmp_path / "bare").mkdir()
    for i in range(3):  # paths without an image suffix: found through the column the model was trained on
        (tmp_path / "bare" / str(i)).write_bytes((tmp_path / f"{i}.png").read_bytes())
    bare = table.head(3).assign(image=[f"bare/{i}" for i in range(3)])
    bare.to_csv(tmp_path / "bare.csv", index=False)
    from deepmine.tracking import Tracker

    run_id = Tracker(None, "deepmine").record(predictor, source=str(tmp_path / "t.csv"), artifact=tmp_path / "model")
    assert recorded_run(run_id)["tags"]["deepmine.target"] == "label"  # `deepmine runs` shows the target
    bare_proba = again.predict_proba(tmp_path / "bare.csv")
    np.testing.assert_allclose(bare_proba, frame.filter(like="proba_").to_numpy()[:3], rtol=1e-5)


def served_image_and_table_model_answers_like_predict_frame(artifact, rows, folder, frame) -> None:
    """The service takes each image's other columns (JSON 'record', multipart 'records') and answers exactly
    ``predict_frame`` on the table; a missing record or column is a 422 naming it."""
    import base64

    from fastapi.testclient import TestClient

    from deepmine.serve.server import load_app

    client = TestClient(load_app(artifact))
    records = [{"size": float(v)} for v in rows["size"]]
    files = [(folder / name).read_bytes() for name in rows["image"]]
    encoded = [
        {"name": name, "data": base64.b64encode(data).decode(), "record": record}
        for name, data, record in zip(rows["image"], files, records, strict=True)
    ]
    sent = client.post("/predict", json={"images": encoded})
    uploaded = client.post(
        "/predict",
        files=[("files", (name, data, "image/png")) for name, data in zip(rows["image"], files, strict=True)],
        data={"records": json.dumps(records)},
    )
    expected = frame.head(len(rows))
    for answer in (sent, uploaded):
        assert answer.status_code == 200, answer.text
        got = [[a["probabilities"][c] for c in ("big", "small")] for a in answer.json()["predictions"]]
        np.testing.assert_allclose(got, expected[["proba_big", "proba_small"]].to_numpy(), atol=1e-6)
        assert [a["prediction"] for a in answer.json()["predictions"]] == list(expected["prediction"])
    bare = client.post("/predict", json={"images": [{"data": encoded[0]["data"]}]})
    assert bare.status_code == 422 and "size" in bare.json()["detail"][0]["msg"]
    wrong = client.post("/predict", json={"images": [{**encoded[0], "record": {"weight": 1}}]})
    assert wrong.status_code == 422 and "lacks column(s) ['size']" in wrong.json()["detail"][0]["msg"]
    meta = client.get("/metadata").json()
    assert meta["columns"] == [{"name": "size", "role": "numeric"}]


# ---- CLI and estimator --------------------------------------------------------------------------------------------
def test_cli_fits_a_folder_and_predicts_a_folder_keeping_paths(tmp_path, run_cli):
    x, y = bars(80, seed=4)
    train = write_folder(tmp_path / "train", x, y)
    fitted = run_cli(
        "fit",
        train,
        "--out",
        tmp_path / "model",
        "--json",
        "--set",
        "trainer.epochs=6",
        "--set",
        "trainer.batch_size=16",
        "--set",
        "model.width=8",
    )
    assert fitted.code == 0, fitted.err
    summary = json.loads(fitted.out)
    assert summary["kind"] == "image" and summary["rows"] + summary["valid_rows"] == 80
    assert 'id="section-metrics"' in (tmp_path / "model" / "report.html").read_text()  # written by fit, as for tables
    run = recorded_run(summary["run_id"])  # image fits are tracked like table fits
    assert run["status"] == "FINISHED" and run["tags"]["deepmine.task"] == "binary"
    assert run["metrics"]["accuracy"] == pytest.approx(summary["accuracy"])
    assert run["metrics"]["fit_epochs"] == summary["epochs"] and "artifact/deepmine.json" in run["files"]
    quick = ["--json", "--set", "trainer.epochs=1", "--set", "model.width=8"]
    untracked = run_cli("fit", train, "--out", tmp_path / "off", "--no-track", "--no-report", *quick)
    assert untracked.code == 0, untracked.err
    assert not (tmp_path / "off" / "report.html").exists()
    assert "run_id" not in json.loads(untracked.out)
    from_api = deepmine.fit(train, trainer={"epochs": 1}, model={"width": 8})
    assert recorded_run(from_api.training["run_id"])["tags"]["deepmine.command"] == "api"
    test_x, test_y = bars(30, seed=5)
    test = write_folder(tmp_path / "test", test_x, test_y)
    scored = run_cli("evaluate", tmp_path / "model", test, "--json")
    assert scored.code == 0 and json.loads(scored.out)["rows"] == 30
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        Image.fromarray(test_x[i]).save(flat / f"img{i}.png")
    predicted = run_cli("predict", tmp_path / "model", flat, "-o", tmp_path / "p.csv")
    assert predicted.code == 0, predicted.err
    frame = pd.read_csv(tmp_path / "p.csv")
    assert list(frame["path"]) == ["img0.png", "img1.png", "img2.png"] and set(frame["prediction"]) <= {"h", "v"}
    one = run_cli("predict", tmp_path / "model", flat / "img1.png")  # a single image file
    assert one.code == 0, one.err
    single = pd.read_csv(io.StringIO(one.out))
    assert len(single) == 1 and single["prediction"][0] == frame["prediction"][1]
    np.testing.assert_allclose(single["proba_h"], frame["proba_h"][1:2], rtol=1e-5)
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "a.txt").write_text("x")
    failed = run_cli("predict", tmp_path / "model", empty)
    assert failed.code == 1 and "holds no images" in failed.err and "Traceback" not in failed.err


def test_image_classifier_estimator_arrays_and_paths(tmp_path):
    from sklearn.base import clone

    from deepmine.images.estimator import ImageClassifier
    from deepmine.sklearn_api import NotFittedError

    x, y = bars(120, seed=6)
    model = ImageClassifier(epochs=6, batch_size=16, module__width=8, trainer__threads=1)
    with pytest.raises(NotFittedError):
        model.predict(x)
    assert clone(model).get_params()["module__width"] == 8
    model.fit(x, y)
    test_x, test_y = bars(40, seed=7)
    assert model.score(test_x, test_y) >= 0.85
    paths = []
    for i, image in enumerate(test_x[:4]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    np.testing.assert_allclose(model.predict_proba(paths), model.predict_proba(test_x[:4]), atol=1e-6)


def test_fit_image_data_without_labels_is_a_clear_error(tmp_path):
    for i in range(4):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / f"{i}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match="has no labels: use one sub-folder per class"):
            fit_images(tmp_path, config())


def test_on_disk_cache_of_resized_images_gives_the_same_model(tmp_path):
    x, y = bars(40, seed=8)
    root = write_folder(tmp_path / "photos", x, y)
    lazy = fit_images(root, config(**{"trainer.epochs": 2}))
    cached = fit_images(root, config(**{"trainer.epochs": 2, "images.cache": True}), cache_dir=tmp_path / "cache")
    files = list((tmp_path / "cache").glob("*.u8"))
    assert len(files) == 2 and sum(f.stat().st_size for f in files) == 40 * 12 * 12  # train + valid, uint8 pixels
    np.testing.assert_array_equal(lazy.predict_proba(root), cached.predict_proba(root))


# ---- serving -------------------------------------------------------------------------------------------------
def test_service_classifies_uploaded_and_base64_images_like_predict_on_files(tmp_path):
    import base64

    from fastapi.testclient import TestClient

    from deepmine.serve.server import load_app

    x, y = bars(160, seed=1)
    fit_images(x, config(), labels=y).save(tmp_path / "model")
    test_x, _ = bars(3, seed=7)
    files = [tmp_path / f"img{i}.png" for i in range(3)]
    Image.fromarray(test_x[0]).save(files[0])
    Image.fromarray(test_x[1]).convert("RGB").save(files[1])  # gray model, RGB upload: converted like a file
    Image.fromarray(test_x[2]).resize((24, 24)).save(files[2])  # bigger than trained: resized like a file
    expected = load_predictor_frame(tmp_path / "model", files)
    client = TestClient(load_app(tmp_path / "model"))

    uploaded = client.post("/predict", files=[("files", (f.name, f.read_bytes(), "image/png")) for f in files])
    assert uploaded.status_code == 200, uploaded.text
    encoded = [{"name": f.name, "data": base64.b64encode(f.read_bytes()).decode()} for f in files]
    sent = client.post("/predict", json={"images": encoded})
    assert sent.status_code == 200, sent.text
    for answer in (uploaded.json()["predictions"], sent.json()["predictions"]):
        assert [a["name"] for a in answer] == [f.name for f in files]
        assert [a["prediction"] for a in answer] == list(expected["prediction"])
        proba = [[a["probabilities"][c] for c in ("h", "v")] for a in answer]
        np.testing.assert_allclose(proba, expected[["proba_h", "proba_v"]].to_numpy(), atol=1e-6)

    meta = client.get("/metadata").json()
    assert meta["kind"] == "image" and meta["classes"] == ["h", "v"] and meta["image"]["height"] == 12
    assert client.get("/health").json() == {"status": "ok", "task": "binary"}


def load_predictor_frame(artifact: Path, files: list[Path]) -> pd.DataFrame:
    from deepmine.images.predictor import ImagePredictor

    return ImagePredictor.load_artifact(artifact).predict_frame([str(f) for f in files])


def test_service_rejects_bad_images_with_a_json_error_naming_them(tmp_path):
    import base64
    import io

    from fastapi.testclient import TestClient

    from deepmine.serve.server import load_app

    x, y = bars(40, seed=1)
    fit_images(x, config(**{"trainer.epochs": 1}), labels=y).save(tmp_path / "model")
    client = TestClient(load_app(tmp_path / "model"))
    not_image = client.post("/predict", files=[("files", ("notes.txt", b"hello", "text/plain"))])
    assert not_image.status_code == 422 and "'notes.txt' is not an image" in not_image.json()["detail"][0]["msg"]
    empty = client.post("/predict", files=[("files", ("blank.png", b"", "image/png"))])
    assert empty.status_code == 422 and "'blank.png' is empty" in empty.json()["detail"][0]["msg"]
    bad64 = client.post("/predict", json={"images": [{"name": "a", "data": "%%%"}]})
    assert bad64.status_code == 422 and "not valid base64" in bad64.json()["detail"][0]["msg"]
    assert client.post("/predict", json={"images": []}).status_code == 422
    assert client.post("/predict", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    csv = client.post("/predict", content=b"a,b\n1,2\n", headers={"content-type": "text/csv"})
    assert csv.status_code == 415 and "multipart/form-data" in csv.json()["detail"][0]["msg"]
    png = io.BytesIO()
    Image.fromarray(x[0]).save(png, format="PNG")
    with_record = {"images": [{"data": base64.b64encode(png.getvalue()).decode(), "record": {"size": 1}}]}
    extra = client.post("/predict", json=with_record)  # an image-only model takes no table columns
    assert extra.status_code == 422 and "reads images only" in extra.json()["detail"][0]["msg"]
    bad_records = client.post(
        "/predict", files=[("f", ("a.png", png.getvalue(), "image/png"))], data={"records": "[1, 2"}
    )
    assert bad_records.status_code == 422 and "'records' is not valid JSON" in bad_records.json()["detail"][0]["msg"]


# ---- export ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_reproduces_predict_on_files_and_its_usage_snippet_runs(tmp_path, run_cli, monkeypatch, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    x, y = bars(160, seed=1)
    fit_images(x, config(), labels=y).save(tmp_path / "model")
    test_x, _ = bars(4, seed=8)
    images = tmp_path / "new"
    images.mkdir()
    Image.fromarray(test_x[0]).save(images / "a.png")
    Image.fromarray(test_x[1]).convert("RGB").save(images / "b.jpg", quality=95)  # colour JPEG for a gray model
    Image.fromarray(test_x[2]).resize((20, 14)).save(images / "c.png")  # another size and aspect: padded
    Image.fromarray(test_x[3]).save(images / "d.bmp")
    out = tmp_path / f"bars.{fmt}"
    done = run_cli("export", tmp_path / "model", "--format", fmt, "-o", out, "--check", images, "--json")
    assert done.code == 0, done.err
    result = json.loads(done.out)
    assert result["rows"] == 4 and result["max_abs_diff"] <= 1e-5 and "4 images of" in result["sample"]
    sidecar = json.loads((tmp_path / f"bars.{fmt}.json").read_text())
    assert sidecar["inputs"][0]["shape"] == ["images", 12, 12, 1] and sidecar["classes"] == ["h", "v"]

    files = ["a.png", "b.jpg", "c.png", "d.bmp"]
    usage = sidecar["usage"].replace('["a.png", "b.jpg"]', repr(files))
    monkeypatch.chdir(images)
    (images / out.name).symlink_to(out)
    (images / f"{out.name}.json").symlink_to(tmp_path / f"bars.{fmt}.json")
    scope: dict = {}
    exec(compile(usage, "usage", "exec"), scope)  # decodes with Pillow alone, as a caller without deepmine would
    expected = load_predictor_frame(tmp_path / "model", [images / f for f in files])
    np.testing.assert_allclose(scope["probabilities"], expected[["proba_h", "proba_v"]].to_numpy(), atol=1e-5)
    assert scope["labels"] == list(expected["prediction"])


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_of_an_image_and_table_model_takes_each_images_columns(tmp_path, run_cli, monkeypatch, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(2)
    x, y = bars(60, seed=4)
    for i, image in enumerate(x):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    table = pd.DataFrame(
        {
            "image": [f"{i}.png" for i in range(60)],
            "size": np.where(rng.random(60) < 0.1, np.nan, rng.normal(size=60)),  # with missing values
            "shade": rng.choice(["red", "green", "blue"], 60),
            "label": y,
        }
    )
    table.to_csv(tmp_path / "t.csv", index=False)
    fit_images(tmp_path / "t.csv", config(**{"columns.target": "label", "trainer.epochs": 2})).save(tmp_path / "m")
    new = table.head(5).drop(columns="label")
    new.loc[1, "shade"] = "purple"  # a category never seen in training
    new.to_csv(tmp_path / "new.csv", index=False)

    out = tmp_path / f"both.{fmt}"
    done = run_cli("export", tmp_path / "m", "--format", fmt, "-o", out, "--check", tmp_path / "new.csv", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["max_abs_diff"] <= 1e-5
    generated = run_cli("export", tmp_path / "m", "--format", fmt, "-o", tmp_path / f"gen.{fmt}", "--json")
    assert generated.code == 0, generated.err  # random images with table rows drawn from the fitted pipeline
    assert "random images" in json.loads(generated.out)["sample"]
    sidecar = json.loads((tmp_path / f"both.{fmt}.json").read_text())
    assert sidecar["input_names"] == ["pixels", "numeric", "categorical"]
    assert sidecar["numeric_columns"] == ["size"] and sidecar["categorical_columns"] == ["shade"]

    records = new.drop(columns="image").to_dict("records")  # NaN size and the unseen shade included
    usage = sidecar["usage"].replace('["a.png", "b.jpg"]', repr(list(new["image"])))
    usage = usage.replace(usage.split("records = ", 1)[1].split("  #", 1)[0], repr(records), 1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {"nan": float("nan")}
    exec(compile(usage, "usage", "exec"), scope)  # Pillow, numpy and the runtime alone
    from deepmine.images.predictor import ImagePredictor

    expected = ImagePredictor.load_artifact(tmp_path / "m").predict_frame(tmp_path / "new.csv")
    np.testing.assert_allclose(scope["probabilities"], expected.filter(like="proba_").to_numpy(), atol=1e-5)
    assert scope["labels"] == list(expected["prediction"])


def test_image_exports_fall_back_to_the_torch_export_based_exporter(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import deepmine.export.writers as writers
    from deepmine.export.images import export_image_predictor

    def gone(*args, **kwargs):
        raise RuntimeError("the TorchScript-based exporter was removed")

    monkeypatch.setattr(writers, "_legacy_onnx", gone)
    x, y = bars(40, seed=1)
    image_only = fit_images(x, config(**{"trainer.epochs": 1}), labels=y)
    for i, image in enumerate(x):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    table = pd.DataFrame({"image": [f"{i}.png" for i in range(40)], "size": np.arange(40.0), "label": y})
    table.to_csv(tmp_path / "t.csv", index=False)
    with_table = fit_images(tmp_path / "t.csv", config(**{"columns.target": "label", "trainer.epochs": 1}))
    for name, predictor in (("only", image_only), ("table", with_table)):
        result = export_image_predictor(predictor, tmp_path / f"{name}.onnx", "onnx", rows=9)
        assert result.exporter == "onnx-dynamo" and result.max_abs_diff <= 1e-5 and result.rows == 9


def test_export_of_an_image_model_needs_a_known_format_and_writes_nothing_on_error(tmp_path, run_cli):
    x, y = bars(40, seed=1)
    fit_images(x, config(**{"trainer.epochs": 1}), labels=y).save(tmp_path / "model")
    done = run_cli("export", tmp_path / "model", "--format", "onxx")
    assert done.code == 2 and "unknown export format 'onxx'" in done.err and "onnx" in done.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# ---- report ----------------------------------------------------------------------------------------------------
def test_report_of_an_image_model_shows_its_metrics_confusion_and_curves(tmp_path, run_cli):
    import re

    x, y = bars(160, seed=1)
    predictor = fit_images(x, config(), labels=y)
    predictor.save(tmp_path / "model")
    done = run_cli("report", tmp_path / "model", "--json")
    assert done.code == 0, done.err
    html = (tmp_path / "model" / "report.html").read_text()
    for section in json.loads(done.out)["sections"]:
        assert f'id="{section}"' in html
    valid = predictor.metrics["valid"]
    assert f"{valid['accuracy']:.4f}" in html and "12 × 12 px" in html and "cnn;" in html
    cells = re.search(r'id="section-confusion-matrix".*?</table>', html, re.S).group(0)
    numbers = [int(n.replace(",", "")) for n in re.findall(r'<td class="num">([\d,]+)</td>', cells)]
    assert numbers == [v for row in valid["confusion_matrix"] for v in row]
    shown = re.findall(r"<td>([hv])</td><td class=\"num\">([\d.]+)</td>", html)  # ROC AUC per class
    assert shown == [("v", f"{valid['roc_auc']:.4f}")]
    assert run_cli("evaluate", tmp_path / "model", write_folder(tmp_path / "t", *bars(20, seed=9))).code == 0


def test_the_report_shows_the_most_confidently_misclassified_validation_images(tmp_path, run_cli):
    import base64
    import io
    import re

    from deepmine.images.predictor import ImagePredictor

    x, y = bars(200, seed=3)
    predictor = fit_images(x, config(**{"trainer.epochs": 1, "model.width": 4}), labels=y)  # under-trained
    predictor.save(tmp_path / "model")
    loaded = ImagePredictor.load_artifact(tmp_path / "model")
    assert loaded.insight == json.loads(json.dumps(predictor.insight))  # kept in the artifact, checksummed
    matrix = np.asarray(predictor.metrics["valid"]["confusion_matrix"])
    errors = int(matrix.sum() - np.trace(matrix))
    gallery = loaded.insight["misclassified"]
    assert errors > 0 and len(gallery) == min(12, errors) and loaded.insight["errors"] == errors
    confidence = [g["confidence"] for g in gallery]
    assert confidence == sorted(confidence, reverse=True) and min(confidence) >= 0.5
    for item in gallery:
        index = int(item["name"])  # array images are named by their row
        assert item["true"] == y[index] != item["predicted"]
        png = base64.b64decode(item["png"].split(",", 1)[1])
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), x[index])  # the image the model saw
    proba = predictor.predict_proba(x[[int(g["name"]) for g in gallery]])
    assert np.allclose(proba.max(axis=1), confidence, atol=1e-4)
    done = run_cli("report", tmp_path / "model")
    assert done.code == 0, done.err
    html = (tmp_path / "model" / "report.html").read_text()
    section = re.search(r'id="section-misclassified".*?</section>', html, re.S).group(0)
    assert section.count("<figure>") == len(gallery) and f"of {errors} misclassified" in section


def test_insight_of_a_many_class_model_keeps_at_most_200k_probabilities():
    from deepmine.images.insight import INSIGHT_VALUES, image_insight

    proba = np.random.default_rng(0).dirichlet(np.ones(1000), size=400)
    y = proba.argmax(axis=1)  # all right: no gallery to decode
    insight = image_insight(None, None, y, proba, seed=0)
    kept = insight["validation"]
    assert kept["rows"] == 400 and kept["kept"] == INSIGHT_VALUES // 1000 == len(kept["y"]) == len(kept["proba"])
    assert insight["misclassified"] == [] and insight["errors"] == 0
    four = proba[:50, :4] / proba[:50, :4].sum(1, keepdims=True)
    few = image_insight(None, None, four.argmax(axis=1), four, seed=0)
    assert few["validation"]["kept"] == 50  # small models keep every validation image
