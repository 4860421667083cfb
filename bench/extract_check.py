"""Check that the extraction stream gives the features of a plain serial forward.

    python bench/extract_check.py [--device cuda] [--tiles 2048] [--num-workers 8]

On a synthetic 40x slide (``bench/extract.py``'s): the features store of ``Extractor`` with
``resize_on`` device and loader, against the encoder run batch by batch, synchronously, on
tiles read and resized by the CPU reader.  Prints one JSON line with the largest differences
relative to the features' scale (fp16 storage and autocast: about 1e-3; the device resize
rounds a few pixels by one grey level: a few 1e-3).  Run before trusting a GPU timing of the
asynchronous loop (copy stream, features copied back while the next batch runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract import _slide  # noqa: E402

from wsirisk.features import load_features  # noqa: E402
from wsirisk.features.encoders import build_encoder  # noqa: E402
from wsirisk.features.extract import ExtractOptions, Extractor, SlideJob, read_tiles_store  # noqa: E402
from wsirisk.features.readers import make_reader, plan_reader  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tiles", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--encoder", default="resnet50_trunc")
    args = parser.parse_args(argv)
    encoder = build_encoder(args.encoder, "random")
    options = ExtractOptions(encoder=args.encoder, batch_size=args.batch_size,
                             num_workers=args.num_workers, device=args.device)  # fmt: skip
    extractor = Extractor(encoder, options, progress=False)
    out: dict = {"device": extractor.device.type, "tiles": args.tiles}
    with tempfile.TemporaryDirectory(prefix="wsirisk-check-") as tmp:
        root = Path(tmp)
        slide, tiles = _slide(root, "check", "40x", args.tiles, seed=3)
        t = read_tiles_store(tiles)
        spec = plan_reader(slide, t.coords, t.geometry(encoder.input_size_px), "jpeg")
        reader = make_reader(spec)
        serial = []
        for a in range(0, len(t.coords), args.batch_size):
            data, _ = reader.read(np.arange(a, min(a + args.batch_size, len(t.coords))))
            with torch.inference_mode():
                serial.append(extractor.embed(torch.from_numpy(data)).float().cpu().numpy())
        reader.close()
        expected = np.concatenate(serial)
        scale = float(np.abs(expected).max())
        for where in ("device", "loader"):
            extractor.options = replace(options, resize_on=where)
            store = root / f"{where}.zarr"
            extractor.extract_slides([SlideJob(slide, tiles, store)], raise_errors=True)
            feats, coords, attrs = load_features(store)
            diff = np.abs(feats.astype(np.float32) - expected)
            out[f"resize_on_{where}"] = {"resize_on": attrs["resize_on"], "reader": attrs["reader"],
                          "coords_equal": bool(np.array_equal(coords, t.coords)),
                          "max_rel_diff": round(float(diff.max()) / scale, 5),
                          "mean_rel_diff": round(float(diff.mean()) / scale, 7)}  # fmt: skip
    out["ok"] = all(out[f"resize_on_{w}"]["coords_equal"] and out[f"resize_on_{w}"]["max_rel_diff"] < 0.03
                    for w in ("device", "loader"))  # fmt: skip
    print(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
