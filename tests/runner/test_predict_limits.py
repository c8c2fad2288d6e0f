"""The predict bounds on their own: the gate's queue, the image's pixels (daemon and child side),
and the client's size check before it reads an image."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import pytest
from PIL import Image

from adapters import entrypoint
from adapters.image_limits import ImageTooLarge, check_image, header_size, limit_decoding
from runner.cli import main
from runner.client import Client, ClientError
from runner.daemon.server import SERVER_OPTIONS
from runner.daemon.predictions import PredictBusy, PredictGate, PredictLimits
from runner.settings import MAX_IMAGE_BYTES

ROOT = Path(__file__).resolve().parents[2]


def encoded(size, fmt="PNG", mode="RGB") -> bytes:
    data = io.BytesIO()
    Image.new(mode, size).save(data, fmt)
    return data.getvalue()


# ---------------------------------------------------------------- the gate


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_the_gate_runs_a_few_queues_a_few_in_order_and_refuses_the_rest():
    async def scenario():
        gate, order = PredictGate(PredictLimits(concurrent=2, queued=2)), []
        release = asyncio.Event()

        async def predict(name):
            async with gate.slot():
                order.append(name)
                await release.wait()

        tasks = [asyncio.create_task(predict(n)) for n in "abcd"]
        await asyncio.sleep(0.01)
        assert order == ["a", "b"] and gate.running == 2
        with pytest.raises(PredictBusy, match="2 predict\\(s\\) running and 2 waiting"):
            async with gate.slot():
                pass
        release.set()
        await asyncio.gather(*tasks)
        assert order == ["a", "b", "c", "d"] and gate.running == 0

    run(scenario())


def test_a_cancelled_waiter_leaves_the_queue_and_a_slot_handed_to_it_goes_on():
    async def scenario():
        gate = PredictGate(PredictLimits(concurrent=1, queued=2))
        hold, entered = asyncio.Event(), []

        async def predict(name):
            async with gate.slot():
                entered.append(name)
                await hold.wait()

        first = asyncio.create_task(predict("first"))
        await asyncio.sleep(0.01)
        waiting = asyncio.create_task(predict("cancelled while waiting"))
        handed = asyncio.create_task(predict("cancelled as its turn came"))
        last = asyncio.create_task(predict("last"))  # refused: queue full (2 waiting)
        await asyncio.sleep(0.01)
        with pytest.raises(PredictBusy):
            await last
        waiting.cancel()
        await asyncio.sleep(0.01)
        assert len(gate._waiting) == 1
        hold.set()
        await first  # hands its slot to `handed` ...
        handed.cancel()  # ... which is cancelled before it runs: the slot must not be lost
        await asyncio.gather(handed, return_exceptions=True)
        assert gate.running == 0 and not gate._waiting
        hold.clear()
        again = asyncio.create_task(predict("again"))
        await asyncio.sleep(0.01)
        assert entered[-1] == "again" and gate.running == 1
        hold.set()
        await again

    run(scenario())


# ---------------------------------------------------------------- pixels


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP"])
def test_the_header_gives_the_size_without_decoding(fmt):
    assert header_size(encoded((64, 48), fmt)) == (64, 48)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n", encoded((8, 8))[:20]])
def test_what_no_format_reads_has_no_size(data):
    assert header_size(data) is None
    assert check_image(data, 10) is None  # the decoder will say what is wrong


def test_check_image_refuses_over_the_limit_from_bytes_or_a_file(tmp_path):
    image = encoded((200, 100))
    assert check_image(image, 20_000) == (200, 100)
    with pytest.raises(ImageTooLarge, match="200×100 \\(0.0 megapixels\\); predict takes at most 0.0 megapixels "
                                            "\\(19999 pixels"):
        check_image(image, 19_999)
    (tmp_path / "a.png").write_bytes(image)
    with pytest.raises(ImageTooLarge):
        check_image(tmp_path / "a.png", 19_999)


@pytest.fixture
def pillow_state(monkeypatch):
    """What `limit_decoding` changes in this process, restored after the test."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    with warnings.catch_warnings():
        yield


def test_limit_decoding_makes_pillow_refuse_what_is_over(pillow_state):
    limit_decoding(10_000)
    Image.open(io.BytesIO(encoded((100, 100)))).load()
    with pytest.raises((Image.DecompressionBombWarning, Image.DecompressionBombError)):
        Image.open(io.BytesIO(encoded((101, 100))))


def test_the_child_refuses_an_image_over_its_limit_before_loading_anything(pillow_state, tmp_path, capsys):
    (tmp_path / "big.png").write_bytes(encoded((12000, 12000), mode="1"))
    code = entrypoint.predict(str(tmp_path / "no-job.json"), str(tmp_path / "big.png"), "no-checkpoint", 5,
                              max_pixels=40_000_000)
    assert code == 1
    assert "ImageTooLarge: the image is 12000×12000 (144.0 megapixels)" in capsys.readouterr().err


def test_the_child_takes_the_limit_as_a_flag(tmp_path):
    (tmp_path / "a.png").write_bytes(encoded((50, 50)))
    done = subprocess.run([sys.executable, "-m", "adapters.entrypoint", "--spec", str(tmp_path / "no-job.json"),
                           "--predict", str(tmp_path / "a.png"), "--checkpoint", "x", "--max-pixels", "2000"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "predict failed: ImageTooLarge: the image is 50×50" in done.stderr


# ---------------------------------------------------------------- bytes, on the client's side


def test_the_image_limit_fits_the_daemons_message_limit():
    (limit,) = [value for name, value in SERVER_OPTIONS if name == "grpc.max_receive_message_length"]
    assert 0 < limit - MAX_IMAGE_BYTES <= 2**20


def test_the_client_refuses_an_oversize_file_without_reading_it(tmp_path):
    big = tmp_path / "huge.png"
    with open(big, "wb") as f:
        f.truncate(2**30)  # sparse: 1 GiB long, nothing on disk
    client = Client(address="unix:///nonexistent/daemon.sock")
    tracemalloc.start()
    try:
        with pytest.raises(ClientError, match="huge.png' is 1024.0 MiB; the daemon takes images of up to 63.9 MiB"):
            client.predict("job", big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        client.close()
    assert peak < 2**20  # nothing of the file was read


def test_the_client_refuses_oversize_bytes_before_sending():
    with pytest.raises(ClientError, match="the image is 64.0 MiB"):
        Client(address="unix:///nonexistent/daemon.sock").predict("job", b"\0" * (64 * 2**20))


def test_the_cli_says_so(tmp_path, capsys):
    big = tmp_path / "huge.png"
    with open(big, "wb") as f:
        f.truncate(100 * 2**20)
    code = main(["predict", "job1", str(big), "--address", "unix:///nonexistent/daemon.sock"])
    out = capsys.readouterr().out
    assert code == 2
    assert "100.0 MiB" in out and "63.9 MiB" in out and "no visionyard daemon" not in out


def test_serve_takes_the_predict_limits(monkeypatch, tmp_path):
    import runner.daemon.server

    given = {}
    monkeypatch.setattr(runner.daemon.server, "serve", lambda home, **options: given.update(options))
    assert main(["serve", "--home", str(tmp_path), "--max-concurrent-predicts", "3",
                 "--predict-max-pixels", "1000"]) == 0
    assert given["predict"] == PredictLimits(concurrent=3, queued=6, max_pixels=1000)
    assert main(["serve", "--home", str(tmp_path)]) == 0
    assert given["predict"] == PredictLimits()
