"""Device assignment: the child sees its GPU as cuda:0 through CUDA_VISIBLE_DEVICES."""

from runner.launch.devices import DevicePool, detect_gpus


def test_cpu_only_runner():
    pool = DevicePool([])
    assert pool.acquire("cpu").visible_devices == ""
    assert pool.acquire("auto").device == "cpu"
    assert "has none" in pool.check("cuda")
    assert pool.check("auto") is None


def test_gpus_are_handed_out_once():
    pool = DevicePool([0, 1])
    first, second = pool.acquire("cuda"), pool.acquire("auto")
    assert (first.device, first.visible_devices) == ("cuda:0", "0")
    assert (second.device, second.visible_devices) == ("cuda:0", "1")
    assert pool.acquire("cuda") is None
    pool.release(first)
    assert pool.acquire("cuda:0").visible_devices == "0"
    assert pool.acquire("cuda:1") is None
    assert "not one of this runner's GPUs" in pool.check("cuda:5")


def test_detect_gpus_respects_explicit_and_env(monkeypatch):
    assert detect_gpus("0,2") == [0, 2]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert detect_gpus() == [3]
