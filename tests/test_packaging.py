"""The wheel carries conf/ and the embedded data: an installed package composes and finds its data anywhere."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocess end-to-end runs

ROOT = Path(__file__).resolve().parents[1]


def test_installed_wheel_composes_from_its_own_conf_and_data(tmp_path):
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ROOT)], check=True
    )
    (wheel,) = (tmp_path / "dist").glob("transferlab-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)], check=True)
    code = (
        "import transferlab.config as c; from transferlab.cli.front import compose;"
        "cfg = compose(['experiment=quickstart']); print(c.CONF_DIR); print(cfg.data.train); "
        "print(cfg.paths.output_dir)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    conf, train, output = out.stdout.split()
    site = tmp_path / "site" / "transferlab"
    assert conf == str(site / "conf")
    assert train == str(site / "embedded" / "wordnet_topics" / "train.jsonl.gz") and Path(train).is_file()
    assert output == str(tmp_path / "outputs")  # outside a checkout, outputs/ goes in the working directory
    shipped = {
        p.relative_to(ROOT / "data") for p in (ROOT / "data").rglob("*") if p.is_file() and p.parent != ROOT / "data"
    }
    shipped |= {p.relative_to(ROOT / "data") for p in (ROOT / "data").glob("LICENSE.*")}
    missing = sorted(str(p) for p in shipped if not (site / "embedded" / p).is_file())
    assert not missing, f"embedded data left out of the wheel: {missing}"
