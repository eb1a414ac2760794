"""Stage cache: unchanged inputs hit, any change in inputs/options/upstream/outputs misses."""
from tinyprune.pipeline.cache import StageCache, stage_key


def test_stage_key_and_cache_roundtrip(tmp_path):
    src = tmp_path / "model.onnx"
    src.write_bytes(b"abc")
    k1 = stage_key("convert", inputs={"model": src}, options={"calib": 100})
    assert k1 == stage_key("convert", inputs={"model": src}, options={"calib": 100})
    assert k1 != stage_key("convert", inputs={"model": src}, options={"calib": 101})
    assert k1 != stage_key("convert", inputs={"model": src}, options={"calib": 100}, upstream=["x"])
    src.write_bytes(b"abd")
    k2 = stage_key("convert", inputs={"model": src}, options={"calib": 100})
    assert k2 != k1

    cache = StageCache(tmp_path)
    out = tmp_path / "convert" / "model_int8.tflite"
    out.parent.mkdir()
    out.write_bytes(b"tflite")
    assert cache.lookup("convert", k2) is None
    cache.store("convert", k2, [out], {"ops": 3})
    assert cache.lookup("convert", k2)["result"] == {"ops": 3}
    assert cache.lookup("convert", k1) is None          # other key
    out.write_bytes(b"tampered")
    assert cache.lookup("convert", k2) is None          # output changed on disk
    out.write_bytes(b"tflite")
    out.unlink()
    assert cache.lookup("convert", k2) is None          # output gone


def test_directory_hash_sees_nested_changes(tmp_path):
    d = tmp_path / "codegen"
    (d / "kernels").mkdir(parents=True)
    (d / "kernels" / "a.c").write_text("int a;")
    k1 = stage_key("fw", inputs={"codegen": d})
    (d / "kernels" / "a.c").write_text("int b;")
    assert stage_key("fw", inputs={"codegen": d}) != k1
