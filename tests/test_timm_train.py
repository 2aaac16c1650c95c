"""``python -m ablate.timm_train SCRIPT …`` registers ablate's models, then runs the script as timm's train.py runs.

The script below does not import ablate: it parses train.py's model flags (same names and defaults), calls
``timm.create_model`` with exactly the keywords train.py passes, and trains one SGD step on a tiny batch.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ablate.timm_train import main

TRAIN_LIKE = textwrap.dedent('''
    import argparse, json

    import torch
    from timm import create_model
    from timm.utils import ParseKwargs

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--pretrained", action="store_true", default=False)
    parser.add_argument("--initial-checkpoint", default="", type=str)
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--gp", default=None, type=str)
    parser.add_argument("--in-chans", type=int, default=None)
    parser.add_argument("--drop", type=float, default=0.0)
    parser.add_argument("--drop-path", type=float, default=None)
    parser.add_argument("--drop-block", type=float, default=None)
    parser.add_argument("--bn-momentum", type=float, default=None)
    parser.add_argument("--bn-eps", type=float, default=None)
    parser.add_argument("--torchscript", action="store_true", default=False)
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--model-kwargs", nargs="*", default={}, action=ParseKwargs)
    parser.add_argument("--result", required=True)
    args = parser.parse_args()
    in_chans = 3 if args.in_chans is None else args.in_chans
    factory_kwargs = args.model_kwargs
    model = create_model(
        args.model,
        pretrained=args.pretrained,
        in_chans=in_chans,
        num_classes=args.num_classes,
        drop_rate=args.drop,
        drop_path_rate=args.drop_path,
        drop_block_rate=args.drop_block,
        global_pool=args.gp,
        bn_momentum=args.bn_momentum,
        bn_eps=args.bn_eps,
        scriptable=args.torchscript,
        checkpoint_path=args.initial_checkpoint,
        **factory_kwargs,
    )
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(4, in_chans, args.img_size, args.img_size)
    y = torch.randint(0, model.num_classes, (4,))
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model.train()(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    changed = sum(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    json.dump({"class": type(model).__name__, "loss": loss.item(), "changed": changed,
               "num_classes": model.num_classes, "drop_rate": model.drop_rate,
               "modules": sorted({type(m).__name__ for m in model.modules()})},
              open(args.result, "w"))
''')


@pytest.mark.parametrize("model", ["resnet50_hybrid", "qlnet"])
def test_a_train_py_like_script_trains_a_step(tmp_path, model):
    script, result = tmp_path / "train.py", tmp_path / "result.json"
    script.write_text(TRAIN_LIKE)
    command = [sys.executable, "-m", "ablate.timm_train", str(script), "--model", model, "--num-classes", "5",
               "--drop", "0.1", "--drop-path", "0.05", "--result", str(result)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(result.read_text())
    assert out["class"] == "BlockNet" and out["num_classes"] == 5 and out["drop_rate"] == 0.1
    assert out["loss"] > 0 and out["changed"] > 0


def test_a_plugins_block_trains_through_model_kwargs(tmp_path, capsys):
    """``--plugin`` before the script imports the plugin, so train.py's ``--model-kwargs block=…`` builds its parts;
    a plugin that cannot be imported is one line, exit 2."""
    script, result = tmp_path / "train.py", tmp_path / "result.json"
    script.write_text(TRAIN_LIKE)
    plugin = Path(__file__).resolve().parent.parent / "examples" / "plugins" / "shift_glu.py"
    command = [sys.executable, "-m", "ablate.timm_train", "--plugin", str(plugin), str(script), "--model",
               "resnet50_max", "--num-classes", "5", "--model-kwargs", "block=glu-shift-w1", "--result", str(result)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(result.read_text())
    assert {"ChannelShift", "GLU"} <= set(out["modules"]) and out["changed"] > 0  # the plugin's two parts
    assert main([f"--plugin={tmp_path / 'missing.py'}", str(script)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.py" in err


def test_the_same_script_fails_without_ablate(tmp_path):
    """Control: run directly (no ablate import), timm does not know the model."""
    script = tmp_path / "train.py"
    script.write_text(TRAIN_LIKE)
    done = subprocess.run([sys.executable, str(script), "--model", "qlnet", "--result", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode != 0 and "Unknown model" in done.stderr


def test_missing_script_is_a_one_line_error(tmp_path, capsys):
    assert main([str(tmp_path / "train.py"), "--model", "qlnet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pytorch-image-models" in err
    assert main([]) == 2
