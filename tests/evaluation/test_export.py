"""Benchmark-server exports: a round trip of ids and names on small prepared test splits, and refusals."""
import copy
import fnmatch
import json
import zipfile

import cv2
import numpy as np
import pytest
import torch
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
from cityscapesscripts.helpers.labels import id2label

from pipa_video.cli import main as cli_main
from pipa_video.config import ConfigError, load_config
from pipa_video.data.classes import IGNORE_INDEX, label_lut
from pipa_video.data.index import DatasetError, load_index
from pipa_video.data.io import read_rgb, write_png
from pipa_video.data.prepare import prepare
from pipa_video.evaluation.export import FORMATS, ExportWarning, export_split, verify_archive, write_archive
from pipa_video.evaluation.metrics import SegEvaluator
from pipa_video.data.build import inference_dataset
from pipa_video.engine.checkpoint import save_checkpoint
from pipa_video.evaluation.loop import inference_on_dataset
from pipa_video.evaluation.runner import build_eval_settings, make_predictor
from tests.data.adverse_fixtures import make_acdc_tree, make_dark_zurich_tree
from tests.data.fixtures import make_cityscapes_tree


def fake_predict(frame):
    """Train ids and a confidence that are a known function of the pixels (0..18 and [0, 1])."""
    return (frame[..., 0] % 19).astype(np.uint8), frame[..., 1].astype(np.float32) / 255.0


def prepared(tmp_path, layout, build, **kwargs):
    build(tmp_path / "data")
    return load_index(prepare(layout, tmp_path / "data", tmp_path / "index", quiet=True, **kwargs))


def unzip(archive, to):
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(to)
        return sorted(n for n in zf.namelist() if not n.endswith("/"))


def decode(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def acdc_test_index(tmp_path, **kwargs):
    return prepared(tmp_path, "acdc", lambda r: make_acdc_tree(r, split="test", conditions=("fog", "night", "rain",
                                                                                          "snow"), **kwargs),
                    split="test")


def test_acdc_round_trip_train_ids_and_names(tmp_path):
    index = acdc_test_index(tmp_path)
    with pytest.warns(ExportWarning, match=r"8 frames; the acdc server scores the test split's 2000 frames"):
        summary = export_split(index, fake_predict, fmt="acdc", out_dir=tmp_path / "out", progress=False)
    names = unzip(tmp_path / "out" / "acdc_submission.zip", tmp_path / "unzipped")
    assert len(names) == 8 and all(n.startswith("labelTrainIds/") for n in names)
    for row in range(len(index.frames)):
        image = index.image_path(row)
        seq, frame = image.name.split("_frame_")[0], int(index.frames["frame"].iat[row])
        matches = fnmatch.filter([n.split("/")[-1] for n in names], f"{seq}_frame_{frame:06d}*.png")
        assert matches == [image.name]  # one prediction per test image, named after it
        written = decode(tmp_path / "unzipped" / "labelTrainIds" / image.name)
        assert written.dtype == np.uint8 and written.shape == read_rgb(image).shape[:2]
        np.testing.assert_array_equal(written, fake_predict(read_rgb(image))[0])
        np.testing.assert_array_equal(written, decode(tmp_path / "out" / "acdc" / "labelTrainIds" / image.name))
    manifest = json.loads((tmp_path / "out" / "acdc_export.json").read_text())
    assert manifest["frames"] == 8 and manifest["files"] == {"labelTrainIds": 8} == summary["files"]


def test_dark_zurich_round_trip_three_folders(tmp_path):
    index = prepared(tmp_path, "dark_zurich", lambda r: make_dark_zurich_tree(r, split="test", frames=(1, 2)),
                     split="test")
    with pytest.warns(ExportWarning):
        export_split(index, fake_predict, fmt="dark_zurich", out_dir=tmp_path / "out", progress=False)
    names = unzip(tmp_path / "out" / "dark_zurich_submission.zip", tmp_path / "u")
    assert sorted({n.split("/")[0] for n in names}) == ["confidence", "labelTrainIds", "labelTrainIds_invalid"]
    for row in range(len(index.frames)):
        image = index.image_path(row)
        labels, confidence = fake_predict(read_rgb(image))
        np.testing.assert_array_equal(decode(tmp_path / "u/labelTrainIds" / image.name), labels)
        np.testing.assert_array_equal(decode(tmp_path / "u/labelTrainIds_invalid" / image.name), labels)
        conf = decode(tmp_path / "u/confidence" / image.name)
        assert conf.dtype == np.uint16
        np.testing.assert_allclose(conf / 65535.0, confidence, atol=1 / 65535)


def official_args():
    """cityscapesscripts' module-level settings, quiet and without instance scores or a JSON file."""
    args = copy.copy(cs_eval.args)
    args.evalInstLevelScore, args.quiet, args.JSONOutput = False, True, False
    return args


def test_cityscapes_round_trip_through_the_official_evaluation(tmp_path):
    """labelIds in the archive: cityscapesscripts finds every prediction and scores the mIoU we compute."""
    frames = (("berlin", 0, 19), ("berlin", 1, 19), ("bonn", 0, 19))
    tree = make_cityscapes_tree(tmp_path / "data", split="test", images=frames, seed=3)
    index = load_index(prepare("cityscapes", tmp_path / "data", tmp_path / "index", split="test", unannotated=True,
                               quiet=True))
    with pytest.warns(ExportWarning):
        export_split(index, fake_predict, fmt="cityscapes", out_dir=tmp_path / "out", progress=False)
    names = unzip(tmp_path / "out" / "cityscapes_submission.zip", tmp_path / "u")
    assert names == [f"{c}/{c}_{s:06d}_{f:06d}_leftImg8bit.png" for c, s, f in frames]
    args = official_args()
    args.predictionPath, args.predictionWalk = str(tmp_path / "u"), None
    gts = [str(tmp_path / "data" / label) for label in tree.frames.raw_label]
    preds = [cs_eval.getPrediction(args, gt) for gt in gts]
    ours = SegEvaluator(num_classes=19, eval_ids=range(19), protocol="davsn")
    for pred_path, image, label in zip(preds, tree.frames.image, tree.frames.raw_label):
        label_ids = decode(pred_path)
        train_ids = fake_predict(read_rgb(tmp_path / "data" / image))[0]
        assert all(id2label[int(v)].trainId == t for v, t in zip(label_ids.ravel(), train_ids.ravel()))
        ours.process(train_ids, label_lut("cityscapes", "cityscapes19")[tree.raw_labels[label]])
    official = cs_eval.evaluateImgLists(preds, gts, args)
    assert official["averageScoreClasses"] * 100 == pytest.approx(ours.evaluate()["mIoU"], abs=1e-6)


def test_an_archive_with_missing_or_wrong_frames_is_refused(tmp_path):
    index = acdc_test_index(tmp_path)
    spec = FORMATS["acdc"]
    with pytest.warns(ExportWarning):
        export_split(index, fake_predict, fmt="acdc", out_dir=tmp_path / "out", progress=False)
    tree, archive = tmp_path / "out" / "acdc", tmp_path / "again.zip"
    assert verify_archive(tmp_path / "out" / "acdc_submission.zip", spec, index) == {"labelTrainIds": 8}
    missing = tree / "labelTrainIds" / index.image_path(3).name
    kept = decode(missing)
    missing.unlink()
    with pytest.raises(DatasetError, match=r"1 of 8 frames .* no prediction in labelTrainIds/ \(first: .*"
                                           + index.image_path(3).name):
        write_archive(tree, spec, index, archive)
    assert not archive.exists() and not list(tmp_path.glob(".again.zip*"))
    write_png(missing, np.where(kept == 4, 200, kept).astype(np.uint8))
    with pytest.raises(DatasetError, match=r"holds ids \[200\]; the acdc server expects train ids"):
        write_archive(tree, spec, index, archive)
    write_png(missing, kept[:, :-2])
    with pytest.raises(DatasetError, match=r"is 30x16, its image 32x16: .* at the input size"):
        write_archive(tree, spec, index, archive)
    write_png(missing, kept)
    write_png(tree / "labelTrainIds" / "GOPR9999_frame_000001_rgb_anon.png", kept)
    with pytest.raises(DatasetError, match=r"GOPR9999_frame_000001_rgb_anon\.png is not a prediction of a frame"):
        write_archive(tree, spec, index, archive)
    assert not archive.exists()


def test_frames_the_server_cannot_tell_apart_and_foreign_indexes(tmp_path):
    same = {c: "GOPR0001" for c in ("fog", "night", "rain", "snow")}
    index = acdc_test_index(tmp_path, sequences=same)
    with pytest.raises(DatasetError, match=r"rgb_anon/fog/test/GOPR0001/GOPR0001_frame_000041_rgb_anon\.png and "
                                           r".*rgb_anon/night/.*both are GOPR0001_frame_000041"):
        export_split(index, fake_predict, fmt="acdc", out_dir=tmp_path / "out", progress=False)
    with pytest.raises(DatasetError, match=r"prepared from layout 'acdc'; the dark_zurich server scores dark_zurich"):
        export_split(index, fake_predict, fmt="dark_zurich", out_dir=tmp_path / "out", progress=False)
    (tmp_path / "mine" / "acdc").mkdir(parents=True)
    other = acdc_test_index(tmp_path / "b")
    with pytest.raises(DatasetError, match=r"mine/acdc exists and no export wrote it"):
        export_split(other, fake_predict, fmt="acdc", out_dir=tmp_path / "mine", progress=False)


CONFIG = """
class_set = 'cityscapes19'
model = dict(backbone=dict(type='mit_b0', pretrained=None), decode_head=dict(type='segformer', channels=32))
data = dict(num_workers=0)
evaluation = dict(resize=(128, 64))  # MiT needs more than the fixtures' 32x16 pixels
runtime = dict(device='cpu')
"""


def test_predict_format_command_exports_the_models_predictions(tmp_path, capsys):
    from pipa_video.models import build_segmentor

    index = prepared(tmp_path, "dark_zurich", lambda r: make_dark_zurich_tree(r, split="test", frames=(5,)),
                     split="test")
    (tmp_path / "cfg.py").write_text(CONFIG)
    cfg = load_config(tmp_path / "cfg.py")
    torch.manual_seed(0)
    model = build_segmentor(cfg["model"], num_classes=19).eval()
    save_checkpoint(dict(model=model.state_dict(), config=cfg.to_dict(),
                         meta=dict(class_set="cityscapes19", iteration=7, selection="last iteration")), tmp_path / "m.pth")
    argv = ["predict", "--config", str(tmp_path / "cfg.py"), "--checkpoint", str(tmp_path / "m.pth"),
            "--format", "dark_zurich", "--index", str(index.index_dir), "--out", str(tmp_path / "out")]
    with pytest.warns(ExportWarning):
        assert cli_main(argv) == 0
    manifest = json.loads((tmp_path / "out" / "dark_zurich_export.json").read_text())
    assert manifest["selection"] == "last iteration" and manifest["iteration"] == 7 and manifest["frames"] == 1
    settings = build_eval_settings(cfg)  # what eval predicts of the same frame, through the same loop
    dataset = inference_dataset(index, resize=settings.resize_wh, mean=cfg.data.mean, std=cfg.data.std)

    class Keep:
        name = "keep"

        def reset(self):
            self.out = []

        def process(self, inputs, predictions):
            self.out.append(predictions[0].numpy())

        def evaluate(self):
            return self.out

    expected = inference_on_dataset(make_predictor(model, settings), dataset, Keep())
    written = decode(tmp_path / "out" / "dark_zurich" / "labelTrainIds" / index.image_path(0).name)
    np.testing.assert_array_equal(written, expected[0])
    assert IGNORE_INDEX not in written
    assert cli_main(argv[:-4] + ["--out", str(tmp_path / "o2")]) == 3  # data error: no data.test.index in the config
    assert "data.test.index is not set" in capsys.readouterr().err
    assert cli_main(["predict", "--config", str(tmp_path / "cfg.py"), "--checkpoint", "x", "--out", "o"]) == 2
    assert "predict needs --input FOOTAGE, or --format" in capsys.readouterr().err


def test_a_model_of_another_class_set_is_refused_before_anything_is_written(tmp_path):
    """An unlabelled test index serves any class set, but a viper15 model's train ids are not Cityscapes'."""
    from pipa_video.evaluation.export import export_for_server

    index = acdc_test_index(tmp_path)
    cfg = load_config(_write(tmp_path, CONFIG), {"class_set": "viper15"})
    with pytest.raises(ConfigError, match=r"class_set: the acdc server scores the 19 Cityscapes classes "
                                          r"\(cityscapes19\); this model predicts viper15 \(15 classes\)"):
        export_for_server(cfg, torch.nn.Identity(), fmt="acdc", out_dir=tmp_path / "out", index_dir=index.index_dir)
    assert not (tmp_path / "out").exists()


def _write(tmp_path, text):
    path = tmp_path / "viper_cfg.py"
    path.write_text(text)
    return path
